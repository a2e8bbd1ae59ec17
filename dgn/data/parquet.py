"""Parquet datasets on a local disk or S3: write, validate, stream, load.

A dataset is ``<uri>/train/*.parquet`` and ``<uri>/val/*.parquet`` with
columns ``image`` (PNG/JPEG bytes), ``label`` (int64) and ``label_name``
(string). Files starting with ``_`` or ``.`` are ignored, as are non-Parquet
files, so markers and sidecar files may live alongside.

Writing is all-or-nothing per split: files go to ``<uri>/<split>.tmp-<pid>/``
first and only move to ``<uri>/<split>/`` (replacing what was there) after
every row is written. Locally that move is one directory rename; on S3 it is
a copy per file (S3 has no rename), so a crash during those last copies can
leave a mixed split, but a failure while producing rows never touches the
existing split.

Reading streams row groups (``iter_records``) and never holds a whole split
in memory, except ``load_split``, which is for small data on purpose.
Sharding gives each of ``world`` ranks a contiguous range of global row
indices (sizes differ by at most one) and reads only the row groups that
overlap it.

    meta = read_meta("s3://bucket/shapes")
    for images, labels in iter_batches("s3://bucket/shapes", "train", image_size=64, batch_size=128):
        ...  # images: (B, 3, 64, 64) float in [0, 1], labels: (B,) int64
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
from PIL import Image

from dgn.data.uri import is_s3, join, resolve, s3_error
from dgn.errors import DGNError

if TYPE_CHECKING:  # torch is imported where tensors are made, so writing data does not load it
    import torch

SPLITS = ("train", "val")
COLUMNS = ("image", "label", "label_name")
SCHEMA = pa.schema([("image", pa.binary()), ("label", pa.int64()), ("label_name", pa.string())])
SCHEMA_TEXT = "image (binary PNG/JPEG bytes), label (int64), label_name (string)"
SHUFFLE_BUFFER = 4096  # rows held for streaming shuffle
ROW_GROUP_ROWS = 256   # rows per Parquet row group: the unit a shard reads


@dataclass(frozen=True)
class DatasetMeta:
    num_classes: int              # max label over all splits + 1
    class_names: list[str]        # indexed by label; labels never seen are named "unused_<k>"
    counts: dict[str, int]        # rows per split
    uri: str = ""


@dataclass(frozen=True)
class _File:
    path: str                     # inside the filesystem
    where: str                    # the URI a user sees in messages
    row_groups: tuple[int, ...]   # rows per row group

    @property
    def num_rows(self) -> int:
        return sum(self.row_groups)


# helpers

def _check_split_name(split: str) -> None:
    if not isinstance(split, str) or not split or "/" in split or split.startswith((".", "_")):
        raise DGNError(f"split name {split!r} is not valid; use a plain name such as 'train' or 'val'.")


def _check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    try:
        rank, world = (int(x) for x in shard)
    except (TypeError, ValueError):
        raise DGNError(f"shard {shard!r} is not a (rank, world) pair of integers.") from None
    if world < 1 or not 0 <= rank < world:
        raise DGNError(f"shard {shard!r} is not valid; need world >= 1 and 0 <= rank < world.")
    return rank, world


def _check_schema(schema: pa.Schema, where: str) -> None:
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise DGNError(f"{where} is missing column(s) {', '.join(missing)}; dataset files need columns {SCHEMA_TEXT}.")
    t = {c: schema.field(c).type for c in COLUMNS}
    ok = (pa.types.is_binary(t["image"]) or pa.types.is_large_binary(t["image"])) \
        and pa.types.is_integer(t["label"]) \
        and (pa.types.is_string(t["label_name"]) or pa.types.is_large_string(t["label_name"]))
    if not ok:
        got = ", ".join(f"{c} ({t[c]})" for c in COLUMNS)
        raise DGNError(f"{where} has column types {got}; dataset files need {SCHEMA_TEXT}.")


def _files(uri: str, split: str) -> list[_File]:
    """The split's Parquet files, sorted, with schemas checked and row-group sizes read."""
    fs, root = resolve(uri)
    try:
        root_info = fs.get_file_info(root)
    except OSError as e:
        if is_s3(uri):
            raise s3_error(uri, e) from None
        raise DGNError(f"cannot read dataset {uri}: {e}.") from None
    if root_info.type == pafs.FileType.NotFound:
        raise DGNError(f"dataset {uri} does not exist; give a directory or s3:// prefix holding train/ and val/.")
    split_dir = f"{root}/{split}"
    try:
        infos = fs.get_file_info(pafs.FileSelector(split_dir, recursive=False))
    except (FileNotFoundError, NotADirectoryError):
        raise DGNError(f"dataset {uri} has no {split}/ directory; a dataset holds train/ and val/ "
                       f"with Parquet files of columns {SCHEMA_TEXT}.") from None
    except OSError as e:
        if is_s3(uri):
            raise s3_error(uri, e) from None
        raise DGNError(f"cannot read dataset {uri}: {e}.") from None
    paths = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                   and not os.path.basename(i.path).startswith(("_", ".")))
    if not paths:
        raise DGNError(f"split {join(uri, split)} holds no .parquet files; it needs at least one non-empty file.")
    out = []
    for path in paths:
        where = join(uri, split, os.path.basename(path))
        try:
            md = pq.read_metadata(path, filesystem=fs)
        except (pa.ArrowInvalid, OSError) as e:
            raise DGNError(f"{where} is not a readable Parquet file ({e}).") from None
        _check_schema(md.schema.to_arrow_schema(), where)
        out.append(_File(path, where, tuple(md.row_group(i).num_rows for i in range(md.num_row_groups))))
    return out


