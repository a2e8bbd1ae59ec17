"""Recognisability and realism, both measured by the independent judge."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
from torch import nn
import torch.nn.functional as F


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


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-singular covariances: handled below
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():  # regularise, as the FID reference code does
            eps = np.eye(len(s1)) * 1e-6
            covmean = scipy.linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def realism(judge: nn.Module, images: torch.Tensor, real: torch.Tensor) -> float:
    """Fréchet distance in judge features between ``images`` and ``real`` images (lower: more natural)."""
    return frechet_distance(judge_features(judge, images), judge_features(judge, real))
