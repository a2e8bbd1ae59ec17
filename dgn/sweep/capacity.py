"""G's capacity matched across code layers, so that a layer comparison is not a comparison of G sizes.

With the product's G (dgn.nets.generator, widths 128-64-32-16) a vector code
(fc6 … fc8) gets FC layers in front of the upconv stack and a spatial code
(conv3 … pool5) gets convolutions: at 64 px the fc6 G has 5.1 M parameters and
the conv3 G 1.6 M. :func:`matched_overrides` picks, for each layer, the one
width that sets the front end's size — the hidden FC width for a vector code,
``base_channels`` for a spatial one — so that G's parameter count is the
closest reachable to a common target. The step cost (FLOPs) is not matched:
spatial fronts run their convolutions at 8×8, so they cost more per image at
the same parameter count; the sweep's table states both.
"""

from __future__ import annotations

import torch

from dgn.errors import DGNError
from dgn.nets.generator import Generator, generator_config


def generator_params(code_shape: tuple[int, ...], image_size: int, preset: str = "small", **overrides) -> int:
    """Parameters of the G that ``GANTrainer`` would build for this code shape and these overrides."""
    with torch.device("meta"):  # shapes only: no memory, no init cost
        g = Generator(generator_config(preset, code_shape, image_size, **overrides))
    return sum(p.numel() for p in g.parameters())


def _knob(code_shape: tuple[int, ...]) -> str:
    return "fc" if len(code_shape) == 1 else "base_channels"


def matched_overrides(code_shape: tuple[int, ...], image_size: int, target: int, *, preset: str = "small",
                      base: dict | None = None, lo: int = 8, hi: int = 4096) -> tuple[dict, int]:
    """(generator overrides, parameter count): ``base`` with the front width whose G is closest to ``target``."""
    if target < 1:
        raise DGNError(f"target parameter count must be ≥ 1; got {target}")
    base = dict(base or {})
    knob = _knob(code_shape)

    def build(w: int) -> dict:
        return {**base, knob: (w,) if knob == "fc" else w}

    def count(w: int) -> int:
        return generator_params(code_shape, image_size, preset, **build(w))

    a, b = lo, hi  # the count grows with the width: bisect for the last width at or below the target
    if count(a) > target:
        return build(a), count(a)
    while b - a > 1:
        m = (a + b) // 2
        a, b = (m, b) if count(m) <= target else (a, m)
    best = min((a, b), key=lambda w: abs(count(w) - target))
    return build(best), count(best)
