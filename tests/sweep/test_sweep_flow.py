"""The quick sweep end to end on real Ray Tune and a real MLflow server: outputs, ASHA's stop path, resume.

One quick sweep (7 layers × 1 weight set, a few steps) runs in this process on a
Ray instance this module owns with TWO CPUs, one per trial: once two trials ASHA
stopped had kept their CPUs, no later trial could start and the sweep would hang,
and at the end every CPU must be free again. The resume test gives a driver
subprocess a tiny E and judge (--run), interrupts it with SIGINT once a trial has
finished, and runs the same command again.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "flows/sweep_layers.py"
LAYERS = ("conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8")


@pytest.fixture(scope="module")
def two_cpu_ray():
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200_000_000,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def quick(two_cpu_ray, mlflow_url, tmp_path_factory):
    from dgn.sweep.config import sweep_config
    from dgn.sweep.run import run_sweep

    storage = tmp_path_factory.mktemp("sweep") / "quick"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    mp.setenv("DGN_HOME", str(storage.parent / "dgn-home"))
    try:
        cfg = sweep_config("quick", storage=str(storage), num_cpus=2, cpus_per_trial=1, max_concurrent_trials=2)
        t = time.time()
        result = run_sweep(cfg, log=print)
        result["wall"] = time.time() - t
        yield storage, result, cfg
    finally:
        mp.undo()


def test_quick_sweep_writes_table_figure_and_verdict(quick):
    storage, result, cfg = quick
    assert not result["interrupted"]
    rows = list(csv.DictReader((storage / "sweep_table.csv").open()))
    assert sorted(r["layer"] for r in rows) == sorted(LAYERS)
    assert all(r["status"] == "TERMINATED" and int(r["epochs"]) >= 1 for r in rows)
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    v = result["verdict"]
    best = max(result["summary"], key=lambda s: s["best_score"])
    assert v["best_layer"] == best["layer"] in LAYERS and v["margin"] >= 0
    assert f"best layer: {v['best_layer']}" in (storage / "sweep_table.md").read_text()
    from PIL import Image

    fig = Image.open(storage / "sweep_layers.png")
    assert fig.size == (90 + 10 * 66, 16 + len(LAYERS) * 66)  # a row per layer, a column per fc8 unit


def test_asha_stops_weak_trials_and_their_cpu_is_released(quick, two_cpu_ray):
    storage, result, cfg = quick
    rows = result["rows"]
    stopped = [r for r in rows if r["stopped_early"]]
    assert stopped, "ASHA stopped no trial"
    assert any(r["epochs"] == cfg.epochs for r in rows)  # and let the best run to max_t
    # Two CPUs, 7 trials, some stopped: a stopped trial that kept its CPU would still hold it now (and two such
    # would have hung the sweep); all are back.
    assert len(rows) == 7
    assert two_cpu_ray.available_resources().get("CPU", 0) == pytest.approx(2.0)


def test_mlflow_has_a_parent_and_a_child_per_trial(quick, mlflow_url):
    from mlflow.tracking import MlflowClient

    storage, result, cfg = quick
    client = MlflowClient(mlflow_url)
    exp = client.get_experiment_by_name(cfg.experiment)
    parent = client.get_run(result["mlflow_run_id"])
    assert parent.data.params["best_layer"] == result["verdict"]["best_layer"]
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.params["layer"] for c in children) == sorted(LAYERS)
    # the tables are written once Tune has finished, before log_sweep: epochs logged live are older than them
    tables_written_ms = (storage / "sweep_table.csv").stat().st_mtime * 1000
    for c in children:
        hist = client.get_metric_history(c.info.run_id, "score")
        assert [m.step for m in hist] == list(range(1, int(c.data.metrics["epochs"]) + 1))  # one point per epoch
        assert all(m.timestamp < tables_written_ms for m in hist), "trial epochs were not logged while it ran"
        assert c.info.status == "FINISHED" and c.data.tags["status"] == "TERMINATED"
    assert parent.info.status == "FINISHED"
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_table.csv", "sweep_table.md", "sweep_layers.png"} <= arts


def _events(storage: Path) -> dict[str, list[str]]:
    d = storage / "events"
    return {f.stem: f.read_text().split("\n")[:-1] for f in d.glob("*.log")} if d.is_dir() else {}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A train.py-style storage with a tiny E and judge (no Ray needed)."""
    from dgn.sweep.base import prepare_base
    from dgn.sweep.config import sweep_config

    storage = tmp_path_factory.mktemp("tiny") / "run"
    prepare_base(sweep_config("quick", storage=str(storage), n_train=200, n_val=100, classifier_steps=6,
                              judge_steps=6), log=print)
    return storage


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(tiny_run, tmp_path):
    base = tiny_run
    storage = tmp_path / "resume"
    cmd = [sys.executable, str(FLOW), "--dry-run", "--run", str(base), "--storage", str(storage), "--no-tracking",
           "--layers", "conv5,fc8", "--num-cpus", "1", "--max-concurrent-trials", "1"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 150
        while len(_events(storage)) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)  # one trial at a time: a second trial started ⇒ the first has finished
        assert len(_events(storage)) >= 2, "the first trial never finished"
        before = _events(storage)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-2000:]
    assert "interrupted" in out
    finished = sorted(before)[:-1]  # all but the one running at the interrupt
    assert finished

    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    after = _events(storage)
    assert len(after) == 2
    for tid in finished:
        assert after[tid] == before[tid], f"finished trial {tid} was run again"
    assert "resuming" in p.stdout
    rows = list(csv.DictReader((storage / "sweep_table.csv").open()))
    assert sorted(r["layer"] for r in rows) == ["conv5", "fc8"]
    assert all(r["status"] == "TERMINATED" for r in rows)

    # --fresh forgets the finished sweep and runs every trial again (new trial ids), keeping E and the judge
    p = subprocess.run(cmd + ["--fresh"], env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "--fresh: deleted" in p.stdout and "resuming" not in p.stdout
    fresh = _events(storage)
    assert len(fresh) == 2 and not set(fresh) & set(after)
