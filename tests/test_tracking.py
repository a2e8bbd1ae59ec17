"""dgn.tracking against a real ``mlflow server`` on 127.0.0.1: continued runs, failed runs, secrets, bad URIs."""

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from dgn.errors import DGNError
from dgn.tracking import open_run, tracking_uri
from dgn.tracking.core import flatten


def test_default_store_is_stable_and_private(monkeypatch, tmp_path):
    monkeypatch.setenv("DGN_HOME", str(tmp_path / "home"))
    assert tracking_uri() == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"


def test_run_is_continued_not_duplicated(mlflow_url, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    with open_run(experiment="t", run_name="r1", params={"gan": {"w_adv": 0.01}}) as run:
        run.log_metrics({"loss": 1.0}, step=1)
        run.log_image(np.zeros((8, 8, 3), np.uint8), key="atlas-fc8", step=1)
    with open_run(experiment="t", run_name="r1", params={"gan": {"w_adv": 0.01}, "epochs": 3}) as again:
        assert again.resumed and again.run_id == run.run_id
        again.log_metrics({"loss": 0.5}, step=2)
    client = MlflowClient(mlflow_url)
    runs = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run.run_id, "loss")] == [1.0, 0.5]
    assert runs[0].data.params == {"gan.w_adv": "0.01", "epochs": "3"}


def test_failure_marks_the_run_failed(mlflow_url, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    with pytest.raises(RuntimeError):
        with open_run(experiment="t", run_name="boom") as run:
            raise RuntimeError("crash")
    assert MlflowClient(mlflow_url).get_run(run.run_id).info.status == "FAILED"


def test_secrets_never_logged(mlflow_url, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "PLANTED-SECRET-123")
    cfg = {"storage": "s3://b/x?key=PLANTED-SECRET-123", "aws_secret_access_key": "whatever", "s3": {"token": "t0k"}}
    assert flatten(cfg) == {"storage": "s3://b/x?key=***", "aws_secret_access_key": "***", "s3.token": "***"}
    with open_run(experiment="t", run_name="sec", params=cfg, tags={"note": "PLANTED-SECRET-123"}) as run:
        run.log_text("creds PLANTED-SECRET-123", "log.txt")
    r = MlflowClient(mlflow_url).get_run(run.run_id)
    assert "PLANTED" not in repr(r.data.params) + repr(r.data.tags)
    path = MlflowClient(mlflow_url).download_artifacts(run.run_id, "log.txt")
    assert "PLANTED" not in open(path).read()


def test_unreachable_server_is_one_sentence(monkeypatch):
    from tests.support.servers import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DGNError, match="is unreachable"):
        open_run(experiment="t", run_name="x")
