"""Convert an ImageNet-style folder tree into a Parquet dataset.

Accepted layouts::

    root/train/<class>/**/*.jpg|png|...   and   root/val/<class>/**/...
    root/<class>/**/*.jpg|png|...         (split 90/10 by a hash of class/filename)

Class index = position in the sorted train class-folder names, the same for
both splits. PNG and JPEG bytes are stored unchanged; other formats (BMP,
GIF, WebP, TIFF, PPM) are re-encoded as PNG. Files with other extensions and
hidden files are skipped.

    from dgn.data.imagefolder import convert_imagefolder
    meta = convert_imagefolder("/data/imagenet", "s3://bucket/imagenet")
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator

from PIL import Image

from dgn.data.parquet import read_meta, write_split
from dgn.errors import DGNError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
KEEP_FORMATS = {"PNG", "JPEG"}
VAL_SHARE = 10  # 1 in VAL_SHARE files goes to val in the hash split


# helpers

def _subdirs(d: str) -> list[str]:
    return sorted(e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith("."))


def _images(d: str) -> list[str]:
    """Image files under ``d`` (recursive), as paths relative to ``d``, sorted."""
    out = []
    for top, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTS:
                out.append(os.path.relpath(os.path.join(top, name), d))
    return sorted(out)


def _to_val(cls: str, rel: str) -> bool:
    h = hashlib.md5(f"{cls}/{rel}".encode()).digest()
    return int.from_bytes(h[:4], "big") % VAL_SHARE == 0


def _image_bytes(path: str) -> bytes:
    """PNG/JPEG bytes as they are; anything else re-encoded to PNG."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format in KEEP_FORMATS:
                im.verify()  # cheap structural check; full decode happens when training
                return data
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            return buf.getvalue()
    except Exception as e:  # PIL raises many types for bad files
        raise DGNError(f"image file {path} cannot be read ({type(e).__name__}: {e}); "
                       f"use a valid PNG, JPEG, BMP, GIF, WebP or TIFF file.") from None


def _rows(root: str, items: list[tuple[str, str]], index: dict[str, int]) -> Iterator[dict]:
    for cls, rel in items:
        yield {"image": _image_bytes(os.path.join(root, cls, rel)), "label": index[cls], "label_name": cls}


def imagefolder_rows(root: str, split_dirs: tuple[str, str] = ("train", "val")) -> dict[str, Iterator[dict]]:
    """{"train": rows, "val": rows}, each a lazy iterator of {image, label, label_name} dicts.

    The tree is scanned (and checked) now; image files are read as the rows are consumed.
    """
    if not os.path.isdir(root):
        raise DGNError(f"image folder {root} does not exist or is not a directory.")
    train_dir, val_dir = (os.path.join(root, s) for s in split_dirs)
    has = os.path.isdir(train_dir), os.path.isdir(val_dir)
    if has[0] != has[1]:
        present, absent = (split_dirs[0], split_dirs[1]) if has[0] else (split_dirs[1], split_dirs[0])
        raise DGNError(f"image folder {root} has {present}/ but no {absent}/; give both, or only class folders.")

    if all(has):
        roots = {"train": train_dir, "val": val_dir}
        items = {s: [(c, rel) for c in _subdirs(d) for rel in _images(os.path.join(d, c))] for s, d in roots.items()}
        classes = _subdirs(train_dir)
        extra = sorted({c for c, _ in items["val"]} - set(classes))
        if extra:
            raise DGNError(f"val classes {extra} in {val_dir} have no folder in {train_dir}; "
                           f"val classes must be a subset of the train classes {classes[:10]}"
                           f"{'...' if len(classes) > 10 else ''}.")
    else:
        roots = {"train": root, "val": root}
        classes = _subdirs(root)
        items = {"train": [], "val": []}
        for c in classes:
            files = _images(os.path.join(root, c))
            val = [r for r in files if _to_val(c, r)]
            train = [r for r in files if not _to_val(c, r)]
            if not train and val:  # every class keeps at least one training image
                train, val = val[:1], val[1:]
            items["train"] += [(c, r) for r in train]
            items["val"] += [(c, r) for r in val]

    with_images = {c for c, _ in items["train"]}
    empty = [c for c in classes if c not in with_images]
    if not classes:
        raise DGNError(f"image folder {root} has no class folders; expected root/<class>/*.jpg "
                       f"or root/{split_dirs[0]}/<class>/*.jpg.")
    if empty:
        raise DGNError(f"class folder(s) {empty} under {roots['train']} hold no images "
                       f"(extensions {', '.join(sorted(IMAGE_EXTS))}).")
    if not items["val"]:
        raise DGNError(f"image folder {root} gives no validation images; add a {split_dirs[1]}/ folder "
                       f"or more images (1 in {VAL_SHARE} goes to val).")
    index = {c: i for i, c in enumerate(classes)}
    return {s: _rows(roots[s], items[s], index) for s in ("train", "val")}


def convert_imagefolder(root: str, uri: str, *, split_dirs: tuple[str, str] = ("train", "val")):
    """Write the tree at ``root`` as a Parquet dataset at ``uri`` and return its DatasetMeta."""
    rows = imagefolder_rows(root, split_dirs)
    for split in ("train", "val"):
        write_split(rows[split], uri, split)
    return read_meta(uri)
