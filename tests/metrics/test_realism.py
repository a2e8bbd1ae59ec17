"""Realism in feature space: precision/recall, the FD's N-dependence, and the disjoint real-vs-real floor."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from dgn.errors import DGNError
from dgn.metrics import (
    disjoint_subsets,
    fd_floor_table,
    frechet_distance,
    manifold_precision,
    precision_recall,
    realism_from_features,
    realism_report,
)
from dgn.metrics.realism import REPORT_KEYS, realism_plan


def _gauss(n, d=4, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def _two_modes(n, d=4, seed=0):
    x = _gauss(n, d, seed=seed)
    x[: n // 2, 0] += 10  # mode A at +10 on axis 0, mode B at 0
    return x


# precision / recall

def test_same_distribution_gives_precision_and_recall_near_one():
    p, r = precision_recall(_gauss(1000, seed=1), _gauss(1000, seed=2))
    assert p > 0.85 and r > 0.85


def test_disjoint_distributions_give_zero():
    assert precision_recall(_gauss(500, seed=1, shift=10.0), _gauss(500, seed=2)) == (0.0, 0.0)


def test_one_mode_of_two_is_precise_but_recalls_half():
    real = _two_modes(1000, seed=2)
    one_mode = _gauss(500, seed=1)
    one_mode[:, 0] += 10  # only mode A
    p, r = precision_recall(one_mode, real)
    assert p > 0.85
    assert 0.4 < r < 0.55  # mode A of the real set only (≈ 0.5 × its in-manifold share)
    # the other way round: a fake set with both modes against a one-mode real set → recall high, precision ≈ 0.5
    p2, r2 = precision_recall(real, one_mode)
    assert 0.4 < p2 < 0.55 and r2 > 0.85
    # both modes, properly: both near one
    assert min(precision_recall(_two_modes(1000, seed=3), real)) > 0.85


def test_manifold_precision_is_the_precision_of_precision_recall():
    fake, real = _two_modes(300, seed=5), _gauss(400, seed=6)
    assert manifold_precision(fake, real) == precision_recall(fake, real)[0]
    assert manifold_precision(fake[:2], real) in (0.0, 0.5, 1.0)  # any number of fake vectors
    with pytest.raises(DGNError, match="more than k=3 fake"):
        precision_recall(fake[:3], real)


# Fréchet distance

def test_frechet_distance_is_finite_and_matches_sqrtm_when_n_is_below_d():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 128)), rng.normal(size=(20, 128)) * 1.2 + 0.1  # covariances of rank 19
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_of_one_distribution_falls_with_n():
    """The bias the floor is for: two samples of the SAME law read farther apart the smaller they are."""
    pool = _gauss(2000, d=32, seed=0)
    rows = fd_floor_table(pool, [20, 100, 1000], repeats=3)
    fds = [r["floor_fd_mean"] for r in rows]
    assert fds == sorted(fds, reverse=True)
    assert fds[0] > 10 * fds[-1]
    assert {"n", "repeats", "floor_fd_std", "floor_precision_mean", "floor_recall_mean"} <= set(rows[0])


# the report and its floor

def test_disjoint_subsets_are_disjoint_sized_and_seeded():
    a, b, c = disjoint_subsets(100, 30, count=3, seed=4)
    assert all(len(x) == 30 and len(set(x)) == 30 and x.min() >= 0 and x.max() < 100 for x in (a, b, c))
    assert not (set(a) & set(b) or set(a) & set(c) or set(b) & set(c))
    assert all((x == y).all() for x, y in zip((a, b, c), disjoint_subsets(100, 30, count=3, seed=4)))
    assert not (a == disjoint_subsets(100, 30, count=3, seed=5)[0]).all()


def test_report_floor_compares_two_disjoint_real_sets():
    pool, fake = _gauss(1000, d=8, seed=0), _gauss(300, d=8, seed=1)
    fi, ref, floor = realism_plan(len(fake), len(pool), n=200, seed=3)
    assert len(ref) == len(floor) == len(fi) == 200
    assert not set(ref) & set(floor)  # the floor never contains, nor is contained in, the reference
    rep = realism_from_features(fake, pool, n=200, seed=3)
    assert tuple(rep) == REPORT_KEYS and rep["n"] == 200
    assert rep["floor_fd"] == pytest.approx(frechet_distance(pool[floor], pool[ref]))
    assert rep["fd"] == pytest.approx(frechet_distance(fake[fi], pool[ref]))
    assert (rep["precision"], rep["recall"]) == precision_recall(fake[fi], pool[ref])
    assert (rep["floor_precision"], rep["floor_recall"]) == precision_recall(pool[floor], pool[ref])


def test_fake_from_the_real_law_scores_like_the_floor_and_the_superset_floor_reads_too_low():
    pool, fake = _gauss(2000, d=16, seed=0), _gauss(200, d=16, seed=1)
    rep = realism_from_features(fake, pool, seed=0)
    assert rep["fd"] == pytest.approx(rep["floor_fd"], rel=0.35)
    assert abs(rep["precision"] - rep["floor_precision"]) < 0.1 and abs(rep["recall"] - rep["floor_recall"]) < 0.1
    # the old row "200 real images vs a set that contains them" is far below the honest floor
    assert frechet_distance(pool[:200], pool[:1000]) < 0.7 * rep["floor_fd"]
    # a shifted generator sits well above it
    assert realism_from_features(fake + 1.0, pool, seed=0)["fd"] > 5 * rep["floor_fd"]


class _FlatJudge(nn.Module):
    """A judge whose features are the pixels; ``calls`` counts forward passes."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def embed(self, x):
        self.calls += 1
        return x.flatten(1)


def test_realism_report_matches_the_features_version_and_takes_uint8():
    torch.manual_seed(0)
    pool, fake = torch.rand(120, 3, 2, 2), torch.rand(60, 3, 2, 2)
    rep = realism_report(_FlatJudge(), fake, pool, n=50, seed=2)
    assert rep == pytest.approx(realism_from_features(fake.flatten(1).numpy(), pool.flatten(1).numpy(), n=50, seed=2))
    pool8, fake8 = (pool * 255).round().to(torch.uint8), (fake * 255).round().to(torch.uint8)
    assert realism_report(_FlatJudge(), fake8, pool8, n=50, seed=2) == pytest.approx(
        realism_report(_FlatJudge(), fake8.float() / 255, pool8.float() / 255, n=50, seed=2))


def test_too_small_a_pool_is_one_dgn_error_before_any_forward_pass():
    judge = _FlatJudge()
    with pytest.raises(DGNError, match=r"the real pool has 99 images, too few for two disjoint real sets of n=50"):
        realism_report(judge, torch.rand(50, 3, 2, 2), torch.rand(99, 3, 2, 2))
    assert judge.calls == 0
    with pytest.raises(DGNError, match="too few for two disjoint"):
        realism_from_features(_gauss(50), _gauss(99))
    with pytest.raises(DGNError, match="more than the 50 generated"):
        realism_from_features(_gauss(50), _gauss(1000), n=60)
    with pytest.raises(DGNError, match="n > k=3"):
        realism_from_features(_gauss(3), _gauss(1000))
