"""The pipeline in one process: data → classifier E (a checkpoint per epoch) → judge → G → quality.

Each stage is a function that a Ray Train worker can call unchanged; the
orchestrator :func:`run_pipeline` chains them for the embedded default and for
the quality benchmark. Storage layout under ``cfg.storage``::

    data/                      the embedded synthetic dataset (when no --data)
    classifier/epoch=0001.pt   every epoch's classifier (what atlases visualise)
    judge/judge.pt             the independent judge
    generator/fc6/epoch=0001.pt
    quality.json, montage-*.png
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dgn.am.dgn_am import AMConfig, TargetNet, dgn_am
from dgn.data import load_split, read_meta, write_synthetic
from dgn.errors import DGNError
from dgn.metrics import (activation_ratio, best_real_activations, frechet_distance, judge_features, manifold_precision,
                         reconstruction_metrics)
from dgn.metrics.judge import judge_predictions
from dgn.nets import Judge, build_caffenet, check_layer
from dgn.train.batches import tensor_batches
from dgn.train.checkpoint import save_checkpoint
from dgn.train.classifier import (LEARNED_FACTOR, classifier_checkpoint, evaluate, judge_checkpoint, make_optimizer,
                                  train_epoch)
from dgn.train.codestats import code_stats
from dgn.data.uri import write_bytes
from dgn.storage import RunLayout, exists, read_text
from dgn.timing import StageClock
from dgn.train.gan import PAPER, GANConfig, GANTrainer

Log = Callable[[str], None]


@dataclass
class PipelineConfig:
    data: str = ""  # dataset URI; empty: the embedded synthetic set, written under storage/data
    storage: str = "runs/default"
    preset: str = "default"  # default | paper (the paper's faithful G losses and AM settings)
    image_size: int = 64
    classifier: str = "small"  # CaffeNet preset of E
    # Budgets: the whole default job ≤ 10 min wall on a 2-core machine whose 2048² matmul reads 140 GFLOP/s, with
    # ≥ 15% margin (≤ 510 s). Measured (dgn/timing.py prints it at the end of every job; README "Set up and run"):
    # G epochs dominate (125 steps, ~46 s each here, ~61 s on that machine), so G gets 4 epochs = 500 steps
    # (was 8), E 3 epochs and the judge 2 (was 4 each), the atlas stage 3 × 16 units (was 4 × 46).
    classifier_epochs: int = 3
    classifier_lr: float = 3e-3
    judge_epochs: int = 2
    judge_lr: float = 3e-3
    gan_epochs: int = 4
    batch_size: int = 64
    gan: GANConfig = field(default_factory=GANConfig)
    am: AMConfig = field(default_factory=AMConfig)
    am_starts: int = 5  # DGN-AM restarts per fc8 unit in the quality check
    # a classifier stage (E, judge) that ends at ≤ this × chance val accuracy, or whose loss has not fallen,
    # stops the job with one line before anything is trained on it; 0: no check (dry runs: too small to learn)
    learned_factor: float = LEARNED_FACTOR
    n_train: int = 8000  # embedded dataset size
    n_val: int = 1000
    seed: int = 0
    judge_seed: int = 1234
    device: str = "cpu"  # cpu | cuda (--gpu: CUDA, bf16 autocast, Ray GPU workers)
    # the Ray Train job (run_training)
    workers: int = 2  # Ray Train workers; the global batch_size is split between them (2 × 1 thread: bench/ray_overhead.py)
    encoder_weights: str = ""  # E (and C) from a file: torchvision AlexNet state dict or a dgn classifier checkpoint
    run_name: str = ""  # MLflow run name and Ray Train run name; default: the storage folder's name
    experiment: str = "dgn-train"  # MLflow experiment
    max_failures: int = 2  # worker-group restarts from the last checkpoint before the job fails
    num_cpus: int = 0  # CPUs of the local Ray started when no RAY_ADDRESS is set; 0: all of this machine's
    # the atlas stage: every classifier epoch × these units (dgn.atlas unit specs); "none" skips it.
    # Default: every class unit and 2 units of each hidden layer (3 epochs × 16 units, ~40 s on 2 cores);
    # the whole of every layer is a job for flows/atlas.py.
    atlas_units: str = "fc8=all;fc7=0-1;fc6=0-1;conv5=0-1"
    atlas_actors: int = 2

    def __post_init__(self) -> None:
        from dgn.data.uri import absolute

        self.data, self.storage, self.encoder_weights = map(absolute, (self.data, self.storage, self.encoder_weights))

    def to_dict(self) -> dict:
        return asdict(self)

    def atlas_config(self):
        """What the atlas stage renders: units of ``atlas_units`` at every classifier epoch, with this run's AM."""
        from dgn.atlas import AtlasConfig
        from dgn.atlas.config import unit_specs

        layers = tuple(unit_specs(self.atlas_units)) if "=" in self.atlas_units else None
        return AtlasConfig(storage=self.storage, layers=layers, units=self.atlas_units, actors=self.atlas_actors,
                           am=self.am.to_dict(), device=self.device)

    def validate(self) -> None:
        from dgn.data.uri import check_writable

        check_writable(self.storage, "storage")
        check_layer(self.gan.layer)
        self.gan.validate()
        for name in ("classifier_epochs", "judge_epochs", "gan_epochs"):
            if getattr(self, name) < 0:
                raise DGNError(f"{name.replace('_', '-')} must be ≥ 0; got {getattr(self, name)}")
        if self.batch_size < 1:
            raise DGNError(f"batch-size must be ≥ 1; got {self.batch_size}")
        if self.workers < 1:
            raise DGNError(f"workers must be ≥ 1; got {self.workers}")
        if self.batch_size % self.workers:
            raise DGNError(f"batch-size {self.batch_size} must be a multiple of workers {self.workers}: the global "
                           "batch is split evenly between workers")
        if self.max_failures < 0 or self.num_cpus < 0:
            raise DGNError(f"max-failures and num-cpus must be ≥ 0; got {self.max_failures} and {self.num_cpus}")
        if self.device not in ("cpu", "cuda"):
            raise DGNError(f"unknown device {self.device!r}; valid: cpu, cuda")
        if self.preset not in PRESETS:
            raise DGNError(f"unknown preset {self.preset!r}; valid presets: {', '.join(PRESETS)}")
        if self.atlas_units != "none":
            self.atlas_config().validate()


