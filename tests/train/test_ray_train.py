"""The Ray Train loops on a real local Ray cluster: DDP equivalence, worker restarts, divergence."""

from __future__ import annotations


import pytest

from dgn.data import read_meta, write_synthetic
from dgn.train.checkpoint import load_checkpoint
from dgn.train.ray_fit import Scaling, fit_stages
from dgn.storage import RunLayout
from tests.support.ray_local import local_ray


@pytest.fixture(scope="module")
def ray_cluster():
    with local_ray():
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("data") / "ds")
    write_synthetic(uri, n_train=64, n_val=32, seed=0, image_size=32)
    return uri


def _classifier(data, storage, **over):
    meta = read_meta(data)
    return {**dict(kind="classifier", data=data, storage=str(storage), image_size=32, arch="small",
                   num_classes=meta.num_classes, class_names=meta.class_names, n_train=64, steps=3, checkpoints=3, lr=3e-3,
                   batch_size=64, seed=0), **over}


def _fit(cfg, workers, tmp_path, **scaling):
    events = []
    fit_stages([("classifier", cfg)], name=f"t-{workers}", on_event=events.append,
               scaling=Scaling(workers=workers, cpus_per_worker=1, ray_storage=str(tmp_path / "ray"), **scaling))
    return events


def test_one_and_two_workers_train_alike_in_memory_and_streamed(ray_cluster, data, tmp_path):
    # The global batch (64) is the whole training set, so 1 worker × 64 rows and 2 workers × 32 rows see
    # the same rows each step, and DDP's mean of the two half-batch gradients is the full-batch gradient.
    # Dropout and BatchNorm are off (masks and batch statistics are per worker), so what remains is
    # float summation order: parameters agree to 1e-4 after 3 Adam steps that move them by ~1e-2. The same holds
    # streamed from Parquet (dgn.data.streaming): each worker reads its half of the pass, the global batch is fixed.
    runs = {}
    for name, w, stream_above_mb in (("w1", 1, None), ("w2", 2, None), ("w2-streamed", 2, 0)):
        cfg = _classifier(data, tmp_path / name, arch_overrides={"dropout": 0.0, "batchnorm": False},
                          stream_above_mb=stream_above_mb)
        events = [e for e in _fit(cfg, w, tmp_path) if "epoch" in e]
        assert [e["epoch"] for e in events] == [1, 2, 3]
        runs[name] = (events, load_checkpoint(str(tmp_path / name / "classifier" / "epoch=0003.pt"))["model"])
    first = load_checkpoint(str(tmp_path / "w1" / "classifier" / "epoch=0001.pt"))["model"]
    moved = max((runs["w1"][1][k] - first[k]).abs().max().item() for k in first)
    assert moved > 1e-3, moved
    for other in ("w2", "w2-streamed"):
        diff = max((runs["w1"][1][k] - runs[other][1][k]).abs().max().item() for k in first)
        assert diff < 1e-4, (other, moved, diff)
        for a, b in zip(runs["w1"][0], runs[other][0]):
            assert a["metrics"]["train_loss"] == pytest.approx(b["metrics"]["train_loss"], rel=1e-4), other
            assert a["metrics"]["val_acc"] == pytest.approx(b["metrics"]["val_acc"], abs=1e-6), other


def test_dead_worker_restarts_from_last_checkpoint(ray_cluster, data, tmp_path, monkeypatch):
    # on the streamed input: the restarted group starts at step 2's window (tests/data/test_streaming.py checks
    # the batches; tests/train/test_loops.py that a resumed stage ends with an uninterrupted one's weights)
    marker = tmp_path / "died"
    monkeypatch.setenv("DGN_TEST_WORKER_EXIT", f"classifier:2:1:{marker}")  # rank 1 exits mid-epoch 2, once
    events = _fit(_classifier(data, tmp_path / "st", batch_size=32, steps=6, stream_above_mb=0), 2, tmp_path,
                  max_failures=1)
    assert marker.exists()
    inputs = {e["note"] for e in events if e.get("note", "").startswith("input:")}
    assert len(inputs) == 1 and inputs.pop().startswith("input: streaming from Parquet")
    notes = [e["note"] for e in events if "note" in e and not e["note"].startswith("input:")]
    assert len(notes) == 1 and "resuming at checkpoint 2" in notes[0]
    assert [e["epoch"] for e in events if "epoch" in e] == [1, 2, 3]  # checkpoint 2 reported once, after the restart
    assert RunLayout(str(tmp_path / "st")).epochs("classifier") == [1, 2, 3]


def test_divergence_stops_with_one_sentence(ray_cluster, data, tmp_path):
    events = _fit(_classifier(data, tmp_path / "st", lr=1e12, batch_size=32, steps=6), 1, tmp_path, max_failures=0)
    bad = [e["diverged"] for e in events if "diverged" in e]
    assert len(bad) == 1 and "diverged before step 2" in bad[0] and "not finite" in bad[0]
    assert RunLayout(str(tmp_path / "st")).epochs("classifier") == []  # no checkpoint of a diverged epoch
