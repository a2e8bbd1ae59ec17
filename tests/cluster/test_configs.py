"""The cluster configs parse and say what the docs say; the local dev cluster starts, binds its front doors to
127.0.0.1 only, and stops exactly what it started."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.faults.helpers import listening_addresses
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _load(path: str):
    docs = list(yaml.safe_load_all((ROOT / path).read_text()))
    assert len(docs) == 1 and isinstance(docs[0], dict), path
    return docs[0]


def test_ray_cluster_launcher_config():
    c = _load("ray_cluster.yaml")
    assert c["provider"]["type"] == "aws" and c["head_node_type"] in c["available_node_types"]
    head = c["available_node_types"][c["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is a CPU node"
    gpu = [t for n, t in c["available_node_types"].items() if n != c["head_node_type"]]
    assert gpu and all(t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot" for t in gpu)
    assert all(t["max_workers"] <= c["max_workers"] for t in gpu)
    assert c["docker"]["image"].startswith("rayproject/ray:2.60") and c["setup_commands"]
    start = " ".join(c["head_start_ray_commands"])
    # the dashboard / job API and MLflow listen on the head's loopback only: reached by SSH port forwarding
    assert "--dashboard-host=127.0.0.1" in start
    assert re.search(r"mlflow server --host 127\.0\.0\.1 --port 5000", start)
    assert "s3://" in start, "MLflow's artifacts go to S3"
    assert "0.0.0.0" not in start


def test_kuberay_manifests_and_runtime_env():
    cluster, job, env = _load("cluster/raycluster.yaml"), _load("cluster/rayjob.yaml"), _load(
        "cluster/runtime_env.yaml")
    assert cluster["kind"] == "RayCluster" and job["kind"] == "RayJob"
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["rayVersion"] == "2.60.0"
        assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "no work on the head"
        (workers,) = spec["workerGroupSpecs"]
        limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"
    assert job["spec"]["entrypoint"].split()[:2] == ["python", "flows/train.py"]
    job_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert set(job_env) <= {"working_dir", "env_vars", "excludes", "pip"}
    assert env["working_dir"] == "." and ".git" in env["excludes"]
    assert "AWS_SECRET_ACCESS_KEY" not in (ROOT / "cluster" / "runtime_env.yaml").read_text(), \
        "credentials never ride in a runtime env (it is stored with the job)"


@pytest.mark.slow
def test_local_dev_cluster_up_status_down():
    ports = {k: free_port() for k in ("RAY", "DASHBOARD", "MLFLOW", "MOTO")}
    state = Path(tempfile.mkdtemp(prefix="dgn-devc-"))
    env = {**os.environ, "DGN_DEV_CLUSTER_DIR": str(state), "DGN_DEV_RAY_TEMP_DIR": f"/tmp/devc-{ports['RAY']}",
           "RAY_USAGE_STATS_ENABLED": "0", **{f"DGN_DEV_{k}_PORT": str(v) for k, v in ports.items()}}
    env.pop("RAY_ADDRESS", None)
    script = ["bash", str(ROOT / "cluster" / "local_dev_cluster.sh")]
    try:
        up = subprocess.run([*script, "up", "--num-cpus", "1"], env=env, capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        st = subprocess.run([*script, "status"], env=env, capture_output=True, text=True, timeout=120)
        assert st.returncode == 0, st.stdout + st.stderr
        for name in ("DASHBOARD", "MLFLOW", "MOTO"):
            assert listening_addresses(ports[name]) == {"127.0.0.1"}, name
        env_sh = (state / "env.sh").read_text()
        assert f"MLFLOW_TRACKING_URI=http://127.0.0.1:{ports['MLFLOW']}" in env_sh
        assert f"RAY_API_SERVER_ADDRESS=http://127.0.0.1:{ports['DASHBOARD']}" in env_sh
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['MLFLOW']}/health", timeout=10) as r:
            assert r.status == 200
        pids = [int((state / f"{n}.pid").read_text()) for n in ("ray", "mlflow", "moto")]
    finally:
        down = subprocess.run([*script, "down"], env=env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    for name in ("DASHBOARD", "MLFLOW", "MOTO", "RAY"):
        assert listening_addresses(ports[name]) == set(), f"{name} port still open after down"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    shutil.rmtree(state, ignore_errors=True)
