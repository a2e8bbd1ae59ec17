"""The rule that ranks sweep trials — fixed before any sweep runs (docs/sweep.md states it too).

    score = 0.4·R + 0.2·A + 0.2·N + 0.2·X            (0 … 1, higher is better)

R  recognisability: share of DGN-AM images of the fc8 units (from noise) that
   the independent judge assigns to the intended class — the paper's main
   criterion, hence the largest weight;
A  activation: min(median activation ratio, 2) / 2 — how strongly the images
   excite their unit relative to the best real image (beyond 2× counts no more;
   NaN, a unit silent on real images, counts 0);
N  naturalness: 1 / (1 + FD/100), FD the Fréchet distance of judge features of
   the AM images to real images (FD 0 → 1, FD 100 → 0.5);
X  reconstruction: 1 / (1 + MSE/0.05), MSE of G(E(x)) against x on val images
   in [0, 1] (MSE 0.05 → 0.5).

R and A ask "can G's code space be searched for a unit's preferred image" (the
conv codes' weakness in the paper), X asks "does the code keep enough to draw
the image" (the fc7/fc8 weakness), N guards against adversarial noise.
"""

from __future__ import annotations

import math

WEIGHTS = {"R": 0.4, "A": 0.2, "N": 0.2, "X": 0.2}
METRICS = ("am_recognisability", "am_median_activation_ratio", "am_realism_fd", "recon_image_mse")


def score_terms(m: dict) -> dict[str, float]:
    """The four terms in [0, 1] from a trial's metrics (keys in METRICS)."""
    ratio = m["am_median_activation_ratio"]
    fd = m["am_realism_fd"]
    mse = m["recon_image_mse"]
    return {
        "R": float(m["am_recognisability"]),
        "A": 0.0 if math.isnan(ratio) else min(max(ratio, 0.0), 2.0) / 2,
        "N": 0.0 if not math.isfinite(fd) else 1 / (1 + max(fd, 0.0) / 100),
        "X": 0.0 if not math.isfinite(mse) else 1 / (1 + mse / 0.05),
    }


def score(m: dict, without: tuple[str, ...] = ()) -> float:
    """0.4·R + 0.2·A + 0.2·N + 0.2·X (see the module docstring); higher is better. ``without``: drop those terms
    and renormalise the rest's weights to sum to 1 (``("X",)``: (0.4·R + 0.2·A + 0.2·N) / 0.8, the score that the
    reconstruction term — which favours low layers by construction — does not touch)."""
    t = score_terms(m)
    keep = [k for k in WEIGHTS if k not in without]
    return sum(WEIGHTS[k] * t[k] for k in keep) / sum(WEIGHTS[k] for k in keep)
