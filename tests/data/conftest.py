"""Fixtures for tests/data: small datasets on disk and a real moto S3 server on 127.0.0.1."""

from __future__ import annotations

import pytest

from dgn.data import make_rows, write_split


@pytest.fixture(scope="session")
def small_ds(tmp_path_factory) -> str:
    """Synthetic dataset, 120 train / 40 val rows at 32 px, in many small files and row groups."""
    uri = str(tmp_path_factory.mktemp("small_ds") / "ds")
    write_split(make_rows("train", 120, seed=3, image_size=32), uri, "train", rows_per_file=50, row_group_rows=16)
    write_split(make_rows("val", 40, seed=3, image_size=32), uri, "val", rows_per_file=50, row_group_rows=16)
    return uri
