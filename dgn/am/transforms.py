"""Image transforms applied between G (or the pixel image) and the target during AM."""

from __future__ import annotations

import torch


def jitter(x: torch.Tensor, j: int, g: torch.Generator) -> torch.Tensor:
    """Roll the whole batch by one random (dy, dx) in [-j, j]² drawn from ``g``; ``j <= 0`` returns ``x``."""
    if j <= 0:
        return x
    dy, dx = (int(v) for v in torch.randint(-j, j + 1, (2,), generator=g))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))