# The embedded default's G recipe: what the quality study (bench/quality_study.py) found best
# (single 240-s runs; see docs/quality.md): pixel loss with class-informative colour, a conv3
# comparator (pool5 is only 4×4 at 64 px), no adversarial term at this budget.
DEFAULT_GAN = dict(image_loss="pixel", w_image=1.0, w_feature=0.1, w_adv=0.0, feature_layer="conv3",
                   warmup_steps=100, lr=1e-3, pause="adversarial", generator_overrides={"widths": (128, 64, 32, 16)})
# DGN-AM: lr scaled to the code's bounds (median ≈ 2 here, ≈ 12 in CaffeNet where the paper's 8 applies).
# bench/am_settings.py on the Ray-trained default G, 10 unit × starts: lr 0.25 → recognisability 0.72,
# 0.1 → 0.79, 0.05 → 0.83 (ratio 1.15 / 1.09 / 1.03); 0.1 keeps the activation ratio safely above 1.
DEFAULT_AM = dict(lr=0.1, lr_end=1e-10, steps=200, init="noise", noise_std=1.0)
PRESETS = {"default": (DEFAULT_GAN, DEFAULT_AM), "paper": (PAPER, {})}


def preset_config(preset: str = "default", **overrides) -> PipelineConfig:
    """A PipelineConfig with the preset's GAN and AM settings, then ``overrides``."""
    if preset not in PRESETS:
        raise DGNError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    gan, am = PRESETS[preset]
    gan_over = overrides.pop("gan", {}) or {}
    am_over = overrides.pop("am", {}) or {}
    return PipelineConfig(preset=preset, gan=GANConfig(**{**gan, **gan_over}), am=AMConfig(**{**am, **am_over}),
                          **overrides)


