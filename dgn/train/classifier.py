"""Training a classifier (the network E that G inverts, or the independent judge)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
import torch.nn.functional as F

from dgn.nets.caffenet import CaffeNet, CaffeNetConfig
from dgn.nets.judge import Judge
from dgn.train.checkpoint import load_checkpoint, load_state


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when asked; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


LEARNED_FACTOR = 1.5  # a classifier must end above this × chance accuracy on val, else the job stops
LOSS_FALL = 0.9  # ... and its last epoch's train loss must be below this × its first steps' loss


def did_not_learn(stage: str, metrics: dict, *, num_classes: int, epochs: int, factor: float = LEARNED_FACTOR) -> str:
    """The one sentence that stops the job when a classifier stage ended without learning; "" when it learned.

    ``metrics``: the last epoch's (``val_acc``, ``train_loss``, and ``initial_loss``: the mean loss of the
    first steps of epoch 1). ``factor`` 0 switches the check off (a dry run's budget is too small to learn).
    """
    if factor <= 0:
        return ""
    chance = 1.0 / max(num_classes, 1)
    acc, loss, first = metrics.get("val_acc", 0.0), metrics.get("train_loss"), metrics.get("initial_loss")
    if acc <= factor * chance:
        return (f"{stage} did not learn: val acc {acc:.3f} after {epochs} epoch(s) is ≤ {factor:g} × chance "
                f"({chance:.3f}); nothing downstream was trained on it")
    if loss is not None and first and loss >= LOSS_FALL * first:
        return (f"{stage} did not learn: train loss {loss:.3f} after {epochs} epoch(s) has not fallen below "
                f"{LOSS_FALL:g} × its first steps' {first:.3f}; nothing downstream was trained on it")
    return ""


def make_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, batches, *, device="cpu", amp: bool = False,
                sched=None) -> dict:
    """One pass over ``batches`` of (images in [0,1], labels); returns mean loss and accuracy.

    ``sched``: a learning-rate scheduler stepped after every batch.
    """
    device = torch.device(device)
    model.train()
    tot_loss = tot_correct = n = 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with autocast(device, amp):
            logits = model(x)  # (B, num_classes)
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        tot_loss += loss.item() * len(y)
        tot_correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": tot_loss / max(n, 1), "acc": tot_correct / max(n, 1), "n": n}


@torch.no_grad()
def evaluate(model: nn.Module, batches, *, device="cpu") -> dict:
    device = torch.device(device)
    was = model.training
    model.eval()
    tot_loss = tot_correct = n = 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        tot_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        tot_correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    model.train(was)
    return {"loss": tot_loss / max(n, 1), "acc": tot_correct / max(n, 1), "n": n}


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
