"""Real servers for tests, all bound to 127.0.0.1: a moto S3 server and an ``mlflow server``.

Used by fixtures in tests/conftest.py; importable by any test module that needs
its own instance (e.g. one per module to keep state apart).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 180.0) -> None:  # an MLflow server starting on a loaded 2-core machine
    t = time.time()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() - t > timeout:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.3)


def _complete_multipart_as_on_aws() -> None:
    """moto 5.2.1 answers CompleteMultipartUpload with a ``<CompleteMultipartUploadResponse>`` root where S3 sends
    ``<CompleteMultipartUploadResult>``; pyarrow then reports INTERNAL_FAILURE for an upload that did complete, so
    every object over pyarrow's 10 MB part size (e.g. the dry run's E checkpoint: 12 MB) made its writer fail, and Ray
    Train restart it. The server runs in this process (ThreadedMotoServer), so patching moto's S3 serializer here
    fixes its replies: the answer is given S3's root name, nothing else changes. Installed once per process and left
    in place (it only makes moto answer as S3 does), so servers that overlap need no patch/unpatch ordering."""
    from moto.core.serialize import S3Serializer

    plain = S3Serializer._serialized_result_to_response
    if getattr(plain, "_dgn_as_on_aws", False):
        return

    def as_on_aws(self, resp, *args, **kwargs):
        resp = plain(self, resp, *args, **kwargs)
        if self.operation_model.name == "CompleteMultipartUpload":
            resp["body"] = resp["body"].replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult")
        return resp

    as_on_aws._dgn_as_on_aws = True
    S3Serializer._serialized_result_to_response = as_on_aws


@contextmanager
def moto_server(bucket: str = "dgn-test"):
    """A moto S3 server on 127.0.0.1 with ``bucket`` created; yields the endpoint URL.

    Its CompleteMultipartUpload replies carry S3's root element (see ``_complete_multipart_as_on_aws``).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    _complete_multipart_as_on_aws()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for a process that should reach the moto server (pyarrow, s3fs, boto3, MLflow)."""
    return {**S3_ENV, "AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint}


@contextmanager
def mlflow_server(root: Path, *, artifacts_destination: str | None = None, env: dict | None = None):
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend under ``root``; yields its URL.

    ``artifacts_destination`` (e.g. ``s3://bucket/mlflow``) makes the server proxy
    artifacts there; default: a folder under ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    dest = artifacts_destination or (root / "artifacts").as_uri()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", dest,
           "--workers", "1"]
    log = open(root / "server.log", "w")
    # MLflow 3's server starts a job runner and 7 huey consumers by default (≈ 65 CPU-seconds at every start, half a
    # minute of a 2-core machine); the tests use no MLflow server jobs, so they are left off.
    quiet = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **quiet, **(env or {})},
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