# helpers


def _montage(images: torch.Tensor, path: Path, nrow: int) -> None:
    import torchvision

    path.parent.mkdir(parents=True, exist_ok=True)
    torchvision.utils.save_image(images.clamp(0, 1), str(path), nrow=nrow, padding=2, pad_value=1.0)


# stages


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


def train_classifier(model, train, val, *, epochs: int, lr: float, batch_size: int, seed: int, device="cpu",
                     on_epoch: Callable[[int, dict, torch.nn.Module, object], None] | None = None) -> dict:
    """Adam with a one-cycle schedule; ``on_epoch(epoch, metrics, model, opt)`` after each epoch (1-based)."""
    xt, yt = train
    xv, yv = val
    model.to(device)
    opt = make_optimizer(model, lr)
    steps = epochs * (len(xt) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1)) if steps else None
    metrics = {}
    for epoch in range(1, epochs + 1):
        tr = train_epoch(model, opt, tensor_batches(xt, yt, batch_size=batch_size, shuffle=True, seed=seed * 1000 + epoch,
                                                    drop_last=True), device=device, sched=sched)
        va = evaluate(model, tensor_batches(xv, yv, batch_size=256), device=device)
        metrics = {"train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"], "val_acc": va["acc"]}
        if on_epoch:
            on_epoch(epoch, metrics, model, opt)
    return metrics


def train_generator(trainer: GANTrainer, train_images: torch.Tensor, *, epochs: int, batch_size: int, seed: int,
                    on_epoch: Callable[[int, dict], None] | None = None, log: Log = print) -> dict:
    means: dict = {}
    for epoch in range(1, epochs + 1):
        t, sums, n = time.time(), {}, 0
        for x in tensor_batches(train_images, batch_size=batch_size, shuffle=True, seed=seed * 1000 + epoch, drop_last=True,
                                device=trainer.device):
            out = trainer.step(x)
            for k, v in out.items():
                if not math.isnan(v):
                    sums[k] = sums.get(k, 0.0) + v
            n += 1
        means = {k: v / max(n, 1) for k, v in sums.items()}
        log(f"generator epoch {epoch}/{epochs}: " + ", ".join(f"{k} {v:.4g}" for k, v in means.items())
            + f" ({time.time() - t:.0f}s)")
        if on_epoch:
            on_epoch(epoch, means)
    return means


@torch.no_grad()
def _val_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255


