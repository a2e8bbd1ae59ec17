"""ImageNet-style folder trees converted to Parquet datasets."""

import io
import os

import pyarrow.parquet as pq
import pytest
from PIL import Image

from dgn.data import convert_imagefolder, imagefolder_rows, load_split
from dgn.errors import DGNError


def _save(path, fmt, colour, size=(20, 12)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)


def test_train_val_tree(tmp_path):
    root = tmp_path / "tree"
    for split, n in (("train", 3), ("val", 1)):
        for i in range(n):
            _save(root / split / "zebra" / f"z{i}.png", "PNG", (250, 250, 250))
            _save(root / split / "apple" / f"a{i}.JPEG", "JPEG", (200, 0, 0))
        _save(root / split / "mango" / "nested" / "m.bmp", "BMP", (0, 200, 0))
    (root / "train" / "apple" / "notes.txt").write_text("not an image")

    meta = convert_imagefolder(str(root), str(tmp_path / "ds"))
    assert meta.class_names == ["apple", "mango", "zebra"]  # sorted folder names
    assert meta.counts == {"train": 7, "val": 3}

    table = pq.read_table(tmp_path / "ds" / "train")
    kinds = {name: Image.open(io.BytesIO(img)).format
             for name, img in zip(table.column("label_name").to_pylist(), table.column("image").to_pylist())}
    assert kinds == {"apple": "JPEG", "mango": "PNG", "zebra": "PNG"}  # bmp re-encoded, others as they were
    assert (tmp_path / "tree" / "train" / "zebra" / "z0.png").read_bytes() in table.column("image").to_pylist()

    x, y = load_split(str(tmp_path / "ds"), "val", image_size=8)
    assert x.shape == (3, 3, 8, 8)
    by_label = {int(label): x[i, :, 4, 4].tolist() for i, label in enumerate(y)}
    assert by_label[2] == [250, 250, 250] and by_label[1] == [0, 200, 0]


def test_class_folders_only_hash_split(tmp_path):
    root = tmp_path / "flat"
    for c in ("b", "a"):
        for i in range(25):
            _save(root / c / f"{i}.png", "PNG", (i * 10, 0, 0), (6, 6))
    rows = imagefolder_rows(str(root))
    train, val = list(rows["train"]), list(rows["val"])
    assert len(train) + len(val) == 50 and 0 < len(val) < 15
    assert {r["label_name"]: r["label"] for r in train} == {"a": 0, "b": 1}
    again = imagefolder_rows(str(root))
    assert [r["image"] for r in again["val"]] == [r["image"] for r in val]  # deterministic
    meta = convert_imagefolder(str(root), str(tmp_path / "ds"))
    assert meta.num_classes == 2 and sum(meta.counts.values()) == 50


def test_bad_trees(tmp_path):
    with pytest.raises(DGNError, match="does not exist"):
        imagefolder_rows(str(tmp_path / "missing"))
    _save(tmp_path / "t1" / "train" / "cat" / "x.png", "PNG", (0, 0, 0))
    with pytest.raises(DGNError, match="has train/ but no val/"):
        imagefolder_rows(str(tmp_path / "t1"))
    _save(tmp_path / "t1" / "val" / "dog" / "x.png", "PNG", (0, 0, 0))
    with pytest.raises(DGNError, match=r"val classes \['dog'\]"):
        imagefolder_rows(str(tmp_path / "t1"))
    os.makedirs(tmp_path / "t2" / "empty")
    _save(tmp_path / "t2" / "full" / "x.png", "PNG", (0, 0, 0))
    with pytest.raises(DGNError, match=r"\['empty'\] .* hold no images"):
        imagefolder_rows(str(tmp_path / "t2"))
    bad = tmp_path / "t3" / "train" / "cat" / "broken.png"
    _save(bad, "PNG", (0, 0, 0))
    _save(tmp_path / "t3" / "val" / "cat" / "ok.png", "PNG", (0, 0, 0))
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DGNError, match="broken.png cannot be read"):
        convert_imagefolder(str(tmp_path / "t3"), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "train").exists()
