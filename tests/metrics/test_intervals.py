"""Bootstrap intervals over items, seed spreads, and how they are written."""

import numpy as np
import pytest
import torch

from dgn.errors import DGNError
from dgn.metrics import bootstrap_interval, fmt_interval, seed_spread


def _hits(n, p=0.8, seed=0):
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_interval_contains_the_mean_and_shrinks_with_more_items():
    small, large = _hits(50), _hits(2000)
    lo, hi = bootstrap_interval(small)
    assert lo <= small.mean() <= hi and lo < hi
    lo2, hi2 = bootstrap_interval(large)
    assert lo2 <= large.mean() <= hi2
    assert (hi2 - lo2) < (hi - lo) / 3  # ~ 1/sqrt(N): sqrt(40) ≈ 6.3


def test_interval_width_matches_the_binomial_standard_error():
    v = _hits(400, p=0.5, seed=1)
    lo, hi = bootstrap_interval(v, n_boot=4000)
    se = np.sqrt(v.mean() * (1 - v.mean()) / len(v))
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_intervals_cover_the_true_value_about_as_often_as_their_level():
    intervals = [bootstrap_interval(_hits(100, p=0.7, seed=s), seed=s) for s in range(200)]
    covered = [lo <= 0.7 <= hi for lo, hi in intervals]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_seeded_tensor_input_median_and_custom_stats():
    v = torch.tensor(_hits(80, seed=3))
    assert bootstrap_interval(v, seed=7) == bootstrap_interval(v.numpy(), seed=7)
    assert bootstrap_interval(v, seed=7) != bootstrap_interval(v, seed=8)
    x = np.random.default_rng(0).normal(size=300)
    lo, hi = bootstrap_interval(x, stat=np.median)
    assert lo <= np.median(x) <= hi
    lo, hi = bootstrap_interval(x, stat=lambda a: float(np.quantile(a, 0.9)), n_boot=200)
    assert lo <= np.quantile(x, 0.9) <= hi
    assert bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    with pytest.raises(DGNError, match="empty"):
        bootstrap_interval([])
    with pytest.raises(DGNError, match="level"):
        bootstrap_interval([1.0, 0.0], level=95)


def test_group_bootstrap_is_wider_when_a_units_starts_agree():
    units = np.repeat(np.arange(10), 5)  # 10 units × 5 starts, each unit all-hit or all-miss
    v = np.repeat(_hits(10, p=0.6, seed=2), 5)
    lo_i, hi_i = bootstrap_interval(v)
    lo_g, hi_g = bootstrap_interval(v, groups=units)
    assert lo_g <= v.mean() <= hi_g
    assert (hi_g - lo_g) > 1.5 * (hi_i - lo_i)  # 10 independent things, not 50
    # the vectorised mean path and the general path agree
    assert bootstrap_interval(v, groups=units, stat=lambda a: a.mean(), seed=1) == pytest.approx(
        bootstrap_interval(v, groups=units, seed=1))
    with pytest.raises(DGNError, match="one group label per value"):
        bootstrap_interval(v, groups=units[:-1])


def test_seed_spread():
    m, s = seed_spread([0.8, 0.9, 0.85])
    assert m == pytest.approx(0.85) and s == pytest.approx(0.05)
    m, s = seed_spread([0.8])
    assert m == 0.8 and np.isnan(s)


def test_fmt_interval_says_what_kind_and_n():
    assert fmt_interval(0.8234, (0.741, 0.8912)) == "0.82 [0.74, 0.89]"
    assert fmt_interval(0.8234, (0.741, 0.8912), n=50) == "0.82 [0.74, 0.89] (95% bootstrap CI, N=50)"
    assert fmt_interval(0.82, spread=0.031, n=3) == "0.82 ± 0.03 (seed spread, N=3)"
    assert fmt_interval(0.82, spread=0.07, n=5, what="spread over starts") == "0.82 ± 0.07 (spread over starts, N=5)"
    assert fmt_interval(0.82, spread=float("nan"), n=1) == "0.82 (seed spread n/a, N=1)"
    assert fmt_interval(0.82, (0.74, 0.89), percent=True) == "82% [74%, 89%]"
    assert fmt_interval(168.04, digits=1, n=100) == "168.0 (N=100)"
    with pytest.raises(DGNError, match="not both"):
        fmt_interval(0.8, (0.7, 0.9), spread=0.1)
