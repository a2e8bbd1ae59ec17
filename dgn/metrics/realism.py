"""Realism in a feature space: Fréchet distance, k-NN precision/recall, and the real-vs-real floor.

Everything here works on feature arrays (N, D) (the judge's features, see :mod:`dgn.metrics.judge`), so it is
pure numpy/torch and needs no network. See docs/metrics.md for why the size N matters:

- the Fréchet distance (FD) is biased upwards at small N (the covariance of N < D vectors is rank-deficient,
  and both the mean and the covariance terms carry an O(1/N) sampling bias), so an FD is only meaningful next
  to the real-vs-real floor *at the same N*;
- that floor must compare two *disjoint* real sets: a set compared with a superset of itself reads far too low.

:func:`realism_from_features` does both right: the generated set against a real set of the same size n, and
the floor from a second real set of size n disjoint from the first.
"""

from __future__ import annotations

import numpy as np
import torch

from dgn.errors import DGNError

REPORT_KEYS = ("n", "fd", "precision", "recall", "floor_fd", "floor_precision", "floor_recall")
RECOMMENDED_N = 200  # headline realism: ≥ 200 generated images, the floor beside it (docs/metrics.md)


def _as2d(x, what: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, np.float64)
    if a.ndim != 2:
        raise DGNError(f"{what} must be a 2-D array of feature vectors (N, D); got shape {a.shape}.")
    return a


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D).

    ``|μa − μb|² + tr Σa + tr Σb − 2 tr (Σa^½ Σb Σa^½)^½``; the last trace is computed from the eigenvalues of
    the symmetric PSD matrix Σa^½ Σb Σa^½ (= tr sqrtm(Σa Σb)), which stays exact when N < D makes the
    covariances singular, where ``scipy.linalg.sqrtm(Σa Σb)`` goes complex or non-finite.
    Biased by N: compare only with a floor at the same N (:func:`realism_from_features`).
    """
    a, b = _as2d(a, "a"), _as2d(b, "b")
    if a.shape[1] != b.shape[1]:
        raise DGNError(f"feature sets differ in dimension: {a.shape[1]} vs {b.shape[1]}.")
    if len(a) < 2 or len(b) < 2:
        raise DGNError(f"the Fréchet distance needs at least 2 vectors per set; got {len(a)} and {len(b)}.")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    r1 = _psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def knn_radii(feats, k: int = 3, *, chunk: int = 1024) -> torch.Tensor:
    """(N,) distance of each vector to its k-th nearest neighbour in the same set (itself excluded)."""
    f = torch.from_numpy(_as2d(feats, "feats"))
    if len(f) <= k:
        raise DGNError(f"k-NN radii need more than k={k} samples; got {len(f)}.")
    return torch.cat([torch.cdist(f[i:i + chunk], f).kthvalue(k + 1, dim=1).values  # k+1: itself is at 0
                      for i in range(0, len(f), chunk)])


def _inside(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    """(Q,) bool: each query vector lies in at least one ball (ref_j, radii_j)."""
    return torch.cat([(torch.cdist(query[i:i + chunk], ref) <= radii).any(1) for i in range(0, len(query), chunk)])


def precision_recall(fake_feats, real_feats, k: int = 3, *, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake_feats`` against ``real_feats``.

    Each set's manifold is the union of balls around its vectors, each with radius the distance to its k-th
    nearest neighbour in that set. precision = share of fake vectors inside the real manifold (are the images
    realistic?); recall = share of real vectors inside the fake manifold (do they cover the real variety?).
    Both in [0, 1]; both sets need more than k vectors. Like the FD they depend on N (each ball shrinks as its
    set grows), so compare with a real-vs-real floor at the same N.
    """
    fake, real = _as2d(fake_feats, "fake_feats"), _as2d(real_feats, "real_feats")
    if fake.shape[1] != real.shape[1]:
        raise DGNError(f"feature sets differ in dimension: {fake.shape[1]} vs {real.shape[1]}.")
    for what, x in (("real", real), ("fake", fake)):
        if len(x) <= k:
            raise DGNError(f"precision/recall needs more than k={k} {what} samples; got {len(x)}.")
    f, r = torch.from_numpy(fake), torch.from_numpy(real)
    precision = _inside(f, r, knn_radii(real, k, chunk=chunk), chunk).double().mean().item()
    recall = _inside(r, f, knn_radii(fake, k, chunk=chunk), chunk).double().mean().item()
    return precision, recall


def manifold_precision(fake, real, *, k: int = 3, chunk: int = 1024) -> float:
    """Share of ``fake`` feature vectors inside the real manifold: the precision of :func:`precision_recall`.

    Unlike the Fréchet distance it cannot be won by images that sit near the mean of the real features (grey,
    empty images): each image must lie near some real image. 1 = every image is realistic. Needs only the real
    set to have more than k vectors (any number of fake ones).
    """
    real = _as2d(real, "real")
    if len(real) <= k:
        raise DGNError(f"manifold precision needs more than k={k} real samples; got {len(real)}.")
    f, r = torch.from_numpy(_as2d(fake, "fake")), torch.from_numpy(real)
    return _inside(f, r, knn_radii(real, k, chunk=chunk), chunk).double().mean().item()


