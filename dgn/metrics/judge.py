"""Recognisability and realism, both measured by the independent judge."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dgn.metrics.realism import frechet_distance, manifold_precision, realism_plan, realism_scores  # noqa: F401 (re-exported)


@torch.no_grad()
def judge_predictions(judge: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (N,), probability of that label (N,)) for images in [0, 1]."""
    was = judge.training
    judge.eval()
    probs = torch.cat([F.softmax(judge(images[i:i + batch_size]).float(), 1) for i in range(0, len(images), batch_size)])
    judge.train(was)
    p, lab = probs.max(1)
    return lab, p


def recognisability(judge: nn.Module, images: torch.Tensor, intended: torch.Tensor) -> float:
    """Share of ``images`` the judge assigns to their ``intended`` class."""
    labels, _ = judge_predictions(judge, images)
    return (labels == intended.to(labels.device)).float().mean().item()


@torch.no_grad()
def judge_features(judge: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    was = judge.training
    judge.eval()
    f = torch.cat([judge.embed(images[i:i + batch_size]).float() for i in range(0, len(images), batch_size)])
    judge.train(was)
    return f.cpu().double().numpy()


def realism(judge: nn.Module, images: torch.Tensor, real: torch.Tensor) -> float:
    """Fréchet distance in judge features between ``images`` and ``real`` images (lower: more natural).

    Kept for existing callers. The FD depends on both set sizes, so this number has no floor to be read
    against; new code should use :func:`realism_report` (same-size real set, disjoint real-vs-real floor).
    """
    return frechet_distance(judge_features(judge, images), judge_features(judge, real))


def realism_report(judge: nn.Module, fake_images: torch.Tensor, real_pool_images: torch.Tensor, *,
                   n: int | None = None, seed: int = 0, k: int = 3) -> dict:
    """Realism of ``fake_images`` at size n, in judge features, beside the real-vs-real floor at the same n.

    Returns ``{"n", "fd", "precision", "recall", "floor_fd", "floor_precision", "floor_recall"}``:
    the n generated images (all by default) against n real images drawn from ``real_pool_images``, and the
    floor: n *other* real images of the pool (disjoint from the first n) against the same n. Images are float
    in [0, 1] (uint8 0–255 is converted). The pool needs at least 2n images (else DGNError); headline realism uses n ≥ 200 (docs/metrics.md).
    Only the 2n real images it uses go through the judge. Features-level version (same draws for the same
    seed): :func:`dgn.metrics.realism.realism_from_features`.
    """
    fi, ref, floor = realism_plan(len(fake_images), len(real_pool_images), n=n, seed=seed, k=k)
    real = judge_features(judge, _unit(real_pool_images[torch.from_numpy(np.concatenate([ref, floor]))]))  # only 2n
    return realism_scores(judge_features(judge, _unit(fake_images[torch.from_numpy(fi)])), real[:len(ref)],
                          real[len(ref):], k=k)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (as load_split gives them) → float [0, 1]; float images as they are."""
    return x.float() / 255 if x.dtype == torch.uint8 else x
