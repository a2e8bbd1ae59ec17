"""S3 end to end, with a planted secret: one real ``flows/train.py --dry-run`` whose dataset, checkpoints, Ray Train
run state and MLflow artifacts all live on a moto S3 server, tracked by a real ``mlflow server`` that proxies its
artifacts to that S3 (``--artifacts-destination s3://...``). Everything listens on 127.0.0.1.

The secret is planted twice: as AWS_SECRET_ACCESS_KEY in the flow's environment (moto accepts any key) and inside
a config value (the storage URI of the config file). It must not appear in MLflow's params, tags, metric names or
artifacts, nor in what the flow prints.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient

from tests.support.servers import mlflow_server, moto_server, s3_env
from tests.train.ray_head import RAY_ENV

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "dgn-e2e"


@pytest.fixture(scope="module")
def s3_and_mlflow(tmp_path_factory):
    with moto_server(BUCKET) as endpoint:
        env = s3_env(endpoint)
        with mlflow_server(tmp_path_factory.mktemp("mlflow-s3"), artifacts_destination=f"s3://{BUCKET}/mlflow",
                           env=env) as url:
            yield endpoint, url, env


def _objects(endpoint: str, prefix: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _all_artifacts(client: MlflowClient, run_id: str, dest: Path, path: str = "") -> list[Path]:
    files = []
    for a in client.list_artifacts(run_id, path):
        if a.is_dir:
            files += _all_artifacts(client, run_id, dest, a.path)
        else:
            files.append(Path(client.download_artifacts(run_id, a.path, str(dest))))
    return files


def test_train_flow_on_s3_leaks_no_secret(s3_and_mlflow, tmp_path):
    endpoint, url, env = s3_and_mlflow
    secret = "PLANTED" + secrets.token_hex(8)
    data, storage = f"s3://{BUCKET}/data", f"s3://{BUCKET}/runs/e2e-{secret}"
    cfg = tmp_path / "cfg.yaml"
    # the atlas stage on four fc8 units (one item): its pages and PNGs still go through the server to S3
    cfg.write_text(f"storage: {storage}\ndata: {data}\nrun_name: e2e\natlas_units: fc8=0-3\n")
    run_env = {**os.environ, **RAY_ENV, **env, "AWS_SECRET_ACCESS_KEY": secret, "MLFLOW_TRACKING_URI": url}
    run_env.pop("RAY_ADDRESS", None)  # a local Ray started by the flow: its workers inherit the S3 settings

    r = subprocess.run([sys.executable, "flows/prepare_data.py", "--out", data, "--n-train", "200", "--n-val", "100",
                        "--image-size", "64"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "flows/train.py", "--dry-run", "--config", str(cfg), "--num-cpus", "2"],
                       cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout[r.stdout.find("time per stage"):r.stdout.find("  total ") + 40])  # where an S3 run's time goes

    # checkpoints, Ray Train's run state and the report are on S3, none on local disk
    prefix = f"runs/e2e-{secret}/"
    keys = [k.removeprefix(prefix) for k in _objects(endpoint, prefix)]
    for want in ("classifier/epoch=0001.pt", "judge/judge.pt", "generator/fc6/epoch=0001.pt", "quality.json"):
        assert want in keys, sorted(keys)
    assert any(k.startswith("ray/") for k in keys), sorted(keys)
    assert not (ROOT / "runs" / f"e2e-{secret}").exists()

    # MLflow: the run finished, its artifacts went through the server to S3
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("dgn-train")
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.`dgn.run_name` = 'e2e'")
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = _objects(endpoint, "mlflow/")
    assert any(k.endswith("/quality.json") for k in stored), stored
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "quality.json", str(tmp_path))).read_text())
    assert report["config"]["storage"] == f"s3://{BUCKET}/runs/e2e-***"  # the artifact is a scrubbed copy

    # the secret: nowhere in params, tags, metric names, artifacts, or the flow's output
    assert secret not in json.dumps([run.data.params, run.data.tags, sorted(run.data.metrics)])
    files = _all_artifacts(client, run.info.run_id, tmp_path / "artifacts")
    assert any(f.name == "index.html" for f in files) and any(f.name == "unit-0003.png" for f in files)  # the atlas's
    for f in files:
        assert secret.encode() not in f.read_bytes(), f
    for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
        assert secret not in text, f"the secret is in the flow's {name}"
