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
from dataclasses import dataclass, replace

import torch

from dgn.data import join, load_split, read_meta
from dgn.errors import DGNError
from dgn.job.config import PipelineConfig
from dgn.job.stages import finished, prepare_data, stage_configs
from dgn.storage import RunLayout, exists
from dgn.sweep.config import SweepConfig
from dgn.train.classifier import load_classifier, load_judge
from dgn.train.gan import COMPARATOR_SEED_OFFSET
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
    comparator: str = ""  # an independent classifier's checkpoint URI (comparator "independent"), else ""


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


def comparator_job(cfg: SweepConfig, data: str, image_size: int) -> PipelineConfig:
    """The independent comparator's config: E's classifier stage on the same data, another seed, its own storage."""
    return replace(base_job(cfg), data=data, storage=join(cfg.storage, "comparator"), image_size=image_size,
                   seed=cfg.seed + COMPARATOR_SEED_OFFSET)


def _fit(cfg: SweepConfig, job: PipelineConfig, stages: tuple[str, ...], what: str, log: Log) -> None:
    """Train the stages of ``job`` that are not in its storage yet (the main job's loops, in this process)."""
    meta = read_meta(job.data)
    todo = [(s, c) for s, c in stage_configs(job, job.data, meta, stages=stages) if not finished(job, s, c)]
    if not todo:
        log(f"base: reusing the {what} under {job.storage}")
        return
    t = time.time()
    events: list[dict] = []

    def on_event(e: dict) -> None:
        events.append(e)
        if "epoch" in e:
            log(f"base: {what}: {e['stage']} step {e['step']}: val acc {e['metrics']['val_acc']:.3f}")

    fit_local(todo, on_event=on_event, threads=int(cfg.cpus_per_trial) * cfg.max_concurrent_trials)
    stopped = [e["diverged"] for e in events if "diverged" in e]
    if stopped:
        raise DGNError(stopped[0])
    log(f"base: {what} trained in {time.time() - t:.0f}s")


def prepare_base(cfg: SweepConfig, log: Log = print) -> Base:
    """The shared E and judge: from ``cfg.run``, or reused from / trained into ``cfg.storage`` by the main job's
    own classifier stages (dgn.train.loops, in this process); and, for ``comparator="independent"``, a third
    classifier trained the same way with another seed (under ``storage/comparator``)."""
    if cfg.run:
        base = from_run(cfg.run, cfg.data)
        log(f"base: E {base.classifier}, judge {base.judge} (from --run), data {base.data}")
    else:
        job = base_job(cfg)
        data = prepare_data(job, log)
        meta = read_meta(data)
        _fit(cfg, replace(job, data=data), ("classifier", "judge"), "E and judge", log)
        layout = RunLayout(cfg.storage)
        base = Base(data=data, classifier=layout.checkpoint("classifier", 1), judge=layout.judge,
                    image_size=cfg.image_size, num_classes=meta.num_classes, class_names=list(meta.class_names),
                    trained_here=True)
    if cfg.comparator == "independent":
        job = comparator_job(cfg, base.data, base.image_size)
        _fit(cfg, job, ("classifier",), "independent comparator", log)
        base.comparator = RunLayout(job.storage).checkpoint("classifier", 1)
    return base


def load_images(base: Base, cfg: SweepConfig) -> dict[str, torch.Tensor]:
    """{"train": uint8 (N, 3, S, S), "val": uint8 (M, 3, S, S), "val_labels": int64 (M,)} for the object store."""
    train, _ = load_split(base.data, "train", image_size=base.image_size, limit=None if cfg.run else cfg.n_train)
    xv, yv = load_split(base.data, "val", image_size=base.image_size, limit=cfg.n_val)
    return {"train": train, "val": xv, "val_labels": yv}


def load_nets(base: Base):
    """(E, judge) in eval mode."""
    encoder, _ = load_classifier(base.classifier)
    return encoder, load_judge(base.judge)


def load_comparator(base: Base):
    """The independent comparator in eval mode, or None (the feature loss then uses E)."""
    return load_classifier(base.comparator)[0].eval() if base.comparator else None
