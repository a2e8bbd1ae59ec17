"""Datasets: Parquet on local disk or S3, the embedded synthetic set, ImageNet-style folders.

A dataset is ``<uri>/train/*.parquet`` and ``<uri>/val/*.parquet`` with columns
``image`` (PNG/JPEG bytes), ``label`` (int64), ``label_name`` (string).
Training reads a split either decoded into memory (small data) or streamed a window at a time
(:class:`ParquetStream`, for data too big to hold; :func:`choose_input` picks by decoded size).
"""

from dgn.data.imagefolder import convert_imagefolder, imagefolder_rows
from dgn.data.parquet import (
    DatasetMeta,
    decode_image,
    iter_batches,
    iter_records,
    load_split,
    read_meta,
    write_split,
)
from dgn.data.streaming import ParquetStream, choose_input, decoded_mb
from dgn.data.synthetic import CLASS_NAMES, make_rows, render, write_synthetic
from dgn.data.uri import join, resolve

__all__ = [
    "CLASS_NAMES", "DatasetMeta", "ParquetStream", "choose_input", "convert_imagefolder", "decode_image",
    "decoded_mb", "imagefolder_rows",
    "iter_batches", "iter_records", "join", "load_split", "make_rows", "read_meta", "render",
    "resolve", "write_split", "write_synthetic",
]
