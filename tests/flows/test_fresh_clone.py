"""The commands a newcomer runs, as the README and the flows' docstrings write them, in a fresh clone.

The repository is cloned into a new temporary folder and every command runs there as a subprocess, with the
clone as working directory, no flags beyond the ones the docs show and no absolute path on any command line:
relative default storages (runs/dry-run, runs/atlas-dry-run, runs/sweep-dry-run, data/x) must reach Ray Train
workers, atlas actors and Tune trials, which do not run in the driver's directory. Each flow starts its own
local Ray, as it does for a user. MLflow is the default SQLite store under a private DGN_HOME (an environment
variable, as a user's ~/.dgn would be).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None,
                                reason="needs the project's git checkout to clone")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    base = tmp_path_factory.mktemp("fresh")
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(base / "dgn")], check=True, timeout=120)
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PYTHONPATH")}
    env.update(DGN_HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    return base / "dgn", env, home


def _newcomer(clone, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
    repo, env, _ = clone
    argv = command.split()
    assert not any(os.path.isabs(a) for a in argv), command
    argv[0] = sys.executable if argv[0] == "python" else argv[0]  # this interpreter: the one with the project installed
    r = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{command} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-4000:]
    return r


def _runs(home: Path, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_prepare_data(clone):
    repo = clone[0]
    r = _newcomer(clone, "python flows/prepare_data.py --out data/x")
    for split in ("train", "val"):
        assert list((repo / "data" / "x" / split).glob("*.parquet")), split
    assert "to data/x" in r.stdout


def test_train_dry_run_then_resume(clone):
    repo, _, home = clone
    r = _newcomer(clone, "python flows/train.py --dry-run")
    storage = repo / "runs" / "dry-run"
    q = json.loads((storage / "quality.json").read_text())
    assert q["config"]["storage"] == str(storage)  # stored in its one normal form
    assert (storage / "classifier" / "epoch=0001.pt").is_file()
    assert (storage / "atlas" / "html" / "index.html").is_file()
    assert "time per stage" in r.stdout and "  total " in r.stdout
    for k in ("recon_judge_acc", "am_recognisability", "am_median_activation_ratio", "am_realism_fd"):
        assert k in q
    assert 0.0 <= q["am_realism_precision"] <= 1.0 and 0.0 <= q["am_realism_recall"] <= 1.0
    assert q["am_realism_n"] == 10 and q["am_realism_floor_fd"] >= 0  # 10 AM images vs 10 real, floor at N = 10
    assert q["config"]["workers"] == 2 and (storage / "montage-dgn-am-fc8.png").is_file()
    assert (storage / "judge" / "judge.pt").is_file() and (storage / "generator" / "fc6" / "epoch=0001.pt").is_file()
    for line in ("classifier E checkpoint 1/1 (step 6)", "judge checkpoint 1/1 (step 6)",
                 "generator G checkpoint 1/1 (step 6)",  # progress lines
                 f"browse the results with: mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'}"):
        assert line in r.stdout, line
    (run,) = _runs(home, "dgn-train")
    assert run.info.status == "FINISHED" and run.data.tags["dgn.storage"] == str(storage)
    assert run.info.run_name == "dry-run" and run.data.params["workers"] == "2"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "classifier_val_acc")] == [1]
    for key in ("generator_image", "generator_feature", "generator_adversarial", "judge_val_acc",
                "quality_am_recognisability", "atlas_fc8_median_ratio"):
        assert key in run.data.metrics, key
    assert run.data.tags["checkpoint.classifier.0001"] == str(storage / "classifier" / "epoch=0001.pt")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoints.json", "quality.json", "montage-dgn-am-fc8.png", "images"} <= artifacts
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("reconstructions" in p for p in images), images

    again = _newcomer(clone, "python flows/train.py --dry-run")
    for stage in ("classifier", "judge", "generator"):
        assert f"{stage}: all 1 checkpoints are in storage; skipped" in again.stdout, again.stdout[-3000:]
    assert "quality.json exists and no training happened; skipped" in again.stdout
    assert "0 item(s), 0 unit(s) to render" in again.stdout, again.stdout[-3000:]
    assert "continuing run 'dry-run'" in again.stdout
    (same,) = _runs(home, "dgn-train")
    assert same.info.run_id == run.info.run_id and same.info.status == "FINISHED"


def test_atlas_dry_run(clone):
    repo = clone[0]
    r = _newcomer(clone, "python flows/atlas.py --dry-run")
    html = repo / "runs" / "atlas-dry-run" / "atlas" / "html" / "index.html"
    assert html.is_file() and "fc8" in html.read_text()
    assert f"open {html}" in r.stdout


def test_sweep_quick(clone):
    repo = clone[0]
    r = _newcomer(clone, "python flows/sweep_layers.py --dry-run")
    table = repo / "runs" / "sweep-dry-run" / "sweep_table.md"
    assert table.is_file() and "fc6" in table.read_text(), r.stdout[-2000:]
