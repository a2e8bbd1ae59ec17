"""Local Parquet datasets: round trip, sharding, shuffling, streaming, and bad data."""

import io
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from dgn.data import (
    CLASS_NAMES, decode_image, iter_batches, iter_records, load_split, make_rows, read_meta, write_split,
    write_synthetic,
)
from dgn.data.parquet import SCHEMA
from dgn.errors import DGNError


# helpers

def _png(colour=(255, 0, 0), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _dataset(root, train_table: pa.Table, val_table: pa.Table | None = None) -> str:
    for split, table in (("train", train_table), ("val", val_table if val_table is not None else train_table)):
        os.makedirs(root / split, exist_ok=True)
        pq.write_table(table, root / split / "part-00000.parquet")
    return str(root)


def _table(n=4, labels=None, images=None) -> pa.Table:
    labels = list(range(n)) if labels is None else labels
    images = [_png()] * len(labels) if images is None else images
    return pa.table({"image": images, "label": labels, "label_name": [f"c{x}" for x in labels]}, schema=SCHEMA)


def _ids(uri, split="train", **kw):
    """Image bytes of the streamed rows, in order (unique per row in the synthetic set)."""
    return [img for b in iter_records(uri, split, **kw) for img in b.column("image").to_pylist()]


# round trip

def test_meta_and_batches(small_ds):
    meta = read_meta(small_ds)
    assert meta.num_classes == 10 and meta.class_names == CLASS_NAMES
    assert meta.counts == {"train": 120, "val": 40}
    assert len(os.listdir(os.path.join(small_ds, "train"))) == 3  # 50 + 50 + 20 rows

    batches = list(iter_batches(small_ds, "train", image_size=24, batch_size=32))
    assert [len(y) for _, y in batches] == [32, 32, 32, 24]
    x, y = batches[0]
    assert x.shape == (32, 3, 24, 24) and x.dtype == torch.float32 and y.dtype == torch.long
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 0.05
    dropped = iter_batches(small_ds, "train", image_size=24, batch_size=32, drop_last=True)
    assert [len(y) for _, y in dropped] == [32] * 3


def test_load_split_matches_stream(small_ds):
    xs, ys = load_split(small_ds, "train", image_size=32)
    assert xs.shape == (120, 3, 32, 32) and xs.dtype == torch.uint8 and ys.dtype == torch.long
    x, y = next(iter_batches(small_ds, "train", image_size=32, batch_size=120))
    assert torch.equal(ys, y) and torch.allclose(xs.float() / 255, x)
    xl, yl = load_split(small_ds, "train", image_size=16, limit=7)
    assert xl.shape == (7, 3, 16, 16) and torch.equal(yl, ys[:7])


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_shards_are_disjoint_covering_and_even(small_ds, world):
    everything = _ids(small_ds, batch_rows=10)
    shards = [_ids(small_ds, batch_rows=10, shard=(r, world)) for r in range(world)]
    assert sum(shards, []) == everything  # contiguous ranges, in order: disjoint and covering
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shuffle_is_deterministic_per_seed(small_ds):
    def labels(seed):
        return torch.cat([y for _, y in iter_batches(small_ds, "train", image_size=8, batch_size=50,
                                                     shuffle=True, seed=seed)]).tolist()

    plain = torch.cat([y for _, y in iter_batches(small_ds, "train", image_size=8, batch_size=50)]).tolist()
    a, b, c = labels(1), labels(1), labels(2)
    assert a == b and a != c and a != plain and sorted(a) == sorted(plain)


def test_iter_records_streams_lazily(small_ds, monkeypatch):
    # counts Parquet row-group reads: the first batch must not read the whole split
    reads = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *a, **kw):
        for batch in original(self, *a, **kw):
            reads.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    stream = iter_records(small_ds, "train", batch_rows=8)
    first = next(stream)
    assert first.num_rows == 8 and first.schema.names == ["image", "label", "label_name"]
    assert sum(reads) <= 16  # one 16-row group at most
    rest = list(stream)
    assert sum(b.num_rows for b in rest) == 112 and max(b.num_rows for b in rest) <= 8


