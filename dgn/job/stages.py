"""The job's stages as loop configs: what dgn.train.loops trains, the same on Ray Train and in this process."""

from __future__ import annotations

import time
from collections.abc import Callable

from dgn.data import read_meta, write_synthetic
from dgn.data.parquet import DatasetMeta
from dgn.errors import DGNError
from dgn.job.config import PipelineConfig
from dgn.storage import RunLayout
from dgn.train.gan import COMPARATOR_SEED_OFFSET

Log = Callable[[str], None]


def prepare_data(cfg: PipelineConfig, log: Log = print) -> str:
    """The dataset URI to train on; writes the embedded synthetic set when none was given."""
    if cfg.data:
        read_meta(cfg.data)  # validates before any work starts
        return cfg.data
    uri = RunLayout(cfg.storage).data
    try:
        meta = read_meta(uri)
        log(f"data: reusing the embedded dataset at {uri} ({meta.counts})")
    except DGNError:
        t = time.time()
        meta = write_synthetic(uri, n_train=cfg.n_train, n_val=cfg.n_val, seed=cfg.seed, image_size=cfg.image_size)
        log(f"data: wrote the embedded dataset to {uri} ({meta.counts}) in {time.time() - t:.0f}s")
    return uri


def stage_dir(cfg: PipelineConfig, stage: str) -> str:
    return RunLayout.generator_dir(cfg.gan.layer) if stage == "generator" else stage


def encoder_ref(cfg: PipelineConfig) -> str:
    """E: the --encoder-weights file, or the classifier stage's last checkpoint."""
    return cfg.encoder_weights or RunLayout(cfg.storage).checkpoint("classifier", cfg.classifier_checkpoints)


def comparator_ref(cfg: PipelineConfig) -> str:
    """The independent comparator's checkpoint (gan.comparator "independent"), else "" (E is the comparator)."""
    return RunLayout(cfg.storage).checkpoint("comparator", 1) if cfg.gan.comparator == "independent" else ""


def stage_configs(cfg: PipelineConfig, data: str, meta: DatasetMeta,
                  stages: tuple[str, ...] = ("classifier", "judge", "comparator", "generator")
                  ) -> list[tuple[str, dict]]:
    """(stage, loop config) for each of ``stages``: the classifier only when E is trained here, the comparator
    only when G's feature loss compares an independent one (E's recipe and budget, seed + COMPARATOR_SEED_OFFSET,
    one checkpoint: G needs only the last)."""
    common = dict(data=data, storage=cfg.storage, image_size=cfg.image_size, n_train=meta.counts["train"],
                  batch_size=cfg.batch_size, num_classes=meta.num_classes, class_names=meta.class_names,
                  stream_above_mb=cfg.stream_above_mb)
    out = []
    if "classifier" in stages and not cfg.encoder_weights:
        out.append(("classifier", dict(common, kind="classifier", arch=cfg.classifier, steps=cfg.classifier_steps,
                                       checkpoints=cfg.classifier_checkpoints, lr=cfg.classifier_lr, seed=cfg.seed,
                                       learned_factor=cfg.learned_factor)))
    if "judge" in stages:
        out.append(("judge", dict(common, kind="judge", steps=cfg.judge_steps, checkpoints=cfg.judge_checkpoints,
                                  lr=cfg.judge_lr, seed=cfg.judge_seed, learned_factor=cfg.learned_factor)))
    if "comparator" in stages and comparator_ref(cfg):
        out.append(("comparator", dict(common, kind="comparator", arch=cfg.classifier, steps=cfg.classifier_steps,
                                       checkpoints=1, lr=cfg.classifier_lr, seed=cfg.seed + COMPARATOR_SEED_OFFSET,
                                       learned_factor=cfg.learned_factor)))
    if "generator" in stages:
        out.append(("generator", dict(common, encoder=encoder_ref(cfg), comparator=comparator_ref(cfg),
                                      gan=cfg.gan.to_dict(), steps=cfg.gan_steps, checkpoints=cfg.gan_checkpoints,
                                      seed=cfg.seed)))
    return out


def finished(cfg: PipelineConfig, stage: str, loop_cfg: dict) -> bool:
    """Every checkpoint of the stage is in storage (a resumed run skips it)."""
    n = min(loop_cfg["checkpoints"], loop_cfg["steps"])
    return len([e for e in RunLayout(cfg.storage).epochs(stage_dir(cfg, stage)) if e <= n]) >= n
