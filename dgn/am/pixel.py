"""Pixel-space activation maximisation: the baselines DGN-AM is compared with.

Same objectives and target API as :func:`dgn.am.dgn_am`, batched over
objectives in the same way (one image per objective, one forward/backward per
step, nothing couples the images).

Methods:

- ``l2`` — Simonyan et al. 2013: gradient ascent on the image with L2 decay.
- ``tv`` — Mahendran & Vedaldi 2015: plus a total-variation penalty.
- ``jitter-blur`` — Yosinski et al. 2015: random jitter each step, Gaussian
  blur every few steps, L2 decay, and small-value (pixel-norm) clipping.
- ``fourier`` — Olah et al. 2017 (Lucid's default): a 1/f-scaled Fourier
  parameterisation with colour decorrelation, sigmoid to [0, 1], random
  jitter/scale each step, Adam.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from dgn.am.dgn_am import AMResult
from dgn.am.transforms import jitter as _jitter
from dgn.errors import DGNError
from dgn.nets.adapters import TargetNet
from dgn.nets.objectives import as_objective, check_objectives

METHODS = ("l2", "tv", "jitter-blur", "fourier")

# Lucid's colour correlation (ImageNet), the square root of the RGB covariance
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


@dataclass
class PixelAMConfig:
    method: str = "jitter-blur"
    steps: int = 200
    lr: float = 0.05  # fourier: Adam's learning rate
    step: float = 0.01  # l2, tv, jitter-blur: mean per-pixel step on the [0, 1] scale (normalised gradient)
    l2: float = 0.01  # decay of the centred image each step (l2, tv, jitter-blur)
    tv: float = 0.5  # weight of total variation relative to the objective gradient (tv)
    jitter: int = 2  # pixels (jitter-blur, fourier)
    blur_every: int = 4  # steps (jitter-blur)
    blur_sigma: float = 0.5
    clip_percentile: float = 0.1  # share of lowest-norm pixels set to grey (jitter-blur)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


# helpers


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per image (B,): mean squared difference of neighbouring pixels."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return dh + dw


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(2 * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device).pow(2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class _Fourier:
    """Lucid's fft image: spectrum scaled by 1/f, decorrelated colour, sigmoid."""

    def __init__(self, n: int, size: int, g: torch.Generator, device, dtype):
        fy = torch.fft.fftfreq(size).view(-1, 1)
        fx = torch.fft.rfftfreq(size).view(1, -1)
        freqs = (fx * fx + fy * fy).sqrt()
        self.scale = (1.0 / freqs.clamp_min(1.0 / size)).to(device, dtype)  # (S, S/2+1)
        self.size = size
        self.spec = (0.01 * torch.randn(n, 3, size, size // 2 + 1, 2, generator=g, dtype=dtype)).to(device)
        self.spec.requires_grad_(True)

    def image(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spec) * self.scale
        x = torch.fft.irfftn(spec, s=(self.size, self.size), norm="ortho")  # (B, 3, S, S), decorrelated space
        x = torch.einsum("ij,bjhw->bihw", _COLOR_SQRT.to(x), x) * 4
        return torch.sigmoid(x)


def pixel_am(target: TargetNet, objectives, *, image_size: int, config: PixelAMConfig | None = None,
             device: torch.device | str = "cpu") -> AMResult:
    """Optimise one image per objective directly in pixel space; returns the best step of each."""
    cfg = config or PixelAMConfig()
    if cfg.method not in METHODS:
        raise DGNError(f"unknown pixel AM method {cfg.method!r}; valid: {', '.join(METHODS)}")
    objectives = [as_objective(o) for o in objectives]
    if not objectives:
        raise DGNError("no objectives given: name at least one unit, e.g. fc8:0")
    device = torch.device(device)
    layers = sorted({l for o in objectives for l in o.layers})
    check_objectives(objectives, target.layer_shapes(layers, image_size, device))
    n = len(objectives)
    g = torch.Generator().manual_seed(cfg.seed)
    trace = torch.zeros(n, cfg.steps)
    best_obj = torch.full((n,), -float("inf"), device=device)
    best_act = torch.zeros(n, device=device)
    best_img = torch.zeros(n, 3, image_size, image_size, device=device)

    if cfg.method == "fourier":
        param = _Fourier(n, image_size, g, device, torch.float32)
        opt = torch.optim.Adam([param.spec], lr=cfg.lr)
        render = param.image
    else:  # centred image z = x − 0.5, starting from small noise
        z = (0.01 * torch.randn(n, 3, image_size, image_size, generator=g)).to(device)
        render = lambda: (z + 0.5).clamp(0, 1)  # noqa: E731

    for i in range(cfg.steps):
        if cfg.method == "fourier":
            x = render()
            xt = _jitter(x, cfg.jitter, g)
            scale = 1 + 0.05 * (float(torch.rand((), generator=g)) - 0.5)
            xt = F.interpolate(xt, scale_factor=scale, mode="bilinear", align_corners=False)
            obj, rep = target.values(xt, objectives)
            opt.zero_grad(set_to_none=True)
            (-obj.sum()).backward()
            opt.step()
            with torch.no_grad():
                obj, rep = target.values(x.detach(), objectives)  # scored without the transform
            x = x.detach()
        else:
            z.requires_grad_(True)
            x = (z + 0.5).clamp(0, 1)
            xt = _jitter(x, cfg.jitter, g) if cfg.method == "jitter-blur" else x
            obj, rep = target.values(xt, objectives)
            total = obj
            if cfg.method == "tv":
                total = obj - cfg.tv * total_variation(x) * x[0].numel()
            (grad,) = torch.autograd.grad(total.sum(), z)
            with torch.no_grad():
                x = x.detach()
                grad = grad / grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
                z = z.detach() + cfg.step * grad
                z = z * (1 - cfg.l2)
                if cfg.method == "jitter-blur":
                    if cfg.blur_every and (i + 1) % cfg.blur_every == 0:
                        z = gaussian_blur(z, cfg.blur_sigma)
                    if cfg.clip_percentile > 0:  # small-norm pixels back to grey
                        norm = z.norm(dim=1, keepdim=True)  # (B, 1, H, W)
                        cut = norm.flatten(1).quantile(cfg.clip_percentile, dim=1).view(-1, 1, 1, 1)
                        z = torch.where(norm < cut, torch.zeros_like(z), z)
                z = z.clamp(-0.5, 0.5)
        with torch.no_grad():
            trace[:, i] = rep.detach().cpu()
            better = obj.detach() > best_obj
            best_obj = torch.where(better, obj.detach(), best_obj)
            best_act = torch.where(better, rep.detach(), best_act)
            best_img[better] = x[better]
    return AMResult(images=best_img, codes=best_img.clone(), activations=best_act, objective=best_obj, trace=trace,
                    objectives=objectives)
