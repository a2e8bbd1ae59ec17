"""Fixtures for tests/data: small datasets on disk and a real moto S3 server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket

import pytest

from dgn.data import make_rows, write_split


@pytest.fixture(scope="session")
def small_ds(tmp_path_factory) -> str:
    """Synthetic dataset, 120 train / 40 val rows at 32 px, in many small files and row groups."""
    uri = str(tmp_path_factory.mktemp("small_ds") / "ds")
    write_split(make_rows("train", 120, seed=3, image_size=32), uri, "train", rows_per_file=50, row_group_rows=16)
    write_split(make_rows("val", 40, seed=3, image_size=32), uri, "val", rows_per_file=50, row_group_rows=16)
    return uri


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_bucket():
    """A fresh bucket on a moto server; yields its name with AWS_* env vars pointing at the server."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for k in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            mp.delenv(k, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="dgn-test")
        try:
            yield "dgn-test"
        finally:
            server.stop()
