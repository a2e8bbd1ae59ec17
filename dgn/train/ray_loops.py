"""Ray Train loops: the classifier (E or the judge) and G + D, data-parallel with DDP.

Each loop runs on every Ray Train worker. A worker reads only its shard of the
Parquet training set (``shard=(rank, world)``), takes ``batch_size // world``
rows per step, and DDP averages the gradients, so the *global* batch (and the
number of steps per epoch) stays the same as ``--workers`` changes.

Checkpoints are the project's own files under ``storage`` (one per epoch, all
kept); a loop resumes from the newest one it finds, so the same code serves a
worker group restarted by ``FailureConfig`` and a re-run of the whole job.
Rank 0 writes checkpoints; every rank calls ``ray.train.report``.

Workers never talk to MLflow: they put events on ``cfg["queue"]`` (a
``ray.util.queue.Queue``) which the driver drains while ``fit()`` runs:

    {"stage", "epoch", "epochs", "metrics", "checkpoint", "seconds", "image"?}   after each epoch
    {"stage", "note"}                                                          e.g. "resuming at epoch 3"
    {"stage", "diverged": sentence}                                            non-finite loss; the loop stops

BatchNorm (in G and the judge) normalises over each worker's own rows unless
the run is on GPUs with several workers, where it becomes SyncBatchNorm
(``torch.nn.SyncBatchNorm`` has no CPU kernel).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from dgn.errors import DGNError
from dgn.storage import RunLayout

STAGE_NAMES = {"classifier": "the classifier E", "judge": "the judge"}


# helpers (the layout itself lives in dgn.storage)


def epoch_uri(storage: str, stage_dir: str, epoch: int) -> str:
    return RunLayout(storage).checkpoint(stage_dir, epoch)


def saved_epochs(storage: str, stage_dir: str) -> list[int]:
    """Epochs with a checkpoint under ``storage/stage_dir`` (local or s3://), sorted."""
    return RunLayout(storage).epochs(stage_dir)


def load_shard(data: str, split: str, *, image_size: int, shard: tuple[int, int], limit: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """This worker's shard of a split in memory: (uint8 (N, 3, H, W), int64 (N,)); decoded once per process."""
    from dgn.data import iter_batches

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


class Worker:
    """Rank, world, device and the collective helpers of one Ray Train worker."""

    def __init__(self, cfg: dict):
        self.plain = cfg.get("context") == "torch"  # a plain torch.distributed process (bench/ray_overhead.py)
        if self.plain:
            import torch.distributed as dist

            init = dist.is_initialized()
            self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if init else (0, 1)
            self.device = torch.device("cpu")
        else:
            import ray.train
            import ray.train.torch

            ctx = ray.train.get_context()
            self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
            self.device = ray.train.torch.get_device() if cfg.get("gpu") else torch.device("cpu")
        self.queue = cfg.get("queue")
        torch.set_num_threads(max(1, int(cfg.get("threads", 1))))

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all workers."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([float(flag)])[0] > 0

    def report(self, metrics: dict) -> None:
        """``ray.train.report`` from every worker (Ray Train expects all ranks to report)."""
        if not self.plain:
            _report(metrics)

    def put(self, event: dict, *, any_rank: bool = False) -> None:
        if (self.rank == 0 or any_rank) and self.queue is not None:
            self.queue.put(event)

    def agree(self, stage: str, error: DGNError | None) -> bool:
        """True when no rank hit a user error in its set-up; else every rank learns it and the stage ends at once.

        A user error (missing dataset, undecodable image, bad layer) is not a crash: restarting the worker
        group (``--max-failures``) would only meet it again, so the rank that saw it sends its sentence to
        the driver and every rank returns, before any collective that the others would wait in forever.
        """
        if error is not None:
            self.put({"stage": stage, "diverged": str(error)}, any_rank=True)
        return not self.any(error is not None)

    def wrap(self, module: torch.nn.Module, *, sync_bn: bool = False) -> torch.nn.Module:
        """DDP (and SyncBatchNorm on GPUs) when there are several workers; else the module on the device."""
        if sync_bn and self.world > 1 and self.device.type == "cuda":
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        if self.plain:
            module = module.to(self.device)
            return torch.nn.parallel.DistributedDataParallel(module) if self.world > 1 else module
        import ray.train.torch

        return ray.train.torch.prepare_model(module, move_to_device=self.device, parallel_strategy="ddp"
                                             if self.world > 1 else None)


def _die_if_asked(cfg: dict, stage: str, epoch: int, rank: int) -> None:
    """Test hook: ``cfg["die"] = "stage:epoch:rank[:marker]"`` makes that worker exit mid-epoch (once, with a marker)."""
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
    print(f"test hook: worker rank {rank} exits in {stage} epoch {epoch}", flush=True)
    os._exit(1)


def _last_good(epoch: int) -> str:
    return f"the last good checkpoint is epoch {epoch - 1}" if epoch > 1 else "no epoch of this stage was checkpointed"


def _report(metrics: dict) -> None:
    import ray.train

    ray.train.report({k: v for k, v in metrics.items() if isinstance(v, (int, float))})


def _steps_per_epoch(n_train: int, batch_size: int, world: int, stage: str) -> tuple[int, int]:
    """(per-worker batch, steps per epoch) for a fixed global batch."""
    if batch_size % world:
        raise DGNError(f"batch-size {batch_size} must be a multiple of --workers {world} (the global batch is fixed)")
    local = batch_size // world
    steps = (n_train // world) // local  # every shard holds at least n_train // world rows
    if steps < 1:
        raise DGNError(f"{stage}: {n_train} training images are fewer than one batch of {batch_size}")
    return local, steps


def _batches(x: torch.Tensor, y: torch.Tensor | None, *, local: int, steps: int, seed: int, device):
    """``steps`` batches of ``local`` rows from this shard, in a seeded order."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for i in range(steps):
        idx = order[i * local:(i + 1) * local]
        xb = x[idx].to(device, non_blocking=True).float().div_(255)  # (b, 3, H, W) in [0, 1]
        yield xb if y is None else (xb, y[idx].to(device))


# the classifier: E or the judge


def build_classifier(cfg: dict) -> torch.nn.Module:
    from dgn.nets import Judge, build_caffenet

    if cfg["kind"] == "judge":
        return Judge(num_classes=cfg["num_classes"], image_size=cfg["image_size"])
    return build_caffenet(cfg["arch"], num_classes=cfg["num_classes"], image_size=cfg["image_size"],
                          **(cfg.get("arch_overrides") or {}))


def classifier_loop(cfg: dict) -> bool:
    """Train E (``kind="classifier"``) or the judge (``kind="judge"``): AdamW + one-cycle, a checkpoint per epoch.

    cfg: kind, data, storage, image_size, arch, num_classes, class_names, n_train, epochs, lr, batch_size, seed,
    threads, gpu, queue, die (test hook). Returns False when training diverged.
    """
    from dgn.train.checkpoint import load_checkpoint, save_checkpoint
    from dgn.train.classifier import classifier_checkpoint, did_not_learn, judge_checkpoint, make_optimizer

    w = Worker(cfg)
    stage, epochs = cfg["kind"], cfg["epochs"]
    done = [e for e in saved_epochs(cfg["storage"], stage) if e <= epochs]
    start = done[-1] if done else 0
    if start >= epochs:
        return True
    error = None
    try:  # everything a user's input can break, before the first collective
        local, steps = _steps_per_epoch(cfg["n_train"], cfg["batch_size"], w.world, stage)
        x, y = load_shard(cfg["data"], "train", image_size=cfg["image_size"], shard=(w.rank, w.world))
        xv, yv = load_shard(cfg["data"], "val", image_size=cfg["image_size"], shard=(w.rank, w.world))
        torch.manual_seed(cfg["seed"])
        model = build_classifier(cfg)
        opt = make_optimizer(model, cfg["lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=max(epochs * steps, 1))
        if start:
            ck = load_checkpoint(epoch_uri(cfg["storage"], stage, start), stage)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
    except DGNError as e:
        error = e
    if not w.agree(stage, error):
        return False
    if start:
        w.put({"stage": stage, "note": f"resuming at epoch {start + 1} from {epoch_uri(cfg['storage'], stage, start)}"})
    model = w.wrap(model, sync_bn=True)
    net = getattr(model, "module", model)

    initial_loss = (ck.get("metrics") or {}).get("initial_loss", float("nan")) if start else float("nan")
    first_steps = max(1, steps // 10)  # epoch 1's first steps: the loss a stage that learns must fall below
    for epoch in range(start + 1, epochs + 1):
        t = time.time()
        model.train()
        loss_sum = correct = n = first_sum = first_n = 0.0
        bad = False
        for i, (xb, yb) in enumerate(_batches(x, y, local=local, steps=steps, seed=cfg["seed"] * 1000 + epoch
                                              + 7919 * w.rank, device=w.device)):
            if i == steps // 2:
                _die_if_asked(cfg, stage, epoch, w.rank)
            logits = model(xb)  # (b, num_classes)
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if w.any(not math.isfinite(loss.item())):  # every rank leaves at the same step
                bad = True
                break
            loss_sum += loss.item() * len(yb)
            if epoch == 1 and i < first_steps:
                first_sum, first_n = first_sum + loss.item() * len(yb), first_n + len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            n += len(yb)
        if bad:
            w.put({"stage": stage, "diverged": f"{stage} training diverged in epoch {epoch}: the loss is not finite "
                   f"(lr {cfg['lr']}); {_last_good(epoch)}"})
            w.report({"diverged": 1.0})
            return False
        model.eval()
        v_loss = v_correct = v_n = 0.0
        with torch.no_grad():
            for i in range(0, len(xv), 256):
                xb, yb = xv[i:i + 256].to(w.device).float().div_(255), yv[i:i + 256].to(w.device)
                logits = net(xb)
                v_loss += F.cross_entropy(logits.float(), yb, reduction="sum").item()
                v_correct += (logits.argmax(1) == yb).sum().item()
                v_n += len(yb)
        loss_sum, correct, n, v_loss, v_correct, v_n, first_sum, first_n = w.sum(
            [loss_sum, correct, n, v_loss, v_correct, v_n, first_sum, first_n])
        if epoch == 1:
            initial_loss = first_sum / max(first_n, 1)
        m = {"train_loss": loss_sum / n, "train_acc": correct / n, "val_loss": v_loss / max(v_n, 1),
             "val_acc": v_correct / max(v_n, 1), "initial_loss": initial_loss}
        uri = epoch_uri(cfg["storage"], stage, epoch)
        if w.rank == 0:
            if stage == "judge":
                ck = judge_checkpoint(net, epoch=epoch, metrics=m, seed=cfg["seed"])
            else:
                ck = classifier_checkpoint(net, opt, epoch=epoch, metrics=m, class_names=cfg["class_names"],
                                           data=cfg["data"])
            ck.update(optimizer=opt.state_dict(), scheduler=sched.state_dict())
            save_checkpoint(ck, uri)
            if stage == "judge" and epoch == epochs:
                save_checkpoint(ck, RunLayout(cfg["storage"]).judge)  # what metrics and atlases load
        w.put({"stage": stage, "epoch": epoch, "epochs": epochs, "metrics": m, "checkpoint": uri,
               "seconds": time.time() - t})
        w.report({**m, "epoch": epoch})
    stuck = did_not_learn(STAGE_NAMES[stage], m, num_classes=cfg["num_classes"], epochs=epochs,
                          factor=cfg.get("learned_factor", 0.0))  # the job passes its own
    if stuck:
        w.put({"stage": stage, "diverged": stuck})
        return False
    return True


# G and D


def _combine_stats(w: Worker, stats: dict) -> dict:
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


def load_encoder(ref: str):
    """E from a project classifier checkpoint or a torchvision AlexNet state dict file."""
    from dgn.nets import load_torchvision_alexnet
    from dgn.train.checkpoint import load_checkpoint
    from dgn.train.classifier import load_classifier

    try:
        load_checkpoint(ref, "classifier")
    except DGNError as e:
        if "not a dgn checkpoint" not in str(e) and "corrupt" not in str(e):
            raise
        return load_torchvision_alexnet(ref)
    return load_classifier(ref)[0]


def recon_grid(trainer, images: torch.Tensor):
    """(H, W, 3) uint8 grid: a row of real images over a row of their reconstructions G(E(x))."""
    import torchvision

    from dgn.metrics.reconstruction import reconstruct

    with torch.no_grad():
        rec = reconstruct(trainer.generator, trainer.encoder, trainer.cfg.layer, images).float().cpu()
    grid = torchvision.utils.make_grid(torch.cat([images.cpu(), rec]).clamp(0, 1), nrow=len(images), padding=2,
                                       pad_value=1.0)  # (3, H, W)
    return grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def generator_loop(cfg: dict) -> bool:
    """Train G (and D) on E's code, a checkpoint per epoch.

    cfg: data, storage, image_size, encoder (URI of E), gan (GANConfig fields), n_train, epochs, batch_size, seed,
    threads, gpu, queue, die. Returns False when training diverged.
    """
    from dgn.train.checkpoint import load_checkpoint, save_checkpoint
    from dgn.train.codestats import code_stats
    from dgn.train.gan import GANConfig, GANTrainer

    w = Worker(cfg)
    gan = GANConfig(**cfg["gan"])
    stage, epochs = "generator", cfg["epochs"]
    stage_dir = f"generator/{gan.layer}"
    done = [e for e in saved_epochs(cfg["storage"], stage_dir) if e <= epochs]
    start = done[-1] if done else 0
    if start >= epochs:
        return True
    error, fixed = None, None
    try:  # everything a user's input can break, before the first collective
        local, steps = _steps_per_epoch(cfg["n_train"], cfg["batch_size"], w.world, stage)
        x, _ = load_shard(cfg["data"], "train", image_size=cfg["image_size"], shard=(w.rank, w.world))
        if w.rank == 0:
            fixed = load_shard(cfg["data"], "val", image_size=cfg["image_size"], shard=(0, 1), limit=8)[0]
            fixed = fixed.to(w.device).float().div_(255)  # (8, 3, H, W): the reconstruction grid's images
        encoder = load_encoder(cfg["encoder"]).to(w.device)
        ck = load_checkpoint(epoch_uri(cfg["storage"], stage_dir, start), "gan") if start else None
    except DGNError as e:
        error = e
    if not w.agree(stage, error):
        return False
    if ck is not None:
        stats = ck["code_stats"]
    else:
        stats = _combine_stats(w, code_stats(encoder, gan.layer, (xb for xb in _batches(
            x, None, local=256, steps=math.ceil(len(x) / 256), seed=0, device=w.device))))
    trainer = GANTrainer(encoder, gan, code_stats=stats, device=w.device, seed=cfg["seed"])
    if ck is not None:
        trainer.load(ck, where=epoch_uri(cfg["storage"], stage_dir, start))
        w.put({"stage": stage, "note": f"resuming at epoch {start + 1} from {epoch_uri(cfg['storage'], stage_dir, start)}"})
    trainer.G = w.wrap(trainer.G, sync_bn=True)
    trainer.D = w.wrap(trainer.D, sync_bn=True)
    trainer.reduce = lambda vals: [v / w.world for v in w.sum(vals)]  # D/G balance decided on global losses

    for epoch in range(start + 1, epochs + 1):
        t, sums, counts = time.time(), {}, {}
        bad = ""
        for i, xb in enumerate(_batches(x, None, local=local, steps=steps, seed=cfg["seed"] * 1000 + epoch
                                        + 7919 * w.rank, device=w.device)):
            if i == steps // 2:
                _die_if_asked(cfg, stage, epoch, w.rank)
            try:
                out = trainer.step(xb)
            except DGNError as e:
                out, bad = {}, str(e)
            if w.any(bool(bad)):
                break
            for k, v in out.items():  # the same keys on every rank; d_acc is NaN while D is off
                ok = not math.isnan(v)
                sums[k] = sums.get(k, 0.0) + (v if ok else 0.0)
                counts[k] = counts.get(k, 0) + ok
        if w.any(bool(bad)):
            w.put({"stage": stage, "diverged": f"generator training diverged in epoch {epoch}: "
                   f"{bad or 'a worker saw a non-finite loss'}; {_last_good(epoch)}"})
            w.report({"diverged": 1.0})
            return False
        keys = sorted(sums)
        tot = w.sum([sums[k] for k in keys] + [float(counts[k]) for k in keys])
        m = {k: tot[j] / tot[len(keys) + j] for j, k in enumerate(keys) if tot[len(keys) + j] > 0}
        uri = epoch_uri(cfg["storage"], stage_dir, epoch)
        event = {"stage": stage, "epoch": epoch, "epochs": epochs, "metrics": m, "checkpoint": uri,
                 "seconds": time.time() - t}
        if w.rank == 0:
            save_checkpoint(trainer.state(epoch=epoch, metrics=m, encoder_ref=cfg["encoder"]), uri)
            event["image"] = recon_grid(trainer, fixed)
        w.put(event)
        w.report({**m, "epoch": epoch})
    return True


LOOPS: dict[str, Callable[[dict], bool]] = {"classifier": classifier_loop, "judge": classifier_loop,
                                             "generator": generator_loop}


def pipeline_loop(cfg: dict) -> None:
    """The training stages in order on one worker group (one start-up): cfg["stages"] = [(stage, its cfg), ...].

    A stage whose checkpoints are all there returns at once, so a resumed run skips it.
    """
    for k, v in (cfg.get("env") or {}).items():
        os.environ.setdefault(k, v)
    shared = {k: cfg.get(k) for k in ("queue", "gpu", "threads", "die")}
    for stage, stage_cfg in cfg["stages"]:
        if not LOOPS[stage]({**stage_cfg, **shared}):
            return  # diverged: the driver has the sentence
