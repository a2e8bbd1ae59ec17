"""Build (or restore) the Tuner, run it, and hand back one row per trial.

Grid: ``layer`` × ``weights`` (config.weight_sets), one Tune trial each; ASHA
(time attribute: epochs) stops weak trials at each rung. Every trial asks for
``cpus_per_trial`` CPUs and at most ``max_concurrent_trials`` run at once, so
the sweep never asks for more than the machine has: a trial waits for a free
slot, and a trial ASHA stops gives its slot back at once.

Resume: the experiment lives at ``<storage>/tune/<name>``; running the same
sweep again finds it (``Tuner.can_restore``) and continues it with
``Tuner.restore`` — finished trials are kept, unfinished ones continue from
their last epoch's checkpoint, errored ones are resumed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from dgn import cluster
from dgn.data import join
from dgn.data.uri import resolve
from dgn.errors import DGNError
from dgn.sweep.base import Base, load_images
from dgn.sweep.config import SweepConfig, weight_sets
from dgn.sweep.report import trial_rows
from dgn.sweep.trial import trainable

Log = Callable[[str], None]
# settings that change the grid or what a trial computes: a resumed sweep must match them
FIXED = ("layers", "samples", "spread", "weight_seed", "epochs", "steps_per_epoch", "batch_size", "warmup_steps", "lr",
         "am_starts", "am_steps", "am_lr", "grace_period", "reduction_factor", "image_size", "seed", "run", "data",
         "seeds", "comparator", "g_params", "scheduler", "weights")


@dataclass
class SweepOutcome:
    rows: list[dict]  # one per trial (report.trial_rows)
    histories: dict[str, list[dict]]  # trial id → its per-epoch metrics
    checkpoints: dict[str, str]  # trial id → local directory of its last checkpoint
    interrupted: bool  # some trial neither finished nor was stopped: run again to resume
    restored: bool
    experiment_path: str


def experiment_path(cfg: SweepConfig) -> str:
    return join(cfg.storage, "tune", cfg.name)


def init_ray(cfg: SweepConfig) -> bool:
    """Start a private local Ray instance (or join RAY_ADDRESS's cluster); True if this call started it."""
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # a checkpoint per epoch is by design
    return cluster.init_ray(cfg.num_cpus, object_store_memory=300_000_000)


def forget_sweep(cfg: SweepConfig, log: Log = print) -> None:
    """Delete this sweep's Tune state, trial events and identity file (local or s3://); E and the judge stay."""
    for uri in (experiment_path(cfg), join(cfg.storage, "events"), join(cfg.storage, f"{cfg.name}.json")):
        fs, path = resolve(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            continue
        fs.delete_dir(path) if info.type == pafs.FileType.Directory else fs.delete_file(path)
        log(f"sweep: --fresh: deleted {uri}")


def _check_same_sweep(cfg: SweepConfig) -> None:
    """A sweep resumed under the same storage and name must be the same sweep."""
    if "://" in cfg.storage:
        return
    f = Path(cfg.storage) / f"{cfg.name}.json"
    now = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items() if k in FIXED}
    if f.is_file():
        before = json.loads(f.read_text())
        diff = sorted(k for k in FIXED if k in before and before[k] != now.get(k))  # keys of older sweeps: absent
        if diff:
            raise DGNError(f"storage {cfg.storage!r} already holds sweep {cfg.name!r} with other settings ({', '.join(diff)});"
                           " use another --name or --storage")
    else:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(now, indent=1))


def build_tuner(cfg: SweepConfig, base: Base, images: dict, callbacks: list | None = None):
    """(Tuner, restored?). ``callbacks`` run in the driver; a restored Tuner has its own (saved with it)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    fn = tune.with_resources(tune.with_parameters(trainable, base=base, images=images, sweep=cfg.to_dict()),
                             {"cpu": cfg.cpus_per_trial})
    path = experiment_path(cfg)
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=fn, resume_unfinished=True, resume_errored=True)
        # restore() brings back the callbacks saved with the experiment; this session's own (live MLflow logging
        # into this session's runs) replace them. Tune has no public setter; the RunConfig object is mutable.
        local = getattr(tuner, "_local_tuner", None)
        if callbacks is not None and local is not None:
            local.get_run_config().callbacks = callbacks
        return tuner, True
    scheduler = (FIFOScheduler() if cfg.scheduler == "fifo" else  # fifo: every trial runs all its epochs
                 ASHAScheduler(time_attr="training_iteration", max_t=cfg.epochs,
                               grace_period=min(cfg.grace_period, cfg.epochs), reduction_factor=cfg.reduction_factor))
    space = {"layer": tune.grid_search(list(cfg.layers)), "weights": tune.grid_search(weight_sets(cfg))}
    if cfg.seeds:
        space["seed"] = tune.grid_search(list(cfg.trial_seeds))
    tuner = tune.Tuner(
        fn,
        param_space=space,
        tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=scheduler, num_samples=1,
                                    max_concurrent_trials=cfg.max_concurrent_trials,
                                    # a finished (or stopped) trial's process takes the next trial: no new process,
                                    # no second import of torch per trial (every trial asks for the same CPUs)
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=cfg.name, storage_path=join(cfg.storage, "tune"), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1), callbacks=callbacks,
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    return tuner, False


def run_tuner(cfg: SweepConfig, base: Base, log: Log = print, callbacks: list | None = None) -> SweepOutcome:
    """Run (or resume) the sweep to its end, or until interrupted (SIGINT)."""
    import ray

    _check_same_sweep(cfg)
    images = load_images(base, cfg)
    tuner, restored = build_tuner(cfg, base, images, callbacks)
    log(f"sweep: {'resuming' if restored else 'starting'} {cfg.trials} trials ({len(cfg.layers)} layers × "
        f"{cfg.samples} weight sets), ≤ {cfg.max_concurrent_trials} at once, {cfg.cpus_per_trial:g} CPU each, "
        f"Ray has {ray.cluster_resources().get('CPU', 0):g} CPUs; experiment {experiment_path(cfg)}")
    grid = tuner.fit()
    # Statuses as saved to storage (Result has none; after a SIGINT the live trials read TERMINATED once
    # cleaned up, while the saved state, written before the cleanup, says which were still running).
    from ray.tune import ExperimentAnalysis

    status = {t.trial_id: t.status for t in ExperimentAnalysis(grid.experiment_path).trials}
    histories, checkpoints = {}, {}
    for r in grid:
        tid = r.metrics.get("trial_id") if r.metrics else None
        if tid is None:
            continue
        df = r.metrics_dataframe
        histories[tid] = df.to_dict("records") if df is not None else []
        if r.checkpoint is not None:
            checkpoints[tid] = r.checkpoint.path
    rows = trial_rows(grid, status, cfg)
    # trials are created lazily: an interrupted sweep may not have created the last ones yet
    interrupted = len(status) < cfg.trials or any(s not in ("TERMINATED", "ERROR") for s in status.values())
    return SweepOutcome(rows=rows, histories=histories, checkpoints=checkpoints, interrupted=interrupted,
                        restored=restored, experiment_path=grid.experiment_path)
