"""``ray job submit --working-dir . -- python flows/train.py`` on a real ``ray start --head`` cluster,
logging to a real ``mlflow server`` on 127.0.0.1: the checkpoints and the MLflow run exist after the job."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.train.ray_head import RAY_ENV, ray_head

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    with ray_head(2, dashboard=True) as (address, url):
        yield address, url


def test_job_submit_tiny_config(cluster, mlflow_url, tmp_path):
    _, dashboard = cluster
    storage = tmp_path / "job-run"  # absolute: the job's working dir is temporary
    env_vars = {"MLFLOW_TRACKING_URI": mlflow_url, "DGN_HOME": str(tmp_path / "home"), **RAY_ENV}
    cmd = ["ray", "job", "submit", "--address", dashboard, "--working-dir", ".",
           "--runtime-env-json", json.dumps({"env_vars": env_vars}),
           "--", "python", "flows/train.py", "--dry-run", "--storage", str(storage), "--run-name", "job-tiny"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **RAY_ENV})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "classifier E checkpoint 1/1" in out  # the driver's progress, streamed by ray job submit
    assert f"browse the results at {mlflow_url}" in out
    assert (storage / "classifier" / "epoch=0001.pt").is_file()
    assert (storage / "generator" / "fc6" / "epoch=0001.pt").is_file()
    assert (storage / "quality.json").is_file()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_url)
    exp = client.get_experiment_by_name("dgn-train")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`dgn.run_name` = 'job-tiny'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.tags["checkpoint.generator.0001"] == str(storage / "generator" / "fc6" / "epoch=0001.pt")
    assert "classifier_val_acc" in run.data.metrics and "generator_image" in run.data.metrics
    assert {"checkpoints.json", "quality.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