def _bad_label_row(labels: pa.Array) -> tuple[int, object] | None:
    """(row, value) of the first null or negative label, or None."""
    if labels.null_count:
        return int(pc.index(pc.is_null(labels), True).as_py()), None
    if len(labels) and pc.min(labels).as_py() < 0:
        row = int(pc.index(pc.less(labels, 0), True).as_py())
        return row, labels[row].as_py()
    return None


def _raise_bad_label(where: str, row: int, value) -> None:
    raise DGNError(f"{where} row {row} has label {value}; labels must be non-negative integers "
                   f"(0 .. num_classes-1).")


# writing

def write_split(rows: Iterable[dict], uri: str, split: str, *, rows_per_file: int = 2000,
                row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Write ``rows`` ({image: bytes, label: int, label_name: str}) as ``uri/split/part-NNNNN.parquet``.

    All-or-nothing: nothing under ``uri/split`` changes unless every row was written. Replaces an
    existing split. Returns the number of rows written.
    """
    _check_split_name(split)
    if rows_per_file < 1 or row_group_rows < 1:
        raise DGNError(f"rows_per_file ({rows_per_file}) and row_group_rows ({row_group_rows}) must be >= 1.")
    fs, root = resolve(uri)
    if is_s3(uri):
        bucket = root.split("/", 1)[0]
        try:
            found = fs.get_file_info(bucket).type != pafs.FileType.NotFound
        except OSError as e:
            raise s3_error(uri, e) from None
        if not found:
            raise DGNError(f"S3 bucket {bucket!r} for {uri} does not exist; create it first.")
    try:
        return _write_split(fs, root, rows, uri, split, rows_per_file, row_group_rows)
    except OSError as e:
        if is_s3(uri):
            raise s3_error(uri, e) from None
        raise


def _write_split(fs, root, rows, uri, split, rows_per_file, row_group_rows) -> int:
    final, tmp = f"{root}/{split}", f"{root}/{split}.tmp-{os.getpid()}"
    _delete_quietly(fs, tmp)  # leftovers of an earlier crashed writer with our pid
    fs.create_dir(tmp, recursive=True)
    total, part, buf = 0, 0, {c: [] for c in COLUMNS}

    def flush():
        nonlocal part
        table = pa.table(buf, schema=SCHEMA)
        with fs.open_output_stream(f"{tmp}/part-{part:05d}.parquet") as f:
            pq.write_table(table, f, row_group_size=row_group_rows, compression="none")  # PNG/JPEG are compressed
        part += 1
        for c in COLUMNS:
            buf[c].clear()

    try:
        for i, row in enumerate(rows):
            try:
                image, label, name = row["image"], row["label"], row["label_name"]
            except (KeyError, TypeError):
                raise DGNError(f"row {i} for {join(uri, split)} is {type(row).__name__} without keys "
                               f"image, label, label_name; rows must be dicts with all three.") from None
            if not isinstance(image, (bytes, bytearray, memoryview)) or not isinstance(name, str) \
                    or isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
                raise DGNError(f"row {i} for {join(uri, split)} has image {type(image).__name__}, label {label!r}, "
                               f"label_name {type(name).__name__}; need bytes, an int >= 0 and a str.")
            buf["image"].append(bytes(image))
            buf["label"].append(int(label))
            buf["label_name"].append(name)
            total += 1
            if len(buf["label"]) == rows_per_file:
                flush()
        if buf["label"]:
            flush()
        if total == 0:
            raise DGNError(f"no rows were given for split {join(uri, split)}; a split needs at least one row.")
    except BaseException:
        _delete_quietly(fs, tmp)
        raise
    _commit(fs, tmp, final)
    return total


def _delete_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_dir(path)
    except OSError:
        pass


def _commit(fs: pafs.FileSystem, tmp: str, final: str) -> None:
    if fs.get_file_info(final).type != pafs.FileType.NotFound:
        fs.delete_dir(final)
    if isinstance(fs, pafs.LocalFileSystem):
        fs.move(tmp, final)  # one rename
        return
    fs.create_dir(final)
    for info in fs.get_file_info(pafs.FileSelector(tmp)):
        fs.move(info.path, f"{final}/{os.path.basename(info.path)}")  # S3: copy + delete per object
    _delete_quietly(fs, tmp)


# reading

def _check_first_image(fs: pafs.FileSystem, f: _File) -> None:
    """Decode one image (row 0 of ``f``): a dataset of wrongly encoded images fails before any work starts.

    A single corrupt row further in is caught where it is read (iter_batches / load_split name its row).
    """
    pf = pq.ParquetFile(f.path, filesystem=fs)
    first = next(pf.iter_batches(batch_size=1, row_groups=[0], columns=["image"]))
    decode_image(first.column(0)[0].as_py(), 8, where=f"{f.where} row 0")


def read_meta(uri: str) -> DatasetMeta:
    """Check every file of train/ and val/ and return class count, class names and row counts.

    Labels and names are checked on every row; images only on the first row of each split (reading every image
    would read the whole dataset).
    """
    names: dict[int, tuple[str, str]] = {}  # label -> (name, where first seen)
    counts = {}
    for split in SPLITS:
        files = _files(uri, split)
        fs, _ = resolve(uri)
        n = 0
        for f in files:
            pf = pq.ParquetFile(f.path, filesystem=fs)
            row0 = 0
            for batch in pf.iter_batches(batch_size=65536, columns=["label", "label_name"]):
                bad = _bad_label_row(batch.column(0))
                if bad:
                    _raise_bad_label(f.where, row0 + bad[0], bad[1])
                if batch.column(1).null_count:
                    row = row0 + pc.index(pc.is_null(batch.column(1)), True).as_py()
                    raise DGNError(f"{f.where} row {row} has a null label_name; every row needs a class name.")
                pairs = pa.table({"l": batch.column(0), "n": batch.column(1)}).group_by(["l", "n"]).aggregate([])
                for label, name in zip(pairs.column("l").to_pylist(), pairs.column("n").to_pylist()):
                    seen = names.setdefault(label, (name, f.where))
                    if seen[0] != name:
                        raise DGNError(f"label {label} is named {name!r} in {f.where} but {seen[0]!r} in {seen[1]}; "
                                       f"each label needs one label_name.")
                row0 += batch.num_rows
            n += row0
        if n == 0:
            raise DGNError(f"split {join(uri, split)} has no rows; both train and val need at least one.")
        _check_first_image(fs, next(f for f in files if f.num_rows))
        counts[split] = n
    k = max(names) + 1
    return DatasetMeta(num_classes=k, class_names=[names[i][0] if i in names else f"unused_{i}" for i in range(k)],
                       counts=counts, uri=uri)


def _stream(uri: str, split: str, *, batch_rows: int, shard: tuple[int, int], shuffle_files: bool,
            seed: int, columns=COLUMNS) -> Iterator[tuple[pa.RecordBatch, str, int]]:
    """(batch, file uri, index in that file of the batch's first row), for this shard's rows."""
    _check_split_name(split)
    rank, world = _check_shard(shard)
    if batch_rows < 1:
        raise DGNError(f"batch_rows {batch_rows} must be >= 1.")
    files = _files(uri, split)
    if shuffle_files:
        files = [files[i] for i in np.random.default_rng([seed, 7]).permutation(len(files))]
    total = sum(f.num_rows for f in files)
    lo, hi = total * rank // world, total * (rank + 1) // world  # this shard's global row range
    fs, _ = resolve(uri)
    offset = 0
    for f in files:
        a, b = max(lo, offset) - offset, min(hi, offset + f.num_rows) - offset  # local range [a, b)
        offset += f.num_rows
        if a >= b:
            continue
        groups, starts, s = [], [], 0
        for g, n in enumerate(f.row_groups):
            if s < b and s + n > a:
                groups.append(g)
                starts.append(s)
            s += n
        pos = starts[0]  # file row index of the next row read
        pf = pq.ParquetFile(f.path, filesystem=fs)
        for batch in pf.iter_batches(batch_size=batch_rows, row_groups=groups, columns=list(columns)):
            # row groups are contiguous, so positions advance by batch length
            s0, s1 = max(a, pos), min(b, pos + batch.num_rows)
            if s1 > s0:
                yield batch.slice(s0 - pos, s1 - s0), f.where, s0
            pos += batch.num_rows
            if pos >= b:
                break


def iter_records(uri: str, split: str, *, batch_rows: int = 256, shard: tuple[int, int] = (0, 1),
                 shuffle_files: bool = False, seed: int = 0) -> Iterator[pa.RecordBatch]:
    """Stream this shard's rows as RecordBatches of at most ``batch_rows`` rows (columns image, label, label_name)."""
    for batch, _, _ in _stream(uri, split, batch_rows=batch_rows, shard=shard, shuffle_files=shuffle_files,
                               seed=seed):
        yield batch


def decode_image(data: bytes, image_size: int, *, where: str) -> np.ndarray:
    """PNG/JPEG bytes → uint8 (image_size, image_size, 3) RGB: centre square crop, then bilinear resize."""
    if data is None:
        raise DGNError(f"{where} has a null image; every row needs PNG or JPEG bytes.")
    try:
        im = Image.open(io.BytesIO(data))
        if im.format == "JPEG":
            im.draft("RGB", (image_size, image_size))  # decode big JPEGs at reduced scale (never below the target)
        im = im.convert("RGB")
    except Exception as e:  # PIL raises many types for bad bytes
        raise DGNError(f"{where} holds an image that cannot be decoded ({type(e).__name__}: {e}); "
                       f"images must be PNG or JPEG bytes.") from None
    w, h = im.size
    if w != h:  # centre square crop keeps the aspect ratio of the content
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)  # antialiased when shrinking
    return np.asarray(im, dtype=np.uint8)


def _rows(stream) -> Iterator[tuple[bytes, int, str]]:
    """(image bytes, label, where) per row, checking labels."""
    for batch, where, row0 in stream:
        labels = batch.column(1)
        bad = _bad_label_row(labels)
        if bad:
            _raise_bad_label(where, row0 + bad[0], bad[1])
        images = batch.column(0).to_pylist()
        for i, (img, label) in enumerate(zip(images, labels.to_numpy().tolist())):
            yield img, label, f"{where} row {row0 + i}"


def _shuffled(rows: Iterator, rng: np.random.Generator, capacity: int) -> Iterator:
    """Bounded-buffer streaming shuffle: deterministic for a given rng state."""
    buf = []
    for row in rows:
        if len(buf) < capacity:
            buf.append(row)
            continue
        j = int(rng.integers(capacity))
        yield buf[j]
        buf[j] = row
    for j in rng.permutation(len(buf)):
        yield buf[j]


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def iter_batches(uri: str, split: str, *, image_size: int, batch_size: int, shard: tuple[int, int] = (0, 1),
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Stream (images (B, 3, H, W) float32 in [0, 1], labels (B,) int64) for this shard.

    ``shuffle`` permutes file order and shuffles rows through a 4096-row buffer, deterministically per seed;
    pass a different seed each epoch for a new order.
    """
    if batch_size < 1 or image_size < 1:
        raise DGNError(f"batch_size ({batch_size}) and image_size ({image_size}) must be >= 1.")
    rows = _rows(_stream(uri, split, batch_rows=max(batch_size, 64), shard=shard, shuffle_files=shuffle, seed=seed))
    if shuffle:
        rows = _shuffled(rows, np.random.default_rng([seed, 11]), SHUFFLE_BUFFER)
    with ThreadPoolExecutor(_threads()) as pool:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == batch_size:
                yield _collate(pool, chunk, image_size)
                chunk = []
        if chunk and not drop_last:
            yield _collate(pool, chunk, image_size)


def _collate(pool: ThreadPoolExecutor, chunk: list, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    imgs = list(pool.map(lambda r: decode_image(r[0], image_size, where=r[2]), chunk))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(255)  # (B, 3, H, W)
    y = torch.tensor([r[1] for r in chunk], dtype=torch.long)  # (B,)
    return x.contiguous(), y


def load_split(uri: str, split: str, *, image_size: int, limit: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` rows (all by default) of a split in memory: (uint8 (N, 3, H, W), int64 (N,))."""
    if image_size < 1:
        raise DGNError(f"image_size {image_size} must be >= 1.")
    if limit is not None and limit < 0:
        raise DGNError(f"limit {limit} must be >= 0 or None.")
    total = sum(f.num_rows for f in _files(uri, split))
    n = total if limit is None else min(total, limit)
    out = np.empty((n, image_size, image_size, 3), np.uint8)  # (N, H, W, 3)
    labels = np.empty(n, np.int64)
    i = 0
    with ThreadPoolExecutor(_threads()) as pool:
        stream = _stream(uri, split, batch_rows=512, shard=(0, 1), shuffle_files=False, seed=0)
        rows = _rows(stream)
        while i < n:
            chunk = [r for _, r in zip(range(min(512, n - i)), rows)]

            def put(k: int) -> None:
                out[i + k] = decode_image(chunk[k][0], image_size, where=chunk[k][2])

            list(pool.map(put, range(len(chunk))))
            labels[i:i + len(chunk)] = [r[1] for r in chunk]
            i += len(chunk)
        rows.close()
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)
