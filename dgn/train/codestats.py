"""Per-unit statistics of E's code over real images: the AM clipping bounds.

DGN-AM clips each code unit to [0, mean + 3σ] of that unit's activation over
real images, so the code stays in the region G was trained on.
"""

from __future__ import annotations

import torch

from dgn.nets.caffenet import CaffeNet


@torch.no_grad()
def code_stats(encoder: CaffeNet, layer: str, batches, *, sigmas: float = 3.0) -> dict[str, torch.Tensor]:
    """{"mean", "std", "upper", "n"} of ``encoder.blob(x, layer)`` over ``batches`` of images in [0, 1]."""
    was = encoder.training
    encoder.eval()
    n, s1, s2 = 0, None, None
    try:
        for x in batches:
            y = encoder.blob(x, layer).double()  # (B, *code_shape)
            s1 = y.sum(0) if s1 is None else s1 + y.sum(0)
            s2 = (y * y).sum(0) if s2 is None else s2 + (y * y).sum(0)
            n += y.shape[0]
    finally:
        encoder.train(was)
    mean = s1 / n
    std = (s2 / n - mean * mean).clamp_min(0).sqrt()
    return {"mean": mean.float(), "std": std.float(), "upper": (mean + sigmas * std).float(), "n": torch.tensor(n)}
