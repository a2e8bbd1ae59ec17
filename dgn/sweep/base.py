"""What every trial shares: the dataset, E and the judge — trained once, before the sweep.

Either taken from a finished ``flows/train.py`` storage (``run``: the last
``classifier/epoch=*.pt`` and ``judge/judge.pt``), or trained here by the main
job's own classifier and judge stages (dgn.train.loops, in this process, at
the sweep's image size) into the same layout under the sweep's storage, so
that a resumed sweep reuses them instead of training them again. Trials load
E and the judge from these checkpoints and get the images through Ray's object
store (``tune.with_parameters``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dgn.data import load_split, read_meta
from dgn.errors import DGNError
from dgn.job.config import PipelineConfig
from dgn.job.stages import finished, prepare_data, stage_configs
from dgn.storage import RunLayout, exists
from dgn.sweep.config import SweepConfig
from dgn.train.classifier import load_classifier, load_judge
from dgn.train.loops import fit_local

Log = Callable[[str], None]


@dataclass
class Base:
    data: str  # dataset URI
    classifier: str  # E's checkpoint URI
    judge: str  # the judge's checkpoint URI
    image_size: int
    num_classes: int
    class_names: list[str]
    trained_here: bool


def last_classifier(storage: str) -> str | None:
    """URI of the highest ``classifier/epoch=NNNN.pt`` under ``storage``, or None."""
    found = RunLayout(storage).checkpoints("classifier")
    return found[-1] if found else None


def from_run(run: str, data: str = "") -> Base:
    e_uri = last_classifier(run)
    if e_uri is None:
        raise DGNError(f"run {run!r} holds no classifier/epoch=*.pt; give the storage of a finished flows/train.py run")
    j_uri = RunLayout(run).judge
    if not exists(j_uri):
        raise DGNError(f"run {run!r} holds no judge/judge.pt; give the storage of a finished flows/train.py run")
    net, ck = load_classifier(e_uri)
    data = data or ck.get("data", "")
    if not data:
        raise DGNError(f"classifier {e_uri!r} does not name its dataset; pass --data")
    meta = read_meta(data)
    return Base(data=data, classifier=e_uri, judge=j_uri, image_size=net.config.image_size,
                num_classes=meta.num_classes, class_names=list(meta.class_names), trained_here=False)


def base_job(cfg: SweepConfig) -> PipelineConfig:
    """The main job's config for the sweep's shared E and judge: the same stages, at the sweep's size."""
    return PipelineConfig(data=cfg.data, storage=cfg.storage, image_size=cfg.image_size, n_train=cfg.n_train,
                          n_val=cfg.n_val, seed=cfg.seed, batch_size=cfg.batch_size, classifier_lr=cfg.classifier_lr,
                          judge_lr=cfg.classifier_lr, classifier_steps=cfg.classifier_steps, classifier_checkpoints=1,
                          judge_steps=cfg.judge_steps, judge_checkpoints=1, atlas_units="none", learned_factor=0.0)


def prepare_base(cfg: SweepConfig, log: Log = print) -> Base:
    """The shared E and judge: from ``cfg.run``, or reused from / trained into ``cfg.storage`` by the main job's
    own classifier stages (dgn.train.loops, in this process)."""
    if cfg.run:
        base = from_run(cfg.run, cfg.data)
        log(f"base: E {base.classifier}, judge {base.judge} (from --run), data {base.data}")
        return base
    job = base_job(cfg)
    data = prepare_data(job, log)
    meta = read_meta(data)
    stages = stage_configs(job, data, meta, stages=("classifier", "judge"))
    todo = [(s, c) for s, c in stages if not finished(job, s, c)]
    layout = RunLayout(cfg.storage)
    e_uri, j_uri = layout.checkpoint("classifier", 1), layout.judge
    if not todo:
        log(f"base: reusing E {e_uri} and judge {j_uri}")
    else:
        t = time.time()
        events: list[dict] = []

        def on_event(e: dict) -> None:
            events.append(e)
            if "epoch" in e:
                log(f"base: {e['stage']} step {e['step']}: val acc {e['metrics']['val_acc']:.3f}")

        fit_local(todo, on_event=on_event, threads=int(cfg.cpus_per_trial) * cfg.max_concurrent_trials)
        stopped = [e["diverged"] for e in events if "diverged" in e]
        if stopped:
            raise DGNError(stopped[0])
        log(f"base: E and judge trained in {time.time() - t:.0f}s")
    return Base(data=data, classifier=e_uri, judge=j_uri, image_size=cfg.image_size, num_classes=meta.num_classes,
                class_names=list(meta.class_names), trained_here=True)


def load_images(base: Base, cfg: SweepConfig) -> dict[str, torch.Tensor]:
    """{"train": uint8 (N, 3, S, S), "val": uint8 (M, 3, S, S), "val_labels": int64 (M,)} for the object store."""
    train, _ = load_split(base.data, "train", image_size=base.image_size, limit=None if cfg.run else cfg.n_train)
    xv, yv = load_split(base.data, "val", image_size=base.image_size, limit=cfg.n_val)
    return {"train": train, "val": xv, "val_labels": yv}


def load_nets(base: Base):
    """(E, judge) in eval mode."""
    encoder, _ = load_classifier(base.classifier)
    return encoder, load_judge(base.judge)
