"""Datasets on S3 through a real moto server (see conftest.s3_bucket)."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from pyarrow.fs import FileSelector

from dgn.data import iter_batches, load_split, read_meta, resolve, write_synthetic


def test_resolve_uses_endpoint(s3_bucket):
    fs, path = resolve(f"s3://{s3_bucket}/some/prefix/")
    assert path == f"{s3_bucket}/some/prefix"
    assert type(fs).__name__ == "S3FileSystem"


def test_write_and_read_back_on_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/ds"
    meta = write_synthetic(uri, n_train=30, n_val=10, image_size=32)
    assert meta.counts == {"train": 30, "val": 10} and meta.num_classes == 10
    assert read_meta(uri) == meta

    fs, root = resolve(uri)
    listed = sorted(i.path.removeprefix(root + "/") for i in fs.get_file_info(FileSelector(root, recursive=True)))
    assert "train/part-00000.parquet" in listed and not any(".tmp-" in p for p in listed)

    batches = list(iter_batches(uri, "train", image_size=32, batch_size=8, shuffle=True, seed=1))
    assert [len(y) for _, y in batches] == [8, 8, 8, 6]
    x, y = batches[0]
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    xs, ys = load_split(uri, "val", image_size=32)
    assert xs.shape == (10, 3, 32, 32) and xs.dtype == torch.uint8 and sorted(ys.tolist()) == list(range(10))


def test_rewrite_replaces_split_on_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/again"
    write_synthetic(uri, n_train=30, n_val=10, image_size=32)
    meta = write_synthetic(uri, n_train=20, n_val=10, image_size=32, seed=5)
    assert meta.counts["train"] == 20


def test_shards_on_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/shards"
    write_synthetic(uri, n_train=30, n_val=10, image_size=16)
    whole = [y for _, y in iter_batches(uri, "train", image_size=8, batch_size=64)][0]
    parts = [torch.cat([y for _, y in iter_batches(uri, "train", image_size=8, batch_size=4, shard=(r, 3))])
             for r in range(3)]
    assert torch.equal(torch.cat(parts), whole) and [len(p) for p in parts] == [10, 10, 10]


def test_prepare_data_flow_to_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/from-flow"
    p = subprocess.run([sys.executable, "flows/prepare_data.py", "--out", uri, "--n-train", "10", "--n-val", "10",
                        "--image-size", "16"], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ))
    assert p.returncode == 0, p.stderr
    assert read_meta(uri).counts == {"train": 10, "val": 10}
    p = subprocess.run([sys.executable, "flows/prepare_data.py", "--out", "s3://no-such-bucket/x"],
                       cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: S3 bucket 'no-such-bucket'") and "Traceback" not in p.stderr
