"""The training stages: the classifier (E or the judge) and G + D, one loop each, data-parallel with DDP.

Each loop runs unchanged on every Ray Train worker (dgn.train.ray_fit) and in this process
(:func:`fit_local`: the sweep's base, benches, tests); only the :class:`~dgn.train.worker.Worker` differs.
A worker reads only its shard of the Parquet training set (``shard=(rank, world)``), takes
``batch_size // world`` rows per step, and DDP averages the gradients, so the *global* batch (and the
number of steps) stays the same as ``--workers`` changes. The shard is held decoded in memory
(:class:`MemorySource`) or, for a split above ``stream_above_mb`` decoded, streamed from Parquet a window at a
time (:class:`~dgn.data.ParquetStream`); both give batches as a function of the step (``batches(start, stop)``),
and each stage's first event says which (``"input: ..."``).

**Budgets are steps, not epochs.** A stage trains ``steps`` optimisation steps, whatever the dataset's size,
and writes ``checkpoints`` evenly spaced checkpoints (``<stage>/epoch=000k.pt`` is the k-th, the atlas's
time axis; each records its ``step``). Batches come from an endless stream of seeded passes over the shard,
so on a small dataset a checkpoint spans several passes and on a large one part of a pass; on the embedded
default (8000 images, batch 64) one checkpoint is one pass, as an epoch was.

Checkpoints are the project's own files under ``storage`` (all kept); a loop resumes from the newest one it
finds, so the same code serves a worker group restarted by ``FailureConfig`` and a re-run of the whole job.
Rank 0 writes checkpoints. Workers put events on ``cfg["queue"]``, which the driver drains:

    {"stage", "epoch", "epochs", "step", "metrics", "checkpoint", "seconds", "image"?}  after each checkpoint
    {"stage", "note"}                                                                  e.g. "resuming at ..."
    {"stage", "diverged": sentence}                                                    the stage stops

BatchNorm (in G and the judge) normalises over each worker's own rows unless the run is on GPUs with several
workers, where it becomes SyncBatchNorm (``torch.nn.SyncBatchNorm`` has no CPU kernel).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator

import torch
import torchvision

from dgn.data import ParquetStream, choose_input, iter_batches
from dgn.data.streaming import WINDOW
from dgn.errors import DGNError
from dgn.metrics.reconstruction import reconstruct
from dgn.storage import RunLayout
from dgn.train.checkpoint import load_checkpoint, save_checkpoint
from dgn.train.classifier import (
    build_classifier,
    classifier_checkpoint,
    did_not_learn,
    evaluate,
    judge_checkpoint,
    load_encoder,
    make_optimizer,
    make_schedule,
    train_epoch,
)
from dgn.train.codestats import code_stats
from dgn.train.gan import GANConfig, GANTrainer
from dgn.train.worker import Events, Worker

STAGE_NAMES = {"classifier": "the classifier E", "judge": "the judge", "comparator": "the comparator C"}


def checkpoint_kind(stage: str) -> str:
    """What a classifier stage's checkpoints hold: the judge's own kind, else a classifier (E, the comparator)."""
    return "judge" if stage == "judge" else "classifier"


# the data a worker trains on


def load_shard(data: str, split: str, *, image_size: int, shard: tuple[int, int], limit: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """This worker's shard of a split in memory: (uint8 (N, 3, H, W), int64 (N,)); decoded once per process."""
    key = (data, split, image_size, shard, limit)
    if key in _SHARDS:
        return _SHARDS[key]
    xs, ys, n = [], [], 0
    for x, y in iter_batches(data, split, image_size=image_size, batch_size=256, shard=shard):
        xs.append(x.mul(255).round_().to(torch.uint8))  # exact: decoding gave k/255
        ys.append(y)
        n += len(y)
        if limit is not None and n >= limit:
            break
    x, y = torch.cat(xs), torch.cat(ys)
    _SHARDS[key] = (x[:limit], y[:limit]) if limit is not None else (x, y)
    return _SHARDS[key]


_SHARDS: dict = {}  # the stages of one pipeline run share a worker process: decode each shard once


