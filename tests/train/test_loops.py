"""The training loops in this process (no Ray): step budgets, the batch stream, checkpoints by step."""

from __future__ import annotations

import pytest
import torch

from dgn.data import read_meta, write_synthetic
from dgn.errors import DGNError
from dgn.job.config import preset_config
from dgn.job.stages import stage_configs
from dgn.storage import RunLayout
from dgn.train.checkpoint import load_checkpoint
from dgn.train.classifier import load_encoder
from dgn.train.loops import fit_local, schedule, stream


def test_schedule_spaces_checkpoints_evenly_and_ends_at_the_budget():
    assert schedule(500, 4) == [125, 250, 375, 500]
    assert schedule(10, 3) == [3, 7, 10]
    assert schedule(2, 5) == [1, 2]  # never more checkpoints than steps
    with pytest.raises(DGNError, match="≥ 1 step"):
        schedule(0, 1)


@pytest.mark.parametrize("n", [40, 400])
def test_a_budget_is_the_same_number_of_steps_whatever_the_dataset_size(n):
    x = torch.randint(0, 255, (n, 3, 4, 4), dtype=torch.uint8)
    batches = list(stream(x, None, local=8, start=0, stop=30, seed=0, rank=0, device="cpu"))
    assert len(batches) == 30 and all(b.shape == (8, 3, 4, 4) for b in batches)


def test_a_resumed_stream_gives_the_batches_an_unbroken_one_gives():
    x = torch.arange(50 * 3, dtype=torch.uint8).view(50, 3, 1, 1)
    y = torch.arange(50)
    whole = list(stream(x, y, local=8, start=0, stop=20, seed=3, rank=1, device="cpu"))
    parts = [b for lo, hi in ((0, 7), (7, 13), (13, 20))
             for b in stream(x, y, local=8, start=lo, stop=hi, seed=3, rank=1, device="cpu")]
    assert len(parts) == 20 and all(torch.equal(a[1], b[1]) for a, b in zip(whole, parts))
    first_pass = torch.cat([b[1] for b in whole[:6]])  # 50 // 8 = 6 batches a pass, each row at most once
    assert len(set(first_pass.tolist())) == 48


def test_fit_local_trains_the_job_stages_in_this_process(tmp_path):
    data = str(tmp_path / "data")
    write_synthetic(data, n_train=48, n_val=16, seed=0, image_size=32)
    meta = read_meta(data)
    cfg = dict(kind="judge", data=data, storage=str(tmp_path / "run"), image_size=32, num_classes=meta.num_classes,
               class_names=meta.class_names, n_train=48, steps=5, checkpoints=2, lr=3e-3, batch_size=16, seed=0)
    events = []
    fit_local([("judge", cfg)], on_event=events.append, threads=1)
    done = [e for e in events if "epoch" in e]
    assert [(e["epoch"], e["step"]) for e in done] == [(1, 2), (2, 5)]  # 48 rows / 16 = 3 a pass: 5 steps span 2
    layout = RunLayout(cfg["storage"])
    assert layout.epochs("judge") == [1, 2] and load_checkpoint(layout.judge, "judge")["step"] == 5
    again = []
    fit_local([("judge", cfg)], on_event=again.append, threads=1)  # all checkpoints there: nothing to do
    assert again == []


