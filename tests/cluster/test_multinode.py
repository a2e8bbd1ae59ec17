"""Multi-node on one machine: a ``ray.cluster_utils.Cluster`` with a CPU-less head and two 1-CPU worker nodes, the
flows joining it through RAY_ADDRESS. As on a real cluster, where nodes share no disk, everything the nodes share is
on S3 (a moto server on 127.0.0.1, ``s3_bucket`` in tests/conftest.py, whose AWS_* settings every node inherits):
the dataset, the checkpoints, Ray Train's run state, the atlas's run, its items and manifest. Only the driver's
MLflow store (under the test's DGN_HOME) and the flows' logs are local.

Each run loses a worker node mid-run (``remove_node``, not graceful: a crash or a reclaimed spot node) and gains a
fresh one, as an autoscaler would; the run must finish from its last checkpoint (training) or manifest (atlas)
with nothing lost. The tests print what was redone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dgn.atlas.demo import write_tiny_run
from dgn.atlas.manifest import read_if_present
from dgn.data import read_meta
from dgn.storage import RunLayout, exists, join
from tests.support.servers import free_port
from tests.train.ray_head import RAY_ENV

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(s3_bucket):  # the S3 settings first: the nodes' processes inherit them
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        for k, v in RAY_ENV.items():
            mp.setenv(k, v)
        mp.delenv("RAY_ADDRESS", raising=False)
        temp = tempfile.mkdtemp(prefix="raymn-", dir="/tmp")  # short: Ray's socket paths have a length limit
        c = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=0, gcs_server_port=free_port(), include_dashboard=False,
            object_store_memory=100 * MB, temp_dir=temp))
        for _ in range(2):
            c.add_node(num_cpus=1, object_store_memory=100 * MB)
        c.wait_for_nodes()
        try:
            yield c
        finally:
            c.shutdown()


def _start(flow: str, *args: str, address: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, **RAY_ENV, "RAY_ADDRESS": address}
    return subprocess.Popen([sys.executable, str(ROOT / "flows" / f"{flow}.py"), *args], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True)


def _wait_for(cond, proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    t = time.time()
    while not cond():
        assert proc.poll() is None, f"the flow ended before the node was removed:\n{log.read_text()[-3000:]}"
        assert time.time() - t < timeout, log.read_text()[-3000:]
        time.sleep(0.2)


def _replace_a_worker_node(c) -> None:
    """Kill one worker node outright, then add a fresh one (what the autoscaler does for a lost spot node)."""
    victim = sorted(c.worker_nodes, key=lambda n: n.unique_id)[-1]
    c.remove_node(victim, allow_graceful=False)
    c.add_node(num_cpus=1, object_store_memory=100 * MB)


def _nothing_local(tmp_path: Path, *expected: str) -> None:
    """Only the logs and the config are on local disk (the driver's MLflow store is under DGN_HOME)."""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "dgn-home") == sorted(expected)


def test_training_loses_a_node_and_finishes_from_its_last_checkpoint(cluster, s3_bucket, tmp_path):
    storage, log = f"s3://{s3_bucket}/multinode/run", tmp_path / "train.log"
    layout = RunLayout(storage)
    cfg = tmp_path / "cfg.yaml"
    # no atlas stage here: the atlas's own node loss is the next test
    cfg.write_text("n_train: 1200\nclassifier_steps: 96\nclassifier_checkpoints: 4\natlas_units: none\n")
    # no --data: the driver writes the embedded dataset to <storage>/data on S3, where the workers read it
    proc = _start("train", "--dry-run", "--config", str(cfg), "--storage", storage, "--workers", "2",
                  address=cluster.address, log=log)
    try:
        _wait_for(lambda: len(layout.epochs("classifier")) >= 1, proc, log)
        saved_at_loss = layout.epochs("classifier")
        _replace_a_worker_node(cluster)
        assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    finally:
        proc.kill()
    out = log.read_text()
    assert f"data: wrote the embedded dataset to {storage}/data" in out
    assert read_meta(layout.data).counts["train"] == 1200
    assert layout.epochs("classifier") == [1, 2, 3, 4]
    assert layout.epochs(layout.generator_dir("fc6")) == [1] and exists(layout.quality)
    assert exists(layout.ray, folder=True)  # Ray Train's run state, on S3 too
    _nothing_local(tmp_path, "cfg.yaml", "train.log")
    resumed = [int(m) for m in re.findall(r"resuming at checkpoint (\d+)", out)]
    assert resumed and resumed[0] in (saved_at_loss[-1] + 1, saved_at_loss[-1] + 2), out[-3000:]
    # nothing lost, nothing twice: one MLflow value per classifier epoch, in one run
    from mlflow.tracking import MlflowClient

    from dgn.tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("dgn-train").experiment_id])
    assert run.info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "classifier_val_acc"))
    assert steps == [1, 2, 3, 4]
    print(f"\nnode lost with classifier epochs {saved_at_loss} saved; resumed at epoch {resumed[0]}: "
          f"{resumed[0] - 1 - saved_at_loss[-1] + 1} epoch(s) of work redone at most (the one in flight), "
          f"0 checkpointed epochs lost")


def test_atlas_loses_a_node_and_redoes_only_the_items_in_flight(cluster, s3_bucket, tmp_path):
    storage = write_tiny_run(f"s3://{s3_bucket}/multinode/tiny")  # its data, checkpoints and judge, on S3
    out, log = f"s3://{s3_bucket}/multinode/atlas", tmp_path / "atlas.log"
    proc = _start("atlas", "--storage", storage, "--out", out, "--layers", "fc8,fc7", "--units",
                  "fc8=all;fc7=0-15", "--chunk", "4", "--steps", "20", "--actors", "2", "--no-tracking",
                  address=cluster.address, log=log)
    manifest = join(out, "manifest.json")

    def items_done() -> int:
        raw = read_if_present(manifest)  # None until the driver's first PUT
        try:
            return len(json.loads(raw)["items"]) if raw else 0
        except (ValueError, KeyError):
            return 0

    try:
        _wait_for(lambda: items_done() >= 2, proc, log)
        done_at_loss = items_done()
        _replace_a_worker_node(cluster)
        assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    finally:
        proc.kill()
    text = log.read_text()
    summary = json.loads(text[text.rindex("{"):text.rindex("}") + 1])
    items = json.loads(read_if_present(manifest))["items"]
    # 2 classifier checkpoints × (fc8: 10 units in 3 items of ≤ 4, fc7: 16 units in 4 items)
    assert summary["items_skipped"] == 0 and len(items) == summary["items_done"] == 2 * (3 + 4)
    assert summary["units_rendered"] == 2 * (10 + 16)  # every unit exactly once: none lost, none counted twice
    assert {int(s) for s in re.findall(r"on actor (\d+) in", text)} == {0, 1}, "both worker nodes rendered"
    redone = re.findall(r"actor (\d+) died during (\S+) .*redoing the item", text)
    assert redone, "the node's actor was lost mid-item and its item redone"
    for key in items:  # each item's result beside the manifest, and the static atlas uploaded
        assert exists(join(out, "items", f"{key}.npz")), key
    assert exists(join(out, "html", "index.html")) and exists(join(out, "html", "fc7", "epoch=0002", "grid.png"))
    _nothing_local(tmp_path, "atlas.log")
    print(f"\natlas: node lost after {done_at_loss} of {len(items)} items were in the manifest; items redone: "
          f"{len(redone)} ({', '.join(i for _, i in redone)}), items lost: 0")