def local_batch(batch_size: int, world: int, n_train: int, stage: str) -> int:
    """Rows per worker and step for a fixed global batch."""
    if batch_size % world:
        raise DGNError(f"batch-size {batch_size} must be a multiple of --workers {world} (the global batch is fixed)")
    local = batch_size // world
    if (n_train // world) < local:  # every shard holds at least n_train // world rows
        raise DGNError(f"{stage}: {n_train} training images are fewer than one batch of {batch_size}")
    return local


def stream(x: torch.Tensor, y: torch.Tensor | None, *, local: int, start: int, stop: int, seed: int, rank: int,
           device) -> Iterator:
    """Batches for steps ``start``…``stop − 1`` of an endless stream of seeded passes over this shard.

    Pass p is a permutation seeded by (seed, p, rank); a pass holds ``len(x) // local`` batches (the rest of
    the permutation is dropped), so step s is the same batch whether the stage resumed or not.
    """
    per_pass = len(x) // local
    step = start
    while step < stop:
        p, i = divmod(step, per_pass)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed * 1000 + p + 1 + 7919 * rank))
        for j in range(i, min(per_pass, i + stop - step)):
            idx = order[j * local:(j + 1) * local]
            xb = x[idx].to(device, non_blocking=True).float().div_(255)  # (b, 3, H, W) in [0, 1]
            yield xb if y is None else (xb, y[idx].to(device))
            step += 1


