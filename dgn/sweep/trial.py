"""The Tune function trainable: one trial trains G on one layer's code with one set of loss weights.

A plain function trainable with one worker (``cpus_per_trial`` cores, torch
threads to match), not a TorchTrainer per trial: on the 2-core default each
trial gets one core, where data parallelism has nothing to split, and a
driver-per-trial would add a second process per trial for nothing. On a
cluster, raise ``cpus_per_trial`` (and the trial uses that many threads).

Every epoch (``steps_per_epoch`` G steps) the trial scores G (dgn.sweep.score)
and calls ``tune.report`` with the metrics and a checkpoint of G, D and their
optimisers, so ASHA can stop it at any epoch and a restored sweep continues it
from its last epoch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ray import tune

from dgn.errors import DGNError
from dgn.sweep.base import Base, load_comparator, load_nets
from dgn.sweep.capacity import matched_overrides
from dgn.sweep.config import SweepConfig
from dgn.sweep.evaluate import Evaluator, am_config
from dgn.train.batches import tensor_batches
from dgn.train.checkpoint import load_checkpoint, save_checkpoint
from dgn.train.codestats import code_stats
from dgn.train.gan import GANConfig, GANTrainer
from dgn.train.loops import generator_round, stream
from dgn.train.worker import Worker

CHECKPOINT = "gan.pt"


def gan_config(cfg: SweepConfig, layer: str, weights: dict, code_shape: tuple[int, ...] | None = None) -> GANConfig:
    """The product's G recipe (GANConfig's defaults) with this trial's layer and weights; with an adversarial term,
    the reference's D/G balance (G's update paused while D's loss ratio is above 10). With ``g_params`` (and the
    code's shape), G's front width is set so that every layer's G has that many parameters (dgn.sweep.capacity)."""
    pause = "update" if weights.get("w_adv", 0) > 0 else "none"
    g = GANConfig(layer=layer, **weights, warmup_steps=cfg.warmup_steps, lr=cfg.lr, pause=pause,
                  comparator=cfg.comparator)
    if cfg.g_params and code_shape is not None:
        g.generator_overrides, _ = matched_overrides(tuple(code_shape), cfg.image_size, cfg.g_params,
                                                     preset=g.generator, base=g.generator_overrides)
    return g


def events_path(storage: str, trial_id: str) -> Path | None:
    """Where a trial notes its starts and its reports (local storage only): what the resume test reads."""
    return None if "://" in storage else Path(storage) / "events" / f"{trial_id}.log"


def _note(path: Path | None, line: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(line + "\n")


def trainable(config: dict, *, base: Base, images: dict, sweep: dict) -> None:
    cfg = SweepConfig(**sweep)
    w = Worker({"context": "local", "threads": max(1, int(cfg.cpus_per_trial))})
    layer, weights = config["layer"], config["weights"]
    seed = int(config.get("seed", cfg.seed))
    ctx = tune.get_context()
    events = events_path(cfg.storage, ctx.get_trial_id())
    encoder, judge = load_nets(base)
    train = images["train"]  # uint8 (N, 3, S, S)
    if len(train) < cfg.batch_size:
        raise DGNError(f"{len(train)} training images are fewer than one batch ({cfg.batch_size})")
    stats = code_stats(encoder, layer, tensor_batches(train, batch_size=256))
    trainer = GANTrainer(encoder, gan_config(cfg, layer, weights, encoder.code_shape(layer)), code_stats=stats,
                         seed=seed, comparator=load_comparator(base))
    g_params = sum(p.numel() for p in trainer.generator.parameters())
    evaluate = Evaluator(encoder=encoder, judge=judge, val=images["val"], val_labels=images["val_labels"],
                         num_classes=base.num_classes, am=am_config(steps=cfg.am_steps, lr=cfg.am_lr, seed=seed),
                         starts=cfg.am_starts)
    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            ck = load_checkpoint(str(Path(d) / CHECKPOINT), "gan")
        trainer.load(ck, where=f"trial {ctx.get_trial_id()}'s checkpoint")
        start = int(ck["epoch"])
    _note(events, f"start epoch={start}")

    for epoch in range(start + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        losses, bad = generator_round(trainer, stream(train, None, local=cfg.batch_size,
                                                      start=(epoch - 1) * cfg.steps_per_epoch,
                                                      stop=epoch * cfg.steps_per_epoch, seed=seed, rank=0,
                                                      device=w.device), w)
        step_s = (time.perf_counter() - t0) / cfg.steps_per_epoch
        if bad:
            raise DGNError(f"trial {ctx.get_trial_id()} ({layer}): generator training diverged in epoch {epoch}: {bad}")
        metrics, _ = evaluate(trainer.generator, layer, stats)
        metrics.update({f"loss_{k}": v for k, v in losses.items()})
        metrics.update(epoch=epoch, g_steps=trainer.step_count, layer=layer, seed=seed, g_params=g_params,
                       g_step_s=step_s, **weights)
        _note(events, f"report epoch={epoch}")  # ASHA may stop the trial inside report(): note first
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(trainer.state(epoch=epoch, metrics={"score": metrics["score"]}, encoder_ref=base.classifier),
                            str(Path(d) / CHECKPOINT))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
