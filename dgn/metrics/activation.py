"""Activation ratio: a unit's activation on its preferred input / its best over real images."""

from __future__ import annotations

import torch

from dgn.nets.adapters import TargetNet
from dgn.nets.objectives import as_objective, evaluate


@torch.no_grad()
def best_real_activations(target: TargetNet, objectives, batches) -> torch.Tensor:
    """Highest reported value of each objective over real image ``batches``: (K,)."""
    objectives = [as_objective(o) for o in objectives]
    best = None
    for x in batches:
        x = x[0] if isinstance(x, (tuple, list)) else x
        acts = target.activations(x, {l for o in objectives for l in o.layers})
        # every objective on every image of the batch: (B, K) → best per objective
        vals = torch.stack([evaluate([o] * x.shape[0], acts, transform=target.report) for o in objectives], 1)
        v = vals.max(0).values  # (K,)
        best = v if best is None else torch.maximum(best, v)
    return best


def activation_ratio(preferred: torch.Tensor, best_real: torch.Tensor) -> torch.Tensor:
    """(K,) ratios; a unit that never fires on real images (best ≤ 0) gets NaN, not infinity."""
    best_real = best_real.to(preferred)
    return torch.where(best_real > 0, preferred / best_real.clamp_min(1e-12), torch.full_like(preferred, float("nan")))