def quality(cfg: PipelineConfig, *, encoder, generator, judge, code_stats_: dict, val, num_classes: int,
            out_dir: Path | None = None, log: Log = print) -> dict:
    """Reconstruction, and DGN-AM on every fc8 unit × ``am_starts``: recognisability, ratio, realism."""
    xv, yv = val
    xvf = _val_float(xv)
    t = time.time()
    rec = reconstruction_metrics(generator, encoder, cfg.gan.layer, xvf, yv, judge=judge)
    target = TargetNet.caffenet(encoder)
    units = [f"fc8:{k}" for k in range(num_classes)]
    objectives = [u for _ in range(cfg.am_starts) for u in units]  # start s of unit k at s*K + k
    res = dgn_am(generator, target, objectives, code_stats=code_stats_, config=cfg.am, device=cfg.device)
    intended = torch.arange(num_classes).repeat(cfg.am_starts)
    best = best_real_activations(target, units, tensor_batches(xv, batch_size=256)).repeat(cfg.am_starts)
    ratio = activation_ratio(res.activations.cpu().float(), best)
    labels, probs = judge_predictions(judge, res.images.cpu().float())
    hits = labels == intended
    am_feats, real_feats = judge_features(judge, res.images.cpu().float()), judge_features(judge, xvf)
    out = {
        **rec,
        "am_recognisability": hits.float().mean().item(),
        "am_units_recognised_any_start": hits.view(cfg.am_starts, num_classes).any(0).float().mean().item(),
        "am_median_activation_ratio": ratio.nanmedian().item(),
        "am_realism_fd": frechet_distance(am_feats, real_feats),
        "am_realism_precision": manifold_precision(am_feats, real_feats),
        "am_mean_judge_prob": probs.mean().item(),
        "am_seconds": time.time() - t,
    }
    if out_dir is not None:
        from dgn.metrics.reconstruction import reconstruct

        order = torch.cat([torch.nonzero(yv == k)[:6, 0] for k in range(num_classes)])
        recs = reconstruct(generator, encoder, cfg.gan.layer, xvf[order])
        pairs = torch.stack([xvf[order], recs], 1).flatten(0, 1)  # real, reconstruction, …
        _montage(pairs, out_dir / "montage-reconstructions.png", nrow=12)
        grid = res.images.cpu().view(cfg.am_starts, num_classes, *res.images.shape[1:]).transpose(0, 1).flatten(0, 1)
        _montage(grid, out_dir / "montage-dgn-am-fc8.png", nrow=cfg.am_starts)  # a row per class unit
    return out


