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


def manifold_precision(fake: np.ndarray, real: np.ndarray, *, k: int = 3, chunk: int = 1024) -> float:
    """Share of ``fake`` feature vectors inside the real manifold (Kynkäänniemi et al. 2019, "improved precision").

    The real manifold is the union of balls around each real vector with radius its distance to its k-th nearest
    real neighbour. Unlike the Fréchet distance it cannot be won by images that sit near the mean of the real
    features (grey, empty images): each image must lie near some real image. 1 = every image is realistic.
    """
    if len(real) <= k:
        raise ValueError(f"manifold precision needs more than k={k} real samples; got {len(real)}")
    r = torch.from_numpy(np.asarray(real, np.float64))
    f = torch.from_numpy(np.asarray(fake, np.float64))
    radii = torch.cat([torch.cdist(r[i:i + chunk], r).kthvalue(k + 1, dim=1).values  # k+1: itself is at 0
                       for i in range(0, len(r), chunk)])
    inside = torch.cat([(torch.cdist(f[i:i + chunk], r) <= radii).any(1) for i in range(0, len(f), chunk)])
    return inside.double().mean().item()
