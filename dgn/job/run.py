"""The main job's driver: data → classifier E → judge → G on Ray Train (resumable) → quality → atlas, in MLflow."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ray
import torch

from dgn.atlas import run_atlas
from dgn.cluster import init_ray
from dgn.data import load_split, read_meta
from dgn.data.uri import write_bytes
from dgn.errors import DGNError
from dgn.job.config import PipelineConfig
from dgn.job.stages import encoder_ref, finished, prepare_data, stage_configs, stage_dir
from dgn.nets.caffenet import caffenet_config
from dgn.quality import ClassUnitEval, write_montages
from dgn.storage import RunLayout, exists, read_text
from dgn.timing import StageClock
from dgn.tracking.training import TrainingTracker
from dgn.train.checkpoint import load_checkpoint
from dgn.train.classifier import did_not_learn, load_encoder, load_judge
from dgn.train.gan import load_generator
from dgn.train.loops import STAGE_NAMES, checkpoint_kind
from dgn.train.ray_fit import Scaling, fit_stages

Log = Callable[[str], None]


def default_run_name(storage: str) -> str:
    return storage.rstrip("/").rsplit("/", 1)[-1] or "default"


def check(cfg: PipelineConfig, log: Log) -> None:
    """Everything a user can get wrong, before the MLflow run is created or anything is written."""
    cfg.validate()
    if cfg.classifier_steps < 1 and not cfg.encoder_weights:
        raise DGNError("classifier-steps must be ≥ 1 unless --encoder-weights gives E")
    if cfg.gan_steps < 1 or cfg.judge_steps < 1:
        raise DGNError(f"gan-steps and judge-steps must be ≥ 1 for a training run; got {cfg.gan_steps} and "
                       f"{cfg.judge_steps}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise DGNError("--gpu was given but no CUDA device is available here")
    if not cfg.encoder_weights:
        native = caffenet_config(cfg.classifier).image_size  # an unknown preset: one line, before any work
        if native == 227 and cfg.image_size != native:  # fc6 of caffenet/alexnet is sized for 227-px input
            raise DGNError(f"classifier {cfg.classifier!r} is a 227-px network (its fc6 takes a 6×6 pool5) but "
                           f"image_size is {cfg.image_size}: set image_size: 227 in the config")
    else:
        size = load_encoder(cfg.encoder_weights).config.image_size
        if size != cfg.image_size:
            log(f"encoder: {cfg.encoder_weights} takes {size}-px images; training at {size} px")
            cfg.image_size = size
    if cfg.data:
        read_meta(cfg.data)
    TrainingTracker.check()


def run_training(cfg: PipelineConfig, log: Log = print) -> dict:
    """data → classifier E → judge → G on Ray Train (data-parallel, resumable) → quality → (atlas); tracked in MLflow.

    Re-running with the same storage and run name resumes: finished stages and checkpoints are skipped.
    """
    check(cfg, log)
    run_name = cfg.run_name or default_run_name(cfg.storage)
    clock = StageClock()
    try:
        return _run(cfg, clock, t0=time.time(), run_name=run_name, log=log)
    finally:
        clock.cpu.stop()


def _run(cfg: PipelineConfig, clock: StageClock, *, t0: float, run_name: str, log: Log) -> dict:
    clock.probe()
    tracker = TrainingTracker(experiment=cfg.experiment, run_name=run_name, params=cfg.to_dict(), storage=cfg.storage,
                              log=log)
    tracker.check_name()

    def on_event(e: dict) -> None:
        if "epoch" in e:  # a checkpoint was written: the time since the last mark was that stage's (the first
            clock.mark(e["stage"])  # one's includes Ray Train's start)
        tracker.on_event(e)

    with tracker.open() as run:
        data = prepare_data(cfg, log)
        meta = read_meta(data)
        layout = RunLayout(cfg.storage)
        stages = stage_configs(cfg, data, meta)
        todo = [(s, c) for s, c in stages if not finished(cfg, s, c)]
        for s, c in stages:
            if (s, c) in todo:
                continue
            log(f"{s}: all {c['checkpoints']} checkpoints are in storage; skipped")
            if s in STAGE_NAMES:  # a resumed run must not train the next stages on a classifier that did not learn
                m = load_checkpoint(layout.checkpoint(s, c["checkpoints"]), checkpoint_kind(s)).get("metrics") or {}
                stuck = did_not_learn(STAGE_NAMES[s], m, num_classes=meta.num_classes, steps=c["steps"],
                                      factor=cfg.learned_factor)
                if stuck:
                    raise DGNError(stuck)
        if todo:  # Ray starts only for training: a finished job's rerun (and its atlas, if done) needs none
            init_ray(cfg.num_cpus)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            clock.mark("ray start, data")
            t = time.time()
            per_worker = max(1, cpus // cfg.workers) if not os.environ.get("RAY_ADDRESS") else 1
            scaling = Scaling(workers=cfg.workers, gpu=cfg.device == "cuda", cpus_per_worker=per_worker,
                              max_failures=cfg.max_failures, ray_storage=layout.ray)
            log(f"training {', '.join(s for s, _ in todo)} on {cfg.workers} Ray Train worker(s) × {per_worker} CPU")
            fit_stages(todo, name=run_name, scaling=scaling, on_event=on_event)
        else:
            clock.mark("data")
            t = time.time()
        if tracker.diverged:
            raise DGNError(tracker.diverged)
        training_seconds = time.time() - t
        clock.mark("ray train end, I/O")
        checkpoints = {s: layout.checkpoints(stage_dir(cfg, s)) for s, _ in stages}
        checkpoints.setdefault("classifier", [])  # E from --encoder-weights
        tracker.log_checkpoints(checkpoints)

        if not todo and exists(layout.quality):
            log(f"quality: {layout.quality} exists and no training happened; skipped")
            summary = json.loads(read_text(layout.quality))
        else:
            summary = quality_stage(cfg, data=data, num_classes=meta.num_classes, checkpoints=checkpoints,
                                    tracker=tracker, log=log)
            summary.update(training_seconds=training_seconds, total_seconds=time.time() - t0,
                           classifier_checkpoints=checkpoints["classifier"])
            write_summary(layout.quality, summary, tracker)
        clock.mark("quality")

        atlas_stage(cfg, run=run, classifier_checkpoints=checkpoints["classifier"], log=log)
        clock.mark("atlas")
        clock.probe()
        run.log_metrics({f"job_seconds_{_metric_name(k)}": v for k, v in clock.seconds.items()}
                        | {f"job_cpu_seconds_{_metric_name(k)}": v for k, v in clock.cpu_seconds.items()}
                        | {"job_seconds_total": clock.total, "job_probe_gflops": clock.probe_gflops,
                           "job_seconds_total_at_reference": clock.at_reference(clock.total)})
    for line in clock.lines():
        log(line)
    log(tracker.hint())
    return {**summary, "job": clock.summary()}


def _metric_name(stage: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in stage).split())


def quality_stage(cfg: PipelineConfig, *, data: str, num_classes: int, checkpoints: dict, tracker, log: Log) -> dict:
    """Reconstruction and DGN-AM on every fc8 unit × ``am_starts`` of the last G, in the driver; montages."""
    t = time.time()
    encoder = load_encoder(encoder_ref(cfg)).eval()
    generator, gck = load_generator(checkpoints["generator"][-1])
    judge = load_judge(RunLayout(cfg.storage).judge)
    xv, yv = load_split(data, "val", image_size=cfg.image_size)
    e_metrics = load_checkpoint(checkpoints["classifier"][-1], "classifier")["metrics"] if checkpoints["classifier"] \
        else {}
    j_metrics = load_checkpoint(checkpoints["judge"][-1], "judge")["metrics"]
    c_metrics = load_checkpoint(checkpoints["comparator"][-1], "classifier")["metrics"] \
        if checkpoints.get("comparator") else {}
    ev = ClassUnitEval(encoder=encoder, judge=judge, val=xv, val_labels=yv,
                       num_classes=min(num_classes, encoder.config.num_classes), am=cfg.am, starts=cfg.am_starts,
                       device=cfg.device)
    q, images = ev(generator, cfg.gan.layer, gck["code_stats"])
    summary = {"classifier_val_acc": e_metrics.get("val_acc", float("nan")),
               "judge_val_acc": j_metrics.get("val_acc", float("nan")),
               **({"comparator_val_acc": c_metrics["val_acc"]} if c_metrics else {}), **q,
               "dead_code_units": int((gck["code_stats"]["std"] <= 1e-6).sum()), "config": cfg.to_dict()}
    with tempfile.TemporaryDirectory(prefix="dgn-quality-") as tmp:  # the montages live in storage and MLflow
        montages = write_montages(Path(tmp), ev, generator, cfg.gan.layer, images)
        for f in montages:
            write_bytes(RunLayout(cfg.storage).montage(f.name), f.read_bytes())
        tracker.log_quality({k: v for k, v in summary.items() if k != "config"}, sorted(montages))
    log(f"quality: recognisability {q['am_recognisability']:.2f}, G(E(x)) read by E "
        f"{q.get('recon_encoder_acc', 0):.2f} / by the judge {q.get('recon_judge_acc', 0):.2f}, "
        f"median activation ratio {q['am_median_activation_ratio']:.2f}, realism at N={q['am_realism_n']:.0f}: "
        f"FD {q['am_realism_fd']:.1f} (real-vs-real floor {q['am_realism_floor_fd']:.1f}), precision "
        f"{q['am_realism_precision']:.2f} / recall {q['am_realism_recall']:.2f} (floor "
        f"{q['am_realism_floor_precision']:.2f} / {q['am_realism_floor_recall']:.2f}) ({time.time() - t:.0f}s)")
    return summary


def write_summary(uri: str, summary: dict, tracker) -> None:
    with tempfile.TemporaryDirectory(prefix="dgn-summary-") as d:
        tmp = Path(d) / "quality.json"
        tmp.write_text(json.dumps(summary, indent=2, default=str))
        write_bytes(uri, tmp.read_bytes())
        tracker.run.log_artifact(tmp)


def atlas_stage(cfg: PipelineConfig, *, run, classifier_checkpoints: list[str], log: Log = print) -> dict:
    """Feature-evolution atlas of ``cfg.atlas_units`` at every classifier checkpoint, on the Ray actor pool.

    Runs after the quality stage and before the MLflow ``run`` is marked finished; resumable through
    the atlas manifest (a rerun renders nothing twice). Skipped with ``atlas_units="none"`` and when E
    came from --encoder-weights (no classifier checkpoints to evolve: use flows/atlas.py --target there).
    """
    if cfg.atlas_units == "none":
        log("atlas: skipped (atlas_units: none)")
        return {}
    if not classifier_checkpoints:
        log("atlas: E came from --encoder-weights, so there are no classifier checkpoints to evolve; "
            "render it with flows/atlas.py --target")
        return {}
    t = time.time()
    summary = run_atlas(cfg.atlas_config(), run=run, log=log)
    log(f"atlas: done in {time.time() - t:.0f}s")
    return summary