def run_pipeline(cfg: PipelineConfig, log: Log = print) -> dict:
    """The embedded pipeline end to end, one process. Returns the summary (also in storage/quality.json)."""
    cfg.validate()
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    data = prepare_data(cfg, log)
    meta = read_meta(data)
    train = load_split(data, "train", image_size=cfg.image_size)
    val = load_split(data, "val", image_size=cfg.image_size)
    log(f"data: {len(train[0])} train, {len(val[0])} val images, {meta.num_classes} classes ({time.time() - t0:.0f}s)")
    timings = {}

    # E: the classifier, a checkpoint every epoch
    t = time.time()
    torch.manual_seed(cfg.seed)
    encoder = build_caffenet(cfg.classifier, num_classes=meta.num_classes, image_size=cfg.image_size)
    classifier_uris = []

    def save_e(epoch, m, model, opt):
        uri = save_checkpoint(classifier_checkpoint(model, opt, epoch=epoch, metrics=m, class_names=meta.class_names,
                                                    data=data),
                              RunLayout(cfg.storage).checkpoint("classifier", epoch))
        classifier_uris.append(uri)
        log(f"classifier epoch {epoch}/{cfg.classifier_epochs}: val acc {m['val_acc']:.3f}, loss {m['train_loss']:.3f}")

    e_metrics = train_classifier(encoder, train, val, epochs=cfg.classifier_epochs, lr=cfg.classifier_lr,
                                 batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device, on_epoch=save_e)
    timings["classifier_seconds"] = time.time() - t
    encoder.eval()

    # the independent judge: own seed, own architecture
    t = time.time()
    torch.manual_seed(cfg.judge_seed)
    judge = Judge(num_classes=meta.num_classes, image_size=cfg.image_size)

    def log_j(epoch, m, model, opt):
        log(f"judge epoch {epoch}/{cfg.judge_epochs}: val acc {m['val_acc']:.3f}")

    j_metrics = train_classifier(judge, train, val, epochs=cfg.judge_epochs, lr=cfg.judge_lr, batch_size=cfg.batch_size,
                                 seed=cfg.judge_seed, device=cfg.device, on_epoch=log_j)
    save_checkpoint(judge_checkpoint(judge, epoch=cfg.judge_epochs, metrics=j_metrics, seed=cfg.judge_seed),
                    RunLayout(cfg.storage).judge)
    judge.eval()
    timings["judge_seconds"] = time.time() - t

    # G: inverts E's code
    t = time.time()
    stats = code_stats(encoder, cfg.gan.layer, tensor_batches(train[0], batch_size=256, device=cfg.device))
    trainer = GANTrainer(encoder, cfg.gan, code_stats=stats, device=cfg.device, seed=cfg.seed)

    def save_g(epoch, m):
        save_checkpoint(trainer.state(epoch=epoch, metrics=m, encoder_ref=classifier_uris[-1] if classifier_uris else ""),
                        RunLayout(cfg.storage).generator(cfg.gan.layer, epoch))

    train_generator(trainer, train[0], epochs=cfg.gan_epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                    on_epoch=save_g, log=log)
    timings["generator_seconds"] = time.time() - t
    timings["training_seconds"] = sum(timings.values())

    out_dir = Path(cfg.storage) if "://" not in cfg.storage else None
    q = quality(cfg, encoder=encoder, generator=trainer.generator, judge=judge, code_stats_=stats, val=val,
                num_classes=meta.num_classes, out_dir=out_dir, log=log)
    summary = {
        "classifier_val_acc": e_metrics.get("val_acc", float("nan")),
        "judge_val_acc": j_metrics.get("val_acc", float("nan")),
        **q, **timings, "total_seconds": time.time() - t0,
        "dead_code_units": int((stats["std"] <= 1e-6).sum()),
        "classifier_checkpoints": classifier_uris,
        "config": cfg.to_dict(),
    }
    if out_dir is not None:
        (out_dir / "quality.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


# the pipeline on Ray Train (flows/train.py)


def default_run_name(storage: str) -> str:
    return storage.rstrip("/").rsplit("/", 1)[-1] or "default"


def check_encoder_weights(path: str) -> int:
    """E's image size, after checking that ``path`` holds a usable E (before any work starts)."""
    from dgn.train.ray_loops import load_encoder

    return load_encoder(path).config.image_size


def atlas_stage(cfg: PipelineConfig, *, run, classifier_checkpoints: list[str], generator_checkpoint: str,
                log: Log = print) -> dict:
    """Feature-evolution atlas of ``cfg.atlas_units`` at every classifier epoch, on the Ray actor pool.

    Runs after the quality stage and before the MLflow ``run`` is marked finished; resumable through
    the atlas manifest (a rerun renders nothing twice). Skipped with ``atlas_units="none"`` and when E
    came from --encoder-weights (no classifier epochs to evolve: use flows/atlas.py --target there).
    """
    if cfg.atlas_units == "none":
        log("atlas: skipped (atlas_units: none)")
        return {}
    if not classifier_checkpoints:
        log("atlas: E came from --encoder-weights, so there are no classifier epochs to evolve; "
            "render it with flows/atlas.py --target")
        return {}
    from dgn.atlas import run_atlas

    t = time.time()
    summary = run_atlas(cfg.atlas_config(), run=run, log=log)
    log(f"atlas: done in {time.time() - t:.0f}s")
    return summary


def run_training(cfg: PipelineConfig, log: Log = print) -> dict:
    """data → classifier E → judge → G on Ray Train (data-parallel, resumable) → quality → (atlas); tracked in MLflow.

    Everything a user can get wrong is checked before the MLflow run is created or anything is written.
    Re-running with the same storage and run name resumes: finished stages and epochs are skipped.
    """
    from dgn.tracking.training import TrainingTracker

    # checks, before any work
    cfg.validate()
    if cfg.classifier_epochs < 1 and not cfg.encoder_weights:
        raise DGNError("classifier-epochs must be ≥ 1 unless --encoder-weights gives E")
    if cfg.gan_epochs < 1 or cfg.judge_epochs < 1:
        raise DGNError(f"gan-epochs and judge-epochs must be ≥ 1 for a training run; got {cfg.gan_epochs} and "
                       f"{cfg.judge_epochs}")
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DGNError("--gpu was given but no CUDA device is available here")
    if cfg.encoder_weights:
        size = check_encoder_weights(cfg.encoder_weights)
        if size != cfg.image_size:
            log(f"encoder: {cfg.encoder_weights} takes {size}-px images; training at {size} px")
            cfg.image_size = size
    if cfg.data:
        read_meta(cfg.data)
    TrainingTracker.check()
    run_name = cfg.run_name or default_run_name(cfg.storage)
    t0 = time.time()
    clock = StageClock()
    try:
        return _run_training(cfg, clock, t0=t0, run_name=run_name, log=log)
    finally:
        clock.cpu.stop()


def _run_training(cfg: PipelineConfig, clock: StageClock, *, t0: float, run_name: str, log: Log) -> dict:
    import os

    from dgn.tracking.training import TrainingTracker
    from dgn.train.checkpoint import load_checkpoint
    from dgn.train.classifier import did_not_learn
    import ray

    from dgn.cluster import init_ray
    from dgn.train.ray_fit import Scaling, fit_stages
    from dgn.train.ray_loops import STAGE_NAMES

    clock.probe()

    tracker = TrainingTracker(experiment=cfg.experiment, run_name=run_name, params=cfg.to_dict(), storage=cfg.storage,
                              log=log)
    tracker.check_name()

    def on_event(e: dict) -> None:
        if "epoch" in e:  # an epoch ended: the time since the last mark was that stage's (the first one's
            clock.mark(e["stage"])  # includes Ray Train's start)
        tracker.on_event(e)

    with tracker.open() as run:
        init_ray(cfg.num_cpus)
        resources = ray.cluster_resources()
        data = prepare_data(cfg, log)
        meta = read_meta(data)
        clock.mark("ray start, data")
        n_train = meta.counts["train"]
        layout = RunLayout(cfg.storage)
        gan_dir = layout.generator_dir(cfg.gan.layer)
        encoder_ref = cfg.encoder_weights or layout.checkpoint("classifier", cfg.classifier_epochs)
        common = dict(data=data, storage=cfg.storage, image_size=cfg.image_size, n_train=n_train,
                      batch_size=cfg.batch_size, num_classes=meta.num_classes, class_names=meta.class_names)
        stages = []
        if not cfg.encoder_weights:
            stages.append(("classifier", dict(common, kind="classifier", arch=cfg.classifier, epochs=cfg.classifier_epochs,
                                              lr=cfg.classifier_lr, seed=cfg.seed, learned_factor=cfg.learned_factor)))
        stages.append(("judge", dict(common, kind="judge", epochs=cfg.judge_epochs, lr=cfg.judge_lr, seed=cfg.judge_seed,
                                     learned_factor=cfg.learned_factor)))
        stages.append(("generator", dict(common, encoder=encoder_ref, gan=cfg.gan.to_dict(), epochs=cfg.gan_epochs,
                                         seed=cfg.seed)))
        todo = [(s, c) for s, c in stages
                if len([e for e in layout.epochs(gan_dir if s == "generator" else s)
                        if e <= c["epochs"]]) < c["epochs"]]
        for s, c in stages:
            if all(s != t for t, _ in todo):
                log(f"{s}: all {c['epochs']} epochs are checkpointed; skipped")
                if s in STAGE_NAMES:  # a resumed run must not train the next stages on a classifier that did not learn
                    m = load_checkpoint(layout.checkpoint(s, c["epochs"]), s).get("metrics") or {}
                    stuck = did_not_learn(STAGE_NAMES[s], m, num_classes=meta.num_classes, epochs=c["epochs"],
                                          factor=cfg.learned_factor)
                    if stuck:
                        raise DGNError(stuck)
        cpus = int(resources.get("CPU", 1))
        per_worker = max(1, cpus // cfg.workers) if not os.environ.get("RAY_ADDRESS") else 1
        scaling = Scaling(workers=cfg.workers, gpu=cfg.device == "cuda", cpus_per_worker=per_worker,
                          max_failures=cfg.max_failures, ray_storage=RunLayout(cfg.storage).ray)
        t = time.time()
        if todo:
            log(f"training {', '.join(s for s, _ in todo)} on {cfg.workers} Ray Train worker(s) × {per_worker} CPU")
            fit_stages(todo, name=run_name, scaling=scaling, on_event=on_event)
        if tracker.diverged:
            raise DGNError(tracker.diverged)
        training_seconds = time.time() - t
        clock.mark("ray train end, I/O")
        checkpoints = {s: layout.checkpoints(d) for s, d in (("classifier", "classifier"), ("judge", "judge"), ("generator", gan_dir))}
        tracker.log_checkpoints(checkpoints)

        # quality, in the driver
        summary_uri = RunLayout(cfg.storage).quality
        if not todo and exists(summary_uri):
            log(f"quality: {summary_uri} exists and no training happened; skipped")
            summary = json.loads(read_text(summary_uri))
        else:
            summary = _quality_stage(cfg, data=data, meta=meta, encoder_ref=encoder_ref, checkpoints=checkpoints,
                                     tracker=tracker, log=log)
            summary.update(training_seconds=training_seconds, total_seconds=time.time() - t0)
            summary["classifier_checkpoints"] = checkpoints["classifier"]
            _write_summary(cfg, summary, tracker)
        clock.mark("quality")

        atlas_stage(cfg, run=run, classifier_checkpoints=checkpoints["classifier"],
                    generator_checkpoint=checkpoints["generator"][-1], log=log)
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


def _quality_stage(cfg: PipelineConfig, *, data: str, meta, encoder_ref: str, checkpoints: dict, tracker,
                   log: Log) -> dict:
    from dgn.train.checkpoint import load_checkpoint
    from dgn.train.classifier import load_judge
    from dgn.train.gan import load_generator
    from dgn.train.ray_loops import load_encoder

    t = time.time()
    encoder = load_encoder(encoder_ref).eval()
    generator, gck = load_generator(checkpoints["generator"][-1])
    judge = load_judge(RunLayout(cfg.storage).judge)
    val = load_split(data, "val", image_size=cfg.image_size)
    e_metrics = load_checkpoint(checkpoints["classifier"][-1], "classifier")["metrics"] if checkpoints["classifier"] \
        else {}
    j_metrics = load_checkpoint(checkpoints["judge"][-1], "judge")["metrics"]
    num_classes = min(meta.num_classes, encoder.config.num_classes)
    tmp = Path(tempfile.mkdtemp(prefix="dgn-quality-"))
    q = quality(cfg, encoder=encoder, generator=generator, judge=judge, code_stats_=gck["code_stats"], val=val,
                num_classes=num_classes, out_dir=tmp, log=log)
    summary = {"classifier_val_acc": e_metrics.get("val_acc", float("nan")),
               "judge_val_acc": j_metrics.get("val_acc", float("nan")), **q,
               "dead_code_units": int((gck["code_stats"]["std"] <= 1e-6).sum()), "config": cfg.to_dict()}
    for f in sorted(tmp.glob("montage-*.png")):
        write_bytes(RunLayout(cfg.storage).montage(f.name), f.read_bytes())
    tracker.log_quality({k: v for k, v in summary.items() if k != "config"}, sorted(tmp.glob("montage-*.png")))
    log(f"quality: recognisability {q['am_recognisability']:.2f}, recon judge acc {q.get('recon_judge_acc', 0):.2f}, "
        f"median activation ratio {q['am_median_activation_ratio']:.2f}, realism FD {q['am_realism_fd']:.1f}, "
        f"precision {q['am_realism_precision']:.2f} "
        f"({time.time() - t:.0f}s)")
    return summary


def _write_summary(cfg: PipelineConfig, summary: dict, tracker) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dgn-summary-")) / "quality.json"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    write_bytes(RunLayout(cfg.storage).quality, tmp.read_bytes())
    tracker.run.log_artifact(tmp)
