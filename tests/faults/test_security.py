"""Security: checkpoints never run code (weights_only=True), test servers listen on 127.0.0.1 only, and refused S3
credentials are reported without repeating them.

The planted-secret check on a real flow run (MLflow params, tags, artifacts, logs) is in
tests/cluster/test_s3_end_to_end.py, which runs the training flow against an MLflow server with S3 artifacts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import boto3
import pytest
import torch
from botocore.exceptions import ClientError

from dgn.errors import DGNError
from tests.faults.helpers import listening_addresses, one_line_error, run_main, run_process
from tests.support.servers import free_port, wait_http


class Payload:
    """Unpickling this runs ``Path(marker).touch()``: what an attacker's checkpoint would do with os.system."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    from dgn.train.checkpoint import load_checkpoint

    marker = tmp_path / "pwned"
    bomb = tmp_path / "bomb.pt"
    torch.save({"kind": "classifier", "model": {"w": torch.zeros(2)}, "extra": Payload(str(marker))}, bomb)
    torch.load(bomb, weights_only=False)  # the payload is real: a plain torch.load runs it
    assert marker.exists()
    marker.unlink()

    with pytest.raises(DGNError, match="bomb.pt"):
        load_checkpoint(str(bomb))
    from dgn.nets.weights import _load_state

    with pytest.raises(DGNError, match=r"bomb\.pt.* refused .*weights_only=True"):
        _load_state(bomb)
    code, _, err = run_main(capsys, "train", "--dry-run", "--storage", str(tmp_path / "run"), "--encoder-weights",
                            str(bomb))
    assert "bomb.pt" in one_line_error(code, err)
    assert not marker.exists(), "unpickling ran the payload"
    assert not (tmp_path / "run").exists()


def test_test_servers_listen_on_loopback_only(mlflow_url, s3_bucket):
    for url in (mlflow_url, os.environ["AWS_ENDPOINT_URL"]):
        port = int(url.rsplit(":", 1)[1])
        assert listening_addresses(port) == {"127.0.0.1"}, url


@pytest.fixture(scope="module")
def locked_s3(tmp_path_factory):
    """A moto server that checks signatures: a bucket, an IAM user allowed s3:*, and its key.

    moto accepts any key by default; ``POST /moto-api/reset-auth 0`` makes every later request authenticate against
    its IAM users. It runs as its own process, so the switch cannot leak into other tests' in-process servers.
    """
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(endpoint + "/moto-api/")
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        boto3.client("s3", **kw).create_bucket(Bucket="locked")
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="dgn")
        iam.put_user_policy(UserName="dgn", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="dgn")["AccessKey"]
        urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                                      headers={"Content-Type": "text/plain"}), timeout=10)
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        proc.kill()  # our own process; moto's dev server takes ~20 s to honour SIGTERM
        proc.wait(timeout=20)
        log.close()


def test_bad_credentials(locked_s3, monkeypatch, capsys, tmp_path):
    endpoint, key_id, secret = locked_s3
    # the server really checks: the IAM user's key is let in, a made-up key and a wrong secret are refused
    s3 = lambda k, s: boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",  # noqa: E731
                                   aws_access_key_id=k, aws_secret_access_key=s)
    s3(key_id, secret).head_bucket(Bucket="locked")
    for k, s in (("AKIAIOSFODNN7BADKEY1", "made-up-secret-value"), (key_id, "wrong-secret-value-42")):
        with pytest.raises(ClientError, match="403"):
            s3(k, s).head_bucket(Bucket="locked")

    for k, v in {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                 "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7BADKEY1", "AWS_SECRET_ACCESS_KEY": "made-up-secret-value"}.items():
        monkeypatch.setenv(k, v)
    line = one_line_error(*run_main(capsys, "prepare_data", "--out", "s3://locked/ds", "--n-train", "10",
                                    "--n-val", "10")[::2])
    assert f"S3 at {endpoint} refused the credentials for s3://locked/ds" in line and "AWS_ACCESS_KEY_ID" in line
    line = one_line_error(*run_main(capsys, "train", "--dry-run", "--storage", str(tmp_path / "run"), "--data",
                                    "s3://locked/ds")[::2])
    assert "refused the credentials for s3://locked/ds" in line
    assert not (tmp_path / "run").exists()
    # a wrong secret for a real key, from a real process: still one line, and the secret is never echoed
    r = run_process("prepare_data", "--out", "s3://locked/ds2", "--n-train", "10", "--n-val", "10",
                    env={**os.environ, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-42"})
    assert "refused the credentials" in one_line_error(r.returncode, r.stderr)
    assert "wrong-secret-value-42" not in r.stderr + r.stdout and key_id not in r.stderr + r.stdout
    with pytest.raises(ClientError, match="NoSuchKey|404"):  # nothing was written
        s3(key_id, secret).head_object(Bucket="locked", Key="ds/train/part-00000.parquet")
