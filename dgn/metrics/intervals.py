"""Uncertainty of a reported figure: a bootstrap interval over items, or a spread over seeds — and saying which.

Two different things are both written "±" far too often:

- **sampling uncertainty** of a figure computed over N items (per-image hits, per-unit ratios): how much it
  would move with other items of the same kind. :func:`bootstrap_interval` (percentile bootstrap, optionally
  resampling whole groups such as units when a unit's starts are correlated);
- **seed spread**: the standard deviation of a figure over independent runs (training or AM seeds), which is
  what "± is the spread across seeds" in this project's tables means (docs/metrics.md). :func:`seed_spread`.

:func:`fmt_interval` writes either one so that a reader can tell them apart and sees N:
``"0.82 [0.74, 0.89] (95% bootstrap CI, N=50)"`` or ``"0.82 ± 0.03 (seed spread, N=3)"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from dgn.errors import DGNError

_VECTORISED = {np.mean: np.mean, np.nanmean: np.nanmean, np.median: np.median, np.nanmedian: np.nanmedian}


def _as1d(values, what: str = "values") -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    a = np.asarray(values, np.float64).reshape(-1)
    if a.size == 0:
        raise DGNError(f"{what} is empty; a figure needs at least one item.")
    return a


def bootstrap_interval(values, *, stat: Callable = np.mean, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                       groups=None) -> tuple[float, float]:
    """Percentile bootstrap interval (lo, hi) of ``stat(values)`` at confidence ``level``.

    ``values``: one number per item (e.g. per-image hits 0/1 for recognisability). Items are resampled with
    replacement ``n_boot`` times (seeded); the interval is the ``(1-level)/2`` and ``(1+level)/2`` quantiles
    of the resampled statistic. ``groups`` (one label per item, e.g. the unit of each start): resample whole
    groups instead of items, for items that are not independent (the starts of one unit succeed or fail
    together); the interval is then wider and honest. It covers item sampling only, not seed-to-seed spread.
    """
    v = _as1d(values)
    if not 0 < level < 1:
        raise DGNError(f"level {level} must be in (0, 1), e.g. 0.95.")
    if n_boot < 1:
        raise DGNError(f"n_boot {n_boot} must be >= 1.")
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, len(v), size=(n_boot, len(v)))
        if stat in _VECTORISED:
            boots = _VECTORISED[stat](v[idx], axis=1)
        else:
            boots = np.array([float(stat(v[i])) for i in idx])
    else:
        g = np.asarray(groups.detach().cpu().numpy() if isinstance(groups, torch.Tensor) else groups).reshape(-1)
        if len(g) != len(v):
            raise DGNError(f"groups has {len(g)} labels for {len(v)} values; give one group label per value.")
        members = [np.flatnonzero(g == u) for u in np.unique(g)]
        picks = rng.integers(0, len(members), size=(n_boot, len(members)))
        if stat is np.mean:  # ratio of resampled sums to resampled counts: no concatenation
            sums = np.array([v[m].sum() for m in members])
            counts = np.array([len(m) for m in members], np.float64)
            boots = sums[picks].sum(1) / counts[picks].sum(1)
        else:
            boots = np.array([float(stat(v[np.concatenate([members[j] for j in p])])) for p in picks])
    lo, hi = np.nanquantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def seed_spread(values) -> tuple[float, float]:
    """(mean, sample standard deviation, ddof=1) of one figure over independent seeds; std is NaN for one seed."""
    v = _as1d(values)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def _num(x: float, digits: int, percent: bool) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x * 100:.{max(digits - 2, 0)}f}%" if percent else f"{x:.{digits}f}"


def fmt_interval(value: float, interval: tuple[float, float] | None = None, *, spread: float | None = None,
                 n: int | None = None, level: float = 0.95, what: str = "seed spread", digits: int = 2,
                 percent: bool = False) -> str:
    """A figure with its uncertainty, saying what kind it is and its N.

    - ``interval=(lo, hi)`` (from :func:`bootstrap_interval`): ``"0.82 [0.74, 0.89]"``, and with ``n``:
      ``"0.82 [0.74, 0.89] (95% bootstrap CI, N=50)"``;
    - ``spread=s`` (from :func:`seed_spread`): ``"0.82 ± 0.03 (seed spread, N=3)"`` (``what`` names the spread,
      e.g. ``"spread over starts"``); a NaN spread (one seed) is written ``"0.82 (seed spread n/a, N=1)"``;
    - neither: the value alone (with ``n``: ``"0.82 (N=50)"``).

    ``percent=True`` writes 0.82 as ``82%`` (``digits`` counts the fraction's digits, so 2 → ``82%``).
    """
    if interval is not None and spread is not None:
        raise DGNError("give either interval= (a bootstrap interval) or spread= (a seed spread), not both.")
    v = _num(value, digits, percent)
    if interval is not None:
        lo, hi = interval
        s = f"{v} [{_num(lo, digits, percent)}, {_num(hi, digits, percent)}]"
        return s if n is None else f"{s} ({level:.0%} bootstrap CI, N={n})"
    if spread is not None:
        tail = f"N={n}" if n is not None else ""
        if isinstance(spread, float) and math.isnan(spread):
            return f"{v} ({what} n/a{', ' + tail if tail else ''})"
        return f"{v} ± {_num(spread, digits, percent)} ({what}{', ' + tail if tail else ''})"
    return v if n is None else f"{v} (N={n})"
