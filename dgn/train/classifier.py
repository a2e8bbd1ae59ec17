"""Training a classifier (the network E that G inverts, or the independent judge)."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from dgn.errors import DGNError
from dgn.nets.caffenet import CaffeNet, CaffeNetConfig, build_caffenet
from dgn.nets.judge import Judge
from dgn.nets.weights import load_torchvision_alexnet
from dgn.train.checkpoint import load_checkpoint, load_state


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when asked; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


LEARNED_FACTOR = 1.5  # a classifier must end above this × chance accuracy on val, else the job stops
LOSS_FALL = 0.9  # ... and its last epoch's train loss must be below this × its first steps' loss


def did_not_learn(stage: str, metrics: dict, *, num_classes: int, steps: int, factor: float = LEARNED_FACTOR) -> str:
    """The one sentence that stops the job when a classifier stage ended without learning; "" when it learned.

    ``metrics``: the last checkpoint's (``val_acc``, ``train_loss``, and ``initial_loss``: the mean loss of the
    stage's first steps). ``factor`` 0 switches the check off (a dry run's budget is too small to learn).
    """
    if factor <= 0:
        return ""
    chance = 1.0 / max(num_classes, 1)
    acc, loss, first = metrics.get("val_acc", 0.0), metrics.get("train_loss"), metrics.get("initial_loss")
    if acc <= factor * chance:
        return (f"{stage} did not learn: val acc {acc:.3f} after {steps} steps is ≤ {factor:g} × chance "
                f"({chance:.3f}); nothing downstream was trained on it")
    if loss is not None and first and loss >= LOSS_FALL * first:
        return (f"{stage} did not learn: train loss {loss:.3f} after {steps} steps has not fallen below "
                f"{LOSS_FALL:g} × its first steps' {first:.3f}; nothing downstream was trained on it")
    return ""


def make_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def make_schedule(opt: torch.optim.Optimizer, lr: float, steps: int):
    """One-cycle over the stage's whole step budget (stepped after every batch)."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))


def _sum(worker, values: list[float]) -> list[float]:
    return worker.sum(values) if worker is not None else list(values)


def classifier_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                    sched=None, amp: bool = False) -> tuple[float, int]:
    """One optimisation step on (images in [0, 1], labels): (loss, correct predictions)."""
    with autocast(x.device, amp):
        logits = model(x)  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return loss.item(), int((logits.argmax(1) == y).sum().item())


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, batches, *, device="cpu", amp: bool = False,
                sched=None, worker=None, first_steps: int = 0, on_step=None) -> dict | None:
    """The one classifier training loop: steps over ``batches`` of (images in [0, 1], labels).

    Returns the mean loss and accuracy (over every worker when ``worker`` is a dgn.train.worker.Worker) and,
    with ``first_steps``, ``first_loss``: the mean loss of the first that many steps. None when a loss was not
    finite (every worker stops at the same step). ``on_step(i)`` before step i (the tests' fault hook).
    """
    device = torch.device(device)
    model.train()
    tot_loss = tot_correct = n = first_sum = first_n = 0.0
    for i, (x, y) in enumerate(batches):
        if on_step is not None:
            on_step(i)
        x, y = x.to(device), y.to(device)
        loss, correct = classifier_step(model, opt, x, y, sched=sched, amp=amp)
        bad = not math.isfinite(loss)
        if (worker.any(bad) if worker is not None else bad):
            return None
        tot_loss += loss * len(y)
        tot_correct += correct
        n += len(y)
        if i < first_steps:
            first_sum, first_n = first_sum + loss * len(y), first_n + len(y)
    tot_loss, tot_correct, n, first_sum, first_n = _sum(worker, [tot_loss, tot_correct, n, first_sum, first_n])
    return {"loss": tot_loss / max(n, 1), "acc": tot_correct / max(n, 1), "n": int(n),
            "first_loss": first_sum / first_n if first_n else float("nan")}


@torch.no_grad()
def evaluate(model: nn.Module, batches, *, device="cpu", worker=None) -> dict:
    """Mean loss and accuracy over ``batches`` (and over every worker's shard with ``worker``)."""
    device = torch.device(device)
    was = model.training
    model.eval()
    tot_loss = tot_correct = n = 0.0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        tot_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        tot_correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    model.train(was)
    tot_loss, tot_correct, n = _sum(worker, [tot_loss, tot_correct, n])
    return {"loss": tot_loss / max(n, 1), "acc": tot_correct / max(n, 1), "n": int(n)}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities (N, num_classes) for float images in [0, 1]."""
    was = model.training
    model.eval()
    out = [F.softmax(model(images[i:i + batch_size]).float(), 1) for i in range(0, len(images), batch_size)]
    model.train(was)
    return torch.cat(out)


# checkpoints


def classifier_checkpoint(model: CaffeNet, opt=None, *, epoch: int, metrics: dict | None = None, class_names=None,
                          data: str = "") -> dict:
    return {
        "kind": "classifier",
        "arch": "caffenet",
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "optimizer": opt.state_dict() if opt is not None else None,
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "class_names": list(class_names or []),
        "data": data,  # the dataset it was trained on
    }


def load_classifier(uri: str) -> tuple[CaffeNet, dict]:
    """(network in eval mode, checkpoint) from a classifier checkpoint."""
    ck = load_checkpoint(uri, "classifier")
    net = CaffeNet(CaffeNetConfig.from_dict(ck["config"]))
    load_state(net, ck["model"], what=f"classifier checkpoint {uri!r}")
    return net.eval(), ck


def judge_checkpoint(model: Judge, *, epoch: int, metrics: dict | None = None, seed: int = 0) -> dict:
    return {
        "kind": "judge",
        "num_classes": model.head.out_features,
        "image_size": model.image_size,
        "widths": list(model.widths),
        "convs_per_block": model.convs_per_block,
        "model": model.state_dict(),
        "epoch": int(epoch),
        "seed": int(seed),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }


def load_judge(uri: str) -> Judge:
    ck = load_checkpoint(uri, "judge")
    net = Judge(num_classes=ck["num_classes"], image_size=ck["image_size"], widths=tuple(ck["widths"]),
                convs_per_block=ck["convs_per_block"])
    load_state(net, ck["model"], what=f"judge checkpoint {uri!r}")
    return net.eval()


def build_classifier(kind: str, *, num_classes: int, image_size: int, arch: str = "small", **overrides) -> nn.Module:
    """A fresh classifier stage's network: E (``kind="classifier"``, CaffeNet preset ``arch`` with CaffeNetConfig
    ``overrides``, which only tests set: dropout 0 for the DDP-equivalence test) or the judge."""
    if kind == "judge":
        return Judge(num_classes=num_classes, image_size=image_size)
    return build_caffenet(arch, num_classes=num_classes, image_size=image_size, **overrides)


def load_encoder(ref: str) -> CaffeNet:
    """E from a project classifier checkpoint or a torchvision AlexNet state dict file."""
    try:
        load_checkpoint(ref, "classifier")
    except DGNError as e:
        if "not a dgn checkpoint" not in str(e) and "corrupt" not in str(e):
            raise
        return load_torchvision_alexnet(ref)
    return load_classifier(ref)[0]