def disjoint_subsets(pool_size: int, n: int, *, count: int = 2, seed: int = 0) -> list[np.ndarray]:
    """``count`` disjoint random index sets of size ``n`` into a pool of ``pool_size`` items (sorted each)."""
    if n < 1:
        raise DGNError(f"subset size n={n} must be >= 1.")
    if count * n > pool_size:
        raise DGNError(f"the real pool has {pool_size} images, too few for {count} disjoint sets of n={n}; "
                       f"use at least {count * n} real images or a smaller n.")
    perm = np.random.default_rng(seed).permutation(pool_size)
    return [np.sort(perm[i * n:(i + 1) * n]) for i in range(count)]


def realism_plan(n_fake: int, pool_size: int, *, n: int | None = None, seed: int = 0,
                 k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which items a realism report at size n uses: (fake indices, reference real indices, floor real indices).

    n defaults to ``n_fake``; fewer than ``n_fake`` takes a seeded random n of them. The reference and floor sets
    are disjoint draws of n from the real pool (:func:`disjoint_subsets`). One DGNError sentence when n is
    larger than the generated set, too small for k-NN, or the pool is smaller than 2n.
    """
    n = n_fake if n is None else int(n)
    if n > n_fake:
        raise DGNError(f"n={n} is more than the {n_fake} generated images given; use n <= {n_fake}.")
    if n <= k:
        raise DGNError(f"realism needs n > k={k} images for k-NN precision/recall; got n={n}.")
    if 2 * n > pool_size:
        raise DGNError(f"the real pool has {pool_size} images, too few for two disjoint real sets of n={n} "
                       f"(the reference and the floor); use at least {2 * n} real images or a smaller n.")
    ref, floor = disjoint_subsets(pool_size, n, count=2, seed=seed)
    fake = np.arange(n) if n == n_fake else np.sort(np.random.default_rng(seed + 1).permutation(n_fake)[:n])
    return fake, ref, floor


def realism_scores(fake, ref, floor, *, k: int = 3) -> dict:
    """The report's numbers from three feature sets of equal size n: fake vs ref, and the floor: floor vs ref."""
    fake, ref, floor = _as2d(fake, "fake"), _as2d(ref, "ref"), _as2d(floor, "floor")
    p, r = precision_recall(fake, ref, k)
    fp, fr = precision_recall(floor, ref, k)
    return {"n": len(fake), "fd": frechet_distance(fake, ref), "precision": p, "recall": r,
            "floor_fd": frechet_distance(floor, ref), "floor_precision": fp, "floor_recall": fr}


def realism_from_features(fake_feats, real_pool_feats, *, n: int | None = None, seed: int = 0,
                          k: int = 3) -> dict:
    """Realism of generated features at size n, with the real-vs-real floor at the same n.

    - ``n`` generated vectors (all of ``fake_feats`` by default; a seeded random n of them when fewer are asked);
    - a reference real set R of n vectors and a floor set F of n vectors, disjoint, drawn from ``real_pool_feats``
      (:func:`realism_plan`, same ``seed``);
    - ``fd``/``precision``/``recall``: generated vs R; ``floor_*``: F vs R — what a generator whose images are
      indistinguishable from real ones would score at this n. Read ``fd`` only against ``floor_fd``.

    Returns the keys of ``REPORT_KEYS``. Raises DGNError when the pool has fewer than 2n vectors or n ≤ k.
    """
    fake, pool = _as2d(fake_feats, "fake_feats"), _as2d(real_pool_feats, "real_pool_feats")
    fi, ref, floor = realism_plan(len(fake), len(pool), n=n, seed=seed, k=k)
    return realism_scores(fake[fi], pool[ref], pool[floor], k=k)


def fd_floor_table(real_pool_feats, ns, *, repeats: int = 5, seed: int = 0, k: int = 3,
                   fake_pool_feats=None) -> list[dict]:
    """The real-vs-real floor (and, with ``fake_pool_feats``, a fixed generated distribution) at each N in ``ns``.

    For each N and each of ``repeats`` seeds: :func:`realism_from_features` on a fresh seeded draw (the fake
    set: N random vectors of ``fake_pool_feats``; without it, only the floor is measured). Returns one row per N:
    ``n``, ``repeats``, and mean and std (over repeats) of ``floor_fd``, ``floor_precision``, ``floor_recall``
    (and ``fd``, ``precision``, ``recall`` with a fake pool). Shows how FD and precision/recall move with N
    for distributions that do not change (docs/metrics.md).
    """
    pool = _as2d(real_pool_feats, "real_pool_feats")
    fake_pool = None if fake_pool_feats is None else _as2d(fake_pool_feats, "fake_pool_feats")
    rows = []
    for n in ns:
        runs = []
        for s in range(repeats):
            sd = seed + 1000 * s
            if fake_pool is None:  # the floor alone
                ref, floor = disjoint_subsets(len(pool), n, seed=sd)
                fp, fr = precision_recall(pool[floor], pool[ref], k)
                runs.append({"floor_fd": frechet_distance(pool[floor], pool[ref]), "floor_precision": fp,
                             "floor_recall": fr})
            else:
                if n > len(fake_pool):
                    raise DGNError(f"N={n} is more than the {len(fake_pool)} vectors of the fake pool.")
                fake = fake_pool[np.random.default_rng(sd + 7).permutation(len(fake_pool))[:n]]
                runs.append(realism_from_features(fake, pool, n=n, seed=sd, k=k))
        row = {"n": int(n), "repeats": repeats}
        for key in runs[0]:
            if key == "n":
                continue
            v = np.array([r[key] for r in runs], np.float64)
            row[f"{key}_mean"] = float(v.mean())
            row[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        rows.append(row)
    return rows