def test_rewrite_replaces_and_failed_write_leaves_old_split(tmp_path):
    uri = str(tmp_path / "ds")
    write_synthetic(uri, n_train=20, n_val=10, image_size=16)

    def broken_rows():
        yield from make_rows("train", 5, image_size=16)
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        write_split(broken_rows(), uri, "train")
    assert read_meta(uri).counts == {"train": 20, "val": 10}
    assert sorted(os.listdir(uri)) == ["train", "val"]  # no temporary directory left behind
    assert write_split(make_rows("train", 13, image_size=16), uri, "train", rows_per_file=5) == 13
    assert read_meta(uri).counts["train"] == 13 and len(os.listdir(os.path.join(uri, "train"))) == 3


def test_decode_resizes_and_crops():
    img = decode_image(_png((0, 0, 255), (40, 20)), 16, where="x")
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8 and (img[..., 2] == 255).all()
    buf = io.BytesIO()
    Image.new("L", (30, 30), 128).save(buf, format="JPEG")
    assert decode_image(buf.getvalue(), 10, where="x").shape == (10, 10, 3)


# bad data: each a DGNError naming the file (and row)

def test_missing_column(tmp_path):
    uri = _dataset(tmp_path, _table().drop_columns(["label_name"]))
    with pytest.raises(DGNError, match=r"train/part-00000\.parquet is missing column\(s\) label_name; .*image"):
        read_meta(uri)
    with pytest.raises(DGNError, match="missing column"):
        next(iter_batches(uri, "train", image_size=8, batch_size=2))


def test_undecodable_image(tmp_path):
    uri = _dataset(tmp_path, _table(images=[_png(), _png(), b"not an image", _png()]))
    assert read_meta(uri).num_classes == 4  # metadata alone is fine
    with pytest.raises(DGNError, match=r"train/part-00000\.parquet row 2 holds an image that cannot be decoded"):
        list(iter_batches(uri, "train", image_size=8, batch_size=2))
    with pytest.raises(DGNError, match="row 2"):
        load_split(uri, "train", image_size=8)


def test_negative_label(tmp_path):
    uri = _dataset(tmp_path, _table(), _table(labels=[0, 1, -3]))
    with pytest.raises(DGNError, match=r"val/part-00000\.parquet row 2 has label -3"):
        read_meta(uri)
    with pytest.raises(DGNError, match="row 2 has label -3"):
        list(iter_batches(uri, "val", image_size=8, batch_size=2))


def test_conflicting_label_names(tmp_path):
    bad = pa.table({"image": [_png()] * 2, "label": [0, 0], "label_name": ["cat", "dog"]}, schema=SCHEMA)
    with pytest.raises(DGNError, match="label 0 is named"):
        read_meta(_dataset(tmp_path, bad))


def test_empty_split(tmp_path):
    uri = _dataset(tmp_path, _table(), _table(labels=[]))
    with pytest.raises(DGNError, match=r"split .*val has no rows"):
        read_meta(uri)
    os.remove(tmp_path / "val" / "part-00000.parquet")
    with pytest.raises(DGNError, match=r"val holds no \.parquet files"):
        read_meta(uri)


def test_missing_dataset_and_split(tmp_path):
    with pytest.raises(DGNError, match="does not exist"):
        read_meta(str(tmp_path / "nope"))
    uri = _dataset(tmp_path / "ds", _table())
    shutil.rmtree(tmp_path / "ds" / "val")
    with pytest.raises(DGNError, match="has no val/ directory"):
        read_meta(uri)


def test_not_parquet_and_bad_arguments(tmp_path):
    uri = _dataset(tmp_path, _table())
    (tmp_path / "train" / "part-00001.parquet").write_bytes(b"garbage")
    with pytest.raises(DGNError, match=r"part-00001\.parquet is not a readable Parquet file"):
        read_meta(uri)
    with pytest.raises(DGNError, match="shard"):
        next(iter_records(uri, "val", shard=(2, 2)))
    with pytest.raises(DGNError, match="scheme 'gs'"):
        read_meta("gs://bucket/x")
    with pytest.raises(DGNError, match="row 1"):
        write_split([{"image": b"x", "label": 0, "label_name": "a"}, {"image": b"x", "label": -1, "label_name": "a"}],
                    str(tmp_path / "new"), "train")
    assert not (tmp_path / "new" / "train").exists()