def test_a_streamed_stage_resumed_from_a_checkpoint_ends_as_an_unbroken_one(tmp_path):
    # the streamed input (dgn.data.streaming) gives step s the same batch after a resume, so with dropout off the
    # resumed stage's last weights are the uninterrupted stage's
    import shutil

    data = str(tmp_path / "data")
    write_synthetic(data, n_train=48, n_val=16, seed=0, image_size=32)
    meta = read_meta(data)
    cfg = dict(kind="classifier", data=data, image_size=32, arch="small", num_classes=meta.num_classes,
               class_names=meta.class_names, n_train=48, steps=9, checkpoints=3, lr=3e-3, batch_size=16, seed=0,
               stream_above_mb=0, stream_window=20, arch_overrides={"dropout": 0.0})
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    events = []
    fit_local([("classifier", {**cfg, "storage": str(whole)})], on_event=events.append, threads=1)
    assert any(e.get("note", "").startswith("input: streaming") for e in events)
    (resumed / "classifier").mkdir(parents=True)
    shutil.copy(whole / "classifier" / "epoch=0001.pt", resumed / "classifier")  # as if it died after checkpoint 1
    notes = []
    fit_local([("classifier", {**cfg, "storage": str(resumed)})], on_event=notes.append, threads=1)
    assert any("resuming at checkpoint 2" in e.get("note", "") for e in notes)
    a = load_checkpoint(str(whole / "classifier" / "epoch=0003.pt"))["model"]
    b = load_checkpoint(str(resumed / "classifier" / "epoch=0003.pt"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_generator_stage_trains_on_the_streamed_input(tmp_path):
    from dgn.train.gan import GANConfig

    data = str(tmp_path / "data")
    write_synthetic(data, n_train=48, n_val=16, seed=0, image_size=32)
    meta = read_meta(data)
    common = dict(data=data, storage=str(tmp_path / "run"), image_size=32, num_classes=meta.num_classes,
                  class_names=meta.class_names, n_train=48, batch_size=16, seed=0, stream_above_mb=0,
                  stream_window=20)
    layout = RunLayout(common["storage"])
    stages = [("classifier", dict(common, kind="classifier", arch="small", steps=2, checkpoints=1, lr=3e-3)),
              ("generator", dict(common, encoder=layout.checkpoint("classifier", 1), gan=GANConfig().to_dict(),
                                 steps=4, checkpoints=2))]
    events = []
    fit_local(stages, on_event=events.append, threads=1)
    inputs = [e["stage"] for e in events if e.get("note", "").startswith("input: streaming from Parquet")]
    assert inputs == ["classifier", "generator"]
    gen = [(e["epoch"], e["step"]) for e in events if e["stage"] == "generator" and "epoch" in e]
    assert gen == [(1, 2), (2, 4)] and not [e for e in events if "diverged" in e]


def test_an_independent_comparator_is_its_own_stage_and_g_compares_against_it(tmp_path):
    data = str(tmp_path / "data")
    write_synthetic(data, n_train=48, n_val=16, seed=0, image_size=32)
    meta = read_meta(data)
    small = dict(data=data, storage=str(tmp_path / "run"), image_size=32, batch_size=16, classifier_steps=3,
                 classifier_checkpoints=1, judge_steps=2, judge_checkpoints=1, gan_steps=2, gan_checkpoints=1,
                 learned_factor=0.0, atlas_units="none")
    default = stage_configs(preset_config(**small), data, meta)
    assert [s for s, _ in default] == ["classifier", "judge", "generator"] and default[-1][1]["comparator"] == ""
    stages = stage_configs(preset_config(**small, gan={"comparator": "independent"}), data, meta)
    assert [s for s, _ in stages] == ["classifier", "judge", "comparator", "generator"]
    events = []
    fit_local(stages, on_event=events.append, threads=1)
    layout = RunLayout(small["storage"])
    assert stages[-1][1]["comparator"] == layout.checkpoint("comparator", 1)
    e, c = load_encoder(layout.checkpoint("classifier", 1)), load_encoder(layout.checkpoint("comparator", 1))
    assert c.config == e.config  # E's recipe ...
    assert not torch.equal(c.state_dict()["fc8.weight"], e.state_dict()["fc8.weight"])  # ... another seed
    notes = [e["note"] for e in events if e.get("stage") == "generator" and "note" in e]
    assert any("independent comparator" in n for n in notes), notes
    assert [e["step"] for e in events if e.get("stage") == "comparator" and "epoch" in e] == [3]
