"""Fixtures shared by every test package: real servers on 127.0.0.1 (see tests/support/servers.py)."""

from __future__ import annotations

import pytest

from tests.support.servers import mlflow_server, moto_server, s3_env


@pytest.fixture(scope="module")
def s3_bucket():
    """A fresh bucket on a moto server; yields its name with AWS_* env vars pointing at the server."""
    with moto_server("dgn-test") as endpoint, pytest.MonkeyPatch.context() as mp:
        for k in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            mp.delenv(k, raising=False)
        for k, v in s3_env(endpoint).items():
            mp.setenv(k, v)
        yield "dgn-test"


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite backend, local artifacts); its URL.

    Set ``MLFLOW_TRACKING_URI`` to it (monkeypatch, or a subprocess's env) to use it.
    """
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture(autouse=True)
def _private_dgn_home(tmp_path, monkeypatch):
    """No test writes to the user's ~/.dgn MLflow store."""
    monkeypatch.setenv("DGN_HOME", str(tmp_path / "dgn-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
