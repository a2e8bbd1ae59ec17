"""Fixtures shared by every test package: real servers on 127.0.0.1 (see tests/support/servers.py)."""

from __future__ import annotations

import pytest

from tests.support.mlflow_store import migrated_template, seed_store
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


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """An MLflow SQLite store migrated once per session (tests/support/mlflow_store.py); copy it with seed_store."""
    return migrated_template(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture(autouse=True)
def _private_dgn_home(request, tmp_path, monkeypatch):
    """No test writes to the user's ~/.dgn MLflow store. The private one starts as a copy of the session's migrated
    store, unless the test is marked ``fresh_mlflow_store`` (it checks what an empty DGN_HOME gets)."""
    home = tmp_path / "dgn-home"
    monkeypatch.setenv("DGN_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if request.node.get_closest_marker("fresh_mlflow_store") is None:
        seed_store(request.getfixturevalue("mlflow_template"), home / "mlflow.db")


# The fast tier (`pytest -m "not integration"`, README) is the library on its own; a test is in the integration
# tier when it needs a server, a Ray cluster, a subprocess (a flow, a bench) or a browser. Decided here from what
# the test uses, so a new test lands in the right tier without anyone remembering to mark it.
SERVER_FIXTURES = {"mlflow_url", "s3_bucket", "ray_address", "cluster", "one_cpu_ray", "ray_cluster", "ray_local",
                   "tiny_run", "browser"}
HEAVY_SOURCE = ("subprocess", "ray.init", "init_ray", "run_atlas", "fit_stages", "run_training", "run_sweep",
                "chromium")


def pytest_collection_modifyitems(config, items):
    heavy: dict[str, bool] = {}
    for item in items:
        path = str(item.path)
        if path not in heavy:
            src = item.path.read_text() if item.path.suffix == ".py" else ""
            heavy[path] = any(s in src for s in HEAVY_SOURCE)
        if heavy[path] or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
