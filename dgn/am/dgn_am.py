"""DGN-AM: activation maximisation in the code space of a generator.

    y* = argmax_y  a_h(T(G(y))) − λ‖y‖

Batched: one code per objective (a unit, or a weighted set of units), all
optimised together with one forward/backward pass per step. Nothing couples
the codes (G and T run in eval mode, gradients are normalised per code), so a
batch gives the same result as one objective at a time.

One step, as the reference code (Evolving-AI-Lab/synthesizing ``act_max.py``)
does it, for step ``i`` of ``steps``::

    step  = lr + (lr_end − lr) · i / steps               # linear schedule
    image = G(code); value = T(image)[unit]              # the image of this step
    code  = code + step · ∂value/∂code / mean|∂value/∂code|
    code  = min(max(code, 0), upper)                      # clip each code unit …
    code  = code · (1 − decay)                            # … then decay (the L2 term)

and the result is the **last** step's image (of the code that step started
from; the last update is never rendered), not the best step's: the reference
says "there is no correlation between activation and recognizability". A code
whose gradient is zero (or not finite) stops where it is, as the reference
breaks its loop. :data:`AM_PAPER` is the reference exactly
(``tests/am/test_reference_update.py`` checks it against a line-by-line
transcription); :class:`AMConfig`'s defaults are the product's, which differ
from it only in the step size and the start code (see the field comments
and docs/am.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from dgn.am.transforms import jitter as _jitter
from dgn.errors import DGNError
from dgn.nets.adapters import TargetNet
from dgn.nets.objectives import Objective, as_objective, check_objectives

INITS = ("zeros", "noise", "randn", "mean", "codes")


@dataclass
class AMConfig:
    """DGN-AM settings; the defaults are the product's (``AM_PAPER``: the reference's)."""

    steps: int = 200  # as the reference (1_activate_output.sh: iters=200)
    # step size at step 0. NOT the reference's 8: after gradient / mean|gradient| the step is in code units, so
    # it must scale with the code's range: this project's G codes have upper bounds far below CaffeNet's fc6
    # (≈ 12, act_range/3x/fc6.txt), where 8 applies. 0.5 chosen with bench/am_settings.py on the development
    # setup only (the embedded shapes kind, training seeds 0-2, the current G recipe; 10 fc8 units × 5 starts,
    # by that run's judge): lr 0.1 / 0.25 / 0.5 / 1 → recognisability 0.59 / 0.64 / 0.68 / 0.67, median
    # activation ratio 0.75 / 0.95 / 1.06 / 1.12 (mean of 3 seeds; the ratio rises on every seed from 0.25 to
    # 0.5), realism FD 60 / 53 / 62 / 65. docs/am.md. Never chosen on a reported (held-out) figure.
    lr: float = 0.5
    lr_end: float = 1e-10  # step size at the last step (linear in between), as the reference (end_lr=1e-10)
    decay: float = 0.01  # code *= (1 - decay) each step, after the clip, as the reference (L2=0.99); in [0, 1)
    normalise_grad: bool = True  # gradient / mean |gradient|, per code, as the reference
    clip: bool = True  # clip each code unit to [0, upper] after each step, as the reference (--bound file)
    # also clip the start code before the first step. The reference does not: it renders its start as drawn
    # (negative entries included) at step 0 and clips only after the first update; so does the default. Measured
    # on the default job's trained G (fc8, 10 units × 6 starts, by the judge): unclipped start recognisability
    # 0.85, median activation ratio 0.91; clipped 0.82, 0.92 (within noise). See docs/am.md.
    clip_start: bool = False
    # zeros | noise | randn | mean | codes (given). NOT the reference ("randn": N(0, 1), the same draw for every
    # unit at a seed): the product's "noise" is mean + noise_std·σ·ε per code unit, ε ~ N(0, 1) drawn per
    # objective: scaled to each code unit's own range (on the default G the median unit has σ ≈ 0.6 and bound
    # ≈ 2.1; N(0, 1) starts half the units below 0 and ~21% above their bound) and a different start for each
    # unit. Not measured against "randn".
    init: str = "noise"
    noise_std: float = 1.0  # init "noise" only: start = mean + noise_std · std · N(0, 1), per code unit
    seed: int = 0  # init "noise": per-objective streams; "randn": numpy's RandomState(seed), as the reference
    # return the best step (by the objective) instead of the last. NOT the reference, which returns the last step
    # on purpose ("no correlation between activation and recognizability"); keeping the best inflates the
    # activation ratio (default G, fc8, 10 units × 6 starts: median ratio 0.97 vs 0.92 for the last step, judge
    # recognisability 0.80 vs 0.82, both with the start clipped). Off by default.
    keep_best: bool = False
    jitter: int = 0  # random shift (pixels, same for every code, seeded) of G's image before the target each step; 0 = the reference
    channels_last: bool = True  # NHWC convs: ~1.8x faster batched AM on CPU (bench/am_throughput.py); same values

    def to_dict(self) -> dict:
        return asdict(self)


# act_max.py as run by the reference's scripts (1_activate_output.sh, 2_activate_hidden.sh): 200 iterations,
# --start_lr 8.0 --end_lr 1e-10, --L2 0.99, --bound act_range/3x/fc6.txt (clip to [0, bound]; the bound is
# code_stats["upper"]), --seed 0 → np.random.normal(0, 1, shape), no jitter, the last image returned.
# The project's --preset paper applies it over AMConfig().
AM_PAPER = dict(  # noqa: C408
    steps=200, lr=8.0, lr_end=1e-10, decay=0.01, normalise_grad=True, clip=True, clip_start=False, init="randn", seed=0,
    keep_best=False, jitter=0)


@dataclass
class AMResult:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]: G(codes) per objective, the last step's (the best's with keep_best)
    codes: torch.Tensor  # (B, *code_shape): the code of that step (the last update is never rendered)
    activations: torch.Tensor  # (B,) reported value (post-ReLU where Caffe's blob is) of that step, unjittered
    objective: torch.Tensor  # (B,) optimised value (pre-ReLU; what act_max.py prints) of that step
    trace: torch.Tensor  # (B, steps) reported value at every step
    objectives: list[Objective] = field(default_factory=list)


def _init_codes(cfg: AMConfig, n: int, code_shape, stats: dict, codes, device, dtype) -> torch.Tensor:
    shape = (n, *code_shape)
    if cfg.init == "zeros":
        return torch.zeros(shape, device=device, dtype=dtype)
    if cfg.init == "mean":
        return stats["mean"].to(device, dtype).expand(shape).clone()
    if cfg.init == "noise":
        # per objective its own stream, so batching does not change a result
        out = torch.empty(shape, dtype=dtype)
        for k in range(n):
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + k)
            eps = torch.randn(code_shape, generator=g, dtype=dtype)
            out[k] = stats["mean"].to(dtype) + cfg.noise_std * stats["std"].to(dtype) * eps
        return out.to(device)
    if cfg.init == "randn":
        # act_max.py: np.random.seed(seed); start_code = np.random.normal(0, 1, shape), shape (1, *code_shape);
        # every objective gets that same draw, as the reference run once per unit with the same --seed
        draw = np.random.RandomState(cfg.seed).normal(0, 1, (1, *code_shape))
        return torch.from_numpy(draw).to(device, dtype).expand(shape).clone()
    if cfg.init == "codes":
        if codes is None or tuple(codes.shape) != shape:
            got = None if codes is None else tuple(codes.shape)
            raise DGNError(f"init='codes' needs start codes of shape {shape}; got {got}")
        return codes.to(device, dtype).clone()
    raise DGNError(f"unknown AM init {cfg.init!r}; valid: {', '.join(INITS)}")


def dgn_am(
    generator: nn.Module,
    target: TargetNet,
    objectives,
    *,
    code_stats: dict,
    config: AMConfig | None = None,
    codes: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> AMResult:
    """Optimise one code per objective; returns the last step's image, code and activation of each.

    ``code_stats``: {"mean", "std", "upper"} tensors of G's code shape, from
    real images (see :func:`dgn.train.codestats.code_stats`).
    """
    cfg = config or AMConfig()
    objectives = [as_objective(o) for o in objectives]
    if not objectives:
        raise DGNError("no objectives given: name at least one unit, e.g. fc8:0")
    was_training = generator.training
    flags = [p.requires_grad for p in generator.parameters()]
    generator.eval()
    for p in generator.parameters():
        p.requires_grad_(False)
    if cfg.channels_last:  # same values, faster convolutions; the layout change is harmless to callers
        generator.to(memory_format=torch.channels_last)
        target.model.to(memory_format=torch.channels_last)
    try:
        return _optimise(generator, target, objectives, code_stats, cfg, codes, device)
    finally:
        generator.train(was_training)
        for p, f in zip(generator.parameters(), flags):
            p.requires_grad_(f)


def _clip(code: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    # act_max.py: np.maximum(code, lower_bound) with lower_bound 0 ("due to ReLU"), then np.minimum(code, upper_bound)
    return torch.minimum(code.clamp_min(0), upper)


def _optimise(generator, target, objectives, code_stats, cfg, codes, device) -> AMResult:
    if cfg.steps < 0 or not 0 <= cfg.decay < 1:
        raise DGNError(f"AM needs steps ≥ 0 and decay in [0, 1); got steps={cfg.steps}, decay={cfg.decay}")
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    dtype = next(generator.parameters()).dtype
    code_shape = tuple(generator.config.code_shape)
    image_size = generator.config.image_size
    layers = sorted({l for o in objectives for l in o.layers})
    check_objectives(objectives, target.layer_shapes(layers, image_size, device, dtype))

    upper = code_stats["upper"].to(device, dtype)
    code = _init_codes(cfg, len(objectives), code_shape, code_stats, codes, device, dtype)
    if cfg.clip and cfg.clip_start:
        code = _clip(code, upper)
    n = len(objectives)
    trace = torch.zeros(n, cfg.steps, dtype=dtype)
    view = (-1,) + (1,) * len(code_shape)
    shifts = torch.Generator().manual_seed(cfg.seed * 7919 + 17)  # one stream for the batch: batching changes nothing
    moving = torch.ones(n, dtype=torch.bool, device=device)
    best_obj = torch.full((n,), -float("inf"), device=device, dtype=dtype)
    best_code = code.clone()

    def render(c):
        with torch.no_grad():
            x = generator(c)
            return (x, *target.values(x, objectives))

    if cfg.steps == 0:
        images, obj, rep = render(code)
    for i in range(cfg.steps):
        step = cfg.lr + (cfg.lr_end - cfg.lr) * i / cfg.steps
        if i == cfg.steps - 1:
            # the last step's image is the result; its update would never be rendered, so it is not computed,
            # and the result is scored on G's own image (no jitter)
            images, obj, rep = render(code)
            trace[:, i] = rep.cpu()
            break
        with torch.enable_grad():
            code.requires_grad_(True)
            images = generator(code)  # (B, 3, S, S)
            obj, rep = target.values(_jitter(images, cfg.jitter, shifts), objectives)
            (grad,) = torch.autograd.grad(obj.sum(), code)
        with torch.no_grad():
            code, obj, rep = code.detach(), obj.detach(), rep.detach()
            trace[:, i] = rep.cpu()
            if cfg.keep_best:
                better = obj > best_obj
                best_obj = torch.where(better, obj, best_obj)
                best_code[better] = code[better]
            flat = grad.flatten(1)
            # act_max.py stops when the gradient reaching the code is 0 (a NaN one reaches it as 0): such a
            # code stays where it is, and its result is this step's image
            moving &= torch.isfinite(flat).all(1) & (flat != 0).any(1)
            if cfg.normalise_grad:
                grad = grad / flat.abs().mean(1).clamp_min(1e-12).view(view)
            new = code + step * grad
            if cfg.clip:
                new = _clip(new, upper)
            new = new * (1 - cfg.decay)  # after the clip, as act_max.py
            code = torch.where(moving.view(view), new, code)

    if cfg.keep_best:
        better = obj > best_obj  # the last step's image competes too
        best_code[better] = code[better]
        code = best_code
        images, obj, rep = render(code)
    return AMResult(images=images.clamp(0, 1), codes=code.detach(), activations=rep, objective=obj, trace=trace,
                    objectives=objectives)