class MemorySource:
    """An in-memory shard behind the contract of :class:`~dgn.data.ParquetStream`: ``batches(start, stop, device)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, *, local: int, seed: int, rank: int):
        self.x, self.y, self.local, self.seed, self.rank = x, y, local, seed, rank
        self.per_pass = len(x) // local

    def batches(self, start: int, stop: int, device="cpu") -> Iterator:
        return stream(self.x, self.y, local=self.local, start=start, stop=stop, seed=self.seed, rank=self.rank,
                      device=device)


STATS_ROWS = 8192  # streamed input: G's code statistics come from (up to) this many training rows per worker


def train_source(cfg: dict, w: Worker, local: int, *, labels: bool = True):
    """(source of training batches, the log line saying which): the split in memory, or streamed from Parquet
    when its decoded size is above ``cfg["stream_above_mb"]`` (dgn.data.choose_input)."""
    streaming, note = choose_input(cfg["n_train"], cfg["image_size"], cfg.get("stream_above_mb"))
    if not streaming:
        x, y = load_shard(cfg["data"], "train", image_size=cfg["image_size"], shard=(w.rank, w.world))
        return MemorySource(x, y if labels else None, local=local, seed=cfg["seed"], rank=w.rank), note
    decode = cfg.get("stream_decode") or _spare_cpu_decode(w)
    src = ParquetStream(cfg["data"], "train", image_size=cfg["image_size"], local=local, shard=(w.rank, w.world),
                        seed=cfg["seed"], window=cfg.get("stream_window") or WINDOW,
                        threads=max(2, int(cfg.get("threads") or 0)), labels=labels, decode=decode)
    return src, f"{note}; {src.describe()}"


def _spare_cpu_decode(w: Worker) -> str:
    """Decode on Ray Data tasks when the cluster has CPUs the training workers do not hold (a GPU cluster's CPU
    nodes, spare cores); else in the worker (tasks that wait for a CPU the workers hold would never run)."""
    if w.context != "ray":
        return "threads"
    import ray

    return "ray" if ray.available_resources().get("CPU", 0) >= 1 else "threads"


def stats_batches(src, device) -> Iterator:
    """Training images for G's code statistics: the whole shard in memory, else the first STATS_ROWS streamed."""
    if isinstance(src, MemorySource):
        return (xv for xv, _ in val_batches(src.x, torch.zeros(len(src.x), dtype=torch.long), device))
    return src.batches(0, min(src.per_pass, max(1, STATS_ROWS // src.local)), device)


def val_batches(xv: torch.Tensor, yv: torch.Tensor, device, batch_size: int = 256) -> Iterator:
    for i in range(0, len(xv), batch_size):
        yield xv[i:i + batch_size].to(device).float().div_(255), yv[i:i + batch_size].to(device)


def schedule(steps: int, checkpoints: int) -> list[int]:
    """The step after which each of a stage's ``checkpoints`` is written: evenly spaced, the last at ``steps``."""
    if steps < 1 or checkpoints < 1:
        raise DGNError(f"a training stage needs ≥ 1 step and ≥ 1 checkpoint; got {steps} and {checkpoints}")
    n = min(checkpoints, steps)
    return [round(steps * k / n) for k in range(1, n + 1)]


# helpers


def _die_if_asked(cfg: dict, stage: str, epoch: int, rank: int) -> None:
    """Test hook: ``cfg["die"] = "stage:k:rank[:marker]"`` makes that worker exit mid-checkpoint k (once, with a marker)."""
    spec = cfg.get("die") or ""
    if not spec:
        return
    parts = spec.split(":", 3)
    if parts[0] != stage or int(parts[1]) != epoch or int(parts[2]) != rank:
        return
    marker = parts[3] if len(parts) > 3 else ""
    if marker:
        if os.path.exists(marker):
            return
        open(marker, "w").close()
    print(f"test hook: worker rank {rank} exits in {stage} checkpoint {epoch}", flush=True)
    os._exit(1)


def _last_good(epoch: int) -> str:
    return f"the last good checkpoint is {epoch - 1}" if epoch > 1 else "no checkpoint of this stage was written"


def _resume_point(storage: str, stage_dir: str, n: int) -> int:
    done = [e for e in RunLayout(storage).epochs(stage_dir) if e <= n]
    return done[-1] if done else 0


# the classifier: E or the judge


def classifier_loop(cfg: dict) -> bool:
    """Train E (``kind="classifier"``), the judge (``kind="judge"``) or the independent comparator C
    (``kind="comparator"``, a classifier like E): AdamW + one-cycle over ``steps``.

    cfg: kind, data, storage, image_size, arch, num_classes, class_names, n_train, steps, checkpoints, lr,
    batch_size, seed, learned_factor; context, threads, gpu, queue, die. Returns False when the stage stopped
    (diverged, a user error, or did not learn: the driver has the sentence).
    """
    w = Worker(cfg)
    stage, layout = cfg["kind"], RunLayout(cfg["storage"])
    ends = schedule(cfg["steps"], cfg["checkpoints"])
    start = _resume_point(cfg["storage"], stage, len(ends))
    if start >= len(ends):
        return True
    error, ck = None, None
    try:  # everything a user's input can break, before the first collective
        local = local_batch(cfg["batch_size"], w.world, cfg["n_train"], stage)
        src, input_note = train_source(cfg, w, local)
        xv, yv = load_shard(cfg["data"], "val", image_size=cfg["image_size"], shard=(w.rank, w.world))
        torch.manual_seed(cfg["seed"])
        model = build_classifier(stage, num_classes=cfg["num_classes"], image_size=cfg["image_size"],
                                 arch=cfg.get("arch", "small"), **(cfg.get("arch_overrides") or {}))
        opt = make_optimizer(model, cfg["lr"])
        sched = make_schedule(opt, cfg["lr"], cfg["steps"])
        if start:
            ck = load_checkpoint(layout.checkpoint(stage, start), checkpoint_kind(stage))
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
    except DGNError as e:
        error = e
    if not w.agree(stage, error):
        return False
    w.put({"stage": stage, "note": input_note})
    if start:
        w.put({"stage": stage, "note": f"resuming at checkpoint {start + 1} from {layout.checkpoint(stage, start)}"})
    model = w.wrap(model, sync_bn=True)
    net = getattr(model, "module", model)

    initial_loss = (ck.get("metrics") or {}).get("initial_loss", float("nan")) if ck else float("nan")
    first_steps = max(1, ends[0] // 10)  # the first steps' loss, which a stage that learns must fall below
    m: dict = {}
    for k in range(start + 1, len(ends) + 1):
        t, lo, hi = time.time(), ends[k - 2] if k > 1 else 0, ends[k - 1]
        tr = train_epoch(model, opt, src.batches(lo, hi, w.device),
                         device=w.device, sched=sched, worker=w, first_steps=first_steps if k == 1 else 0,
                         on_step=lambda i: i == (hi - lo) // 2 and _die_if_asked(cfg, stage, k, w.rank))
        if tr is None:
            w.put({"stage": stage, "diverged": f"{stage} training diverged before step {hi}: the loss is not finite "
                   f"(lr {cfg['lr']}); {_last_good(k)}"})
            w.report({"diverged": 1.0})
            return False
        va = evaluate(net, val_batches(xv, yv, w.device), device=w.device, worker=w)
        if k == 1:
            initial_loss = tr["first_loss"]
        m = {"train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"], "val_acc": va["acc"],
             "initial_loss": initial_loss, "step": float(hi)}
        uri = layout.checkpoint(stage, k)
        if w.rank == 0:
            if stage == "judge":
                out = judge_checkpoint(net, epoch=k, metrics=m, seed=cfg["seed"])
            else:
                out = classifier_checkpoint(net, opt, epoch=k, metrics=m, class_names=cfg["class_names"],
                                            data=cfg["data"])
            out.update(optimizer=opt.state_dict(), scheduler=sched.state_dict(), step=hi)
            save_checkpoint(out, uri)
            if stage == "judge" and k == len(ends):
                save_checkpoint(out, layout.judge)  # what metrics and atlases load
        w.put({"stage": stage, "epoch": k, "epochs": len(ends), "step": hi, "metrics": m, "checkpoint": uri,
               "seconds": time.time() - t})
        w.report({**m, "epoch": k})
    stuck = did_not_learn(STAGE_NAMES[stage], m, num_classes=cfg["num_classes"], steps=cfg["steps"],
                          factor=cfg.get("learned_factor", 0.0))  # the job passes its own
    if stuck:
        w.put({"stage": stage, "diverged": stuck})
        return False
    return True


# G and D


def combine_stats(w: Worker, stats: dict) -> dict:
    """Per-shard code statistics → the same over all shards (exact mean and variance)."""
    n = float(stats["n"])
    mean, std = stats["mean"].double(), stats["std"].double()
    flat = torch.cat([mean * n, (std ** 2 + mean ** 2) * n]).tolist() + [n]
    tot = torch.tensor(w.sum(flat), dtype=torch.float64)
    n_all = tot[-1]
    k = mean.numel()
    m = (tot[:k] / n_all).view_as(mean)
    s = (tot[k:2 * k] / n_all - m.view(-1) ** 2).clamp_min(0).sqrt().view_as(mean)
    sigmas = 3.0
    return {"mean": m.float(), "std": s.float(), "upper": (m + sigmas * s).float(), "n": torch.tensor(int(n_all))}


def recon_grid(trainer: GANTrainer, images: torch.Tensor):
    """(H, W, 3) uint8 grid: a row of real images over a row of their reconstructions G(E(x))."""
    with torch.no_grad():
        rec = reconstruct(trainer.generator, trainer.encoder, trainer.cfg.layer, images).float().cpu()
    grid = torchvision.utils.make_grid(torch.cat([images.cpu(), rec]).clamp(0, 1), nrow=len(images), padding=2,
                                       pad_value=1.0)  # (3, H, W)
    return grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def generator_round(trainer: GANTrainer, batches, w: Worker, *, on_step=None) -> tuple[dict, str]:
    """The one G training loop: ``trainer.step`` over ``batches``; (mean of each loss over all workers' steps,
    "" or the sentence of a step that failed — every worker stops at the same step)."""
    sums, counts, bad = {}, {}, ""
    for i, xb in enumerate(batches):
        if on_step is not None:
            on_step(i)
        try:
            out = trainer.step(xb)
        except DGNError as e:
            out, bad = {}, str(e)
        if w.any(bool(bad)):
            return {}, bad or "a worker saw a non-finite loss"
        for key, v in out.items():  # the same keys on every rank; d_acc is NaN while D is off
            ok = not math.isnan(v)
            sums[key] = sums.get(key, 0.0) + (v if ok else 0.0)
            counts[key] = counts.get(key, 0) + ok
    keys = sorted(sums)
    tot = w.sum([sums[k] for k in keys] + [float(counts[k]) for k in keys])
    return {k: tot[j] / tot[len(keys) + j] for j, k in enumerate(keys) if tot[len(keys) + j] > 0}, ""


def generator_loop(cfg: dict) -> bool:
    """Train G (and D) on E's code for ``steps`` steps, ``checkpoints`` checkpoints.

    cfg: data, storage, image_size, encoder (URI of E), comparator (URI of an independent comparator, or ""), gan
    (GANConfig fields), n_train, steps, checkpoints, batch_size, seed; context, threads, gpu, queue, die. Returns
    False when the stage stopped.
    """
    w = Worker(cfg)
    gan = GANConfig(**cfg["gan"])
    stage, layout = "generator", RunLayout(cfg["storage"])
    stage_dir = layout.generator_dir(gan.layer)
    ends = schedule(cfg["steps"], cfg["checkpoints"])
    start = _resume_point(cfg["storage"], stage_dir, len(ends))
    if start >= len(ends):
        return True
    error, fixed, ck = None, None, None
    try:  # everything a user's input can break, before the first collective
        local = local_batch(cfg["batch_size"], w.world, cfg["n_train"], stage)
        src, input_note = train_source(cfg, w, local, labels=False)
        if w.rank == 0:
            fixed = load_shard(cfg["data"], "val", image_size=cfg["image_size"], shard=(0, 1), limit=8)[0]
            fixed = fixed.to(w.device).float().div_(255)  # (8, 3, H, W): the reconstruction grid's images
        encoder = load_encoder(cfg["encoder"]).to(w.device)
        comparator = load_encoder(cfg["comparator"]).to(w.device) if cfg.get("comparator") else None
        ck = load_checkpoint(layout.checkpoint(stage_dir, start), "gan") if start else None
    except DGNError as e:
        error = e
    if not w.agree(stage, error):
        return False
    w.put({"stage": stage, "note": input_note})
    if ck is not None:
        stats = ck["code_stats"]
    else:
        stats = combine_stats(w, code_stats(encoder, gan.layer, stats_batches(src, w.device)))
    trainer = GANTrainer(encoder, gan, code_stats=stats, device=w.device, seed=cfg["seed"], comparator=comparator)
    if ck is not None:
        trainer.load(ck, where=layout.checkpoint(stage_dir, start))
        w.put({"stage": stage, "note": f"resuming at checkpoint {start + 1} from {layout.checkpoint(stage_dir, start)}"})
    else:
        w.put({"stage": stage, "note": " ".join(trainer.describe().split("\n"))})  # what is trained, what is cut
    trainer.G = w.wrap(trainer.G, sync_bn=True)
    trainer.D = w.wrap(trainer.D, sync_bn=True)
    trainer.reduce = lambda vals: [v / w.world for v in w.sum(vals)]  # D/G balance decided on global losses

    for k in range(start + 1, len(ends) + 1):
        t, lo, hi = time.time(), ends[k - 2] if k > 1 else 0, ends[k - 1]
        m, bad = generator_round(trainer, src.batches(lo, hi, w.device), w,
                                 on_step=lambda i: i == (hi - lo) // 2 and _die_if_asked(cfg, stage, k, w.rank))
        if bad:
            w.put({"stage": stage, "diverged": f"generator training diverged before step {hi}: {bad}; "
                   f"{_last_good(k)}"})
            w.report({"diverged": 1.0})
            return False
        m["step"] = float(hi)
        uri = layout.checkpoint(stage_dir, k)
        event = {"stage": stage, "epoch": k, "epochs": len(ends), "step": hi, "metrics": m, "checkpoint": uri,
                 "seconds": time.time() - t}
        if w.rank == 0:
            save_checkpoint(trainer.state(epoch=k, metrics=m, encoder_ref=cfg["encoder"]), uri)
            event["image"] = recon_grid(trainer, fixed)
        w.put(event)
        w.report({**m, "epoch": k})
    return True


LOOPS: dict[str, Callable[[dict], bool]] = {"classifier": classifier_loop, "judge": classifier_loop,
                                             "comparator": classifier_loop, "generator": generator_loop}


def pipeline_loop(cfg: dict) -> None:
    """The training stages in order on one worker group (one start-up): cfg["stages"] = [(stage, its cfg), ...].

    A stage whose checkpoints are all there returns at once, so a resumed run skips it.
    """
    for k, v in (cfg.get("env") or {}).items():
        os.environ.setdefault(k, v)
    shared = {k: cfg.get(k) for k in ("queue", "gpu", "threads", "die", "context") if k in cfg}
    for stage, stage_cfg in cfg["stages"]:
        if not LOOPS[stage]({**stage_cfg, **shared}):
            return  # stopped: the driver has the sentence


def fit_local(stages: list[tuple[str, dict]], *, on_event: Callable[[dict], None], threads: int = 0,
              gpu: bool = False) -> None:
    """The same stages in this process (no Ray): the sweep's base, benches and tests."""
    pipeline_loop({"stages": stages, "queue": Events(on_event), "context": "local", "gpu": gpu,
                   "threads": threads or torch.get_num_threads()})
