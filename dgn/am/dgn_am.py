"""DGN-AM: activation maximisation in the code space of a generator.

    y* = argmax_y  a_h(T(G(y))) − λ‖y‖

Batched: one code per objective (a unit, or a weighted set of units), all
optimised together with one forward/backward pass per step. Nothing couples
the codes (G and T run in eval mode, gradients are normalised per code), so a
batch gives the same result as one objective at a time.

Reference settings (the defaults of :class:`AMConfig`): 200 steps; gradient
divided by its mean absolute value; step size falling linearly from 8 to ~0;
code multiplied by 0.99 each step (the L2 term); each code unit clipped to
[0, mean + 3σ of its activation over real images]; the best code seen (by the
objective) is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

from dgn.am.objectives import Objective, as_objective, check_objectives, evaluate
from dgn.am.transforms import jitter as _jitter
from dgn.errors import DGNError
from dgn.nets.caffenet import RELU_LAYERS, CaffeNet
from dgn.nets.target import capture

INITS = ("zeros", "noise", "mean", "codes")


@dataclass
class AMConfig:
    steps: int = 200
    lr: float = 8.0  # step size at step 0
    lr_end: float = 1e-10  # step size at the last step (linear in between)
    decay: float = 0.01  # code *= (1 - decay) each step
    normalise_grad: bool = True  # gradient / mean |gradient|, per code
    clip: bool = True  # clip each code unit to [0, upper bound]
    init: str = "zeros"  # zeros | noise | mean | codes (given)
    noise_std: float = 1.0  # noise init: |N(0, noise_std·σ)| + mean, per code unit... see _init_codes
    seed: int = 0
    keep_best: bool = True  # return the best step's image, as the reference code does
    jitter: int = 0  # random shift (pixels, same for every code, seeded) of G's image before the target each step; 0 = the paper
    # a vector layer (e.g. "fc8") whose units are optimised as log-probabilities (log-softmax over the layer) rather
    # than raw values: the image must raise its unit *relative to the others*; "" = the paper (pre-softmax logits).
    # Reported activations stay the raw values either way.
    log_softmax: str = ""
    channels_last: bool = True  # NHWC convs: ~1.8x faster batched AM on CPU (bench/am_throughput.py)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AMResult:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1], the best step's image per objective
    codes: torch.Tensor  # (B, *code_shape)
    activations: torch.Tensor  # (B,) reported value (post-ReLU where Caffe's blob is) of the best step
    objective: torch.Tensor  # (B,) optimised value (pre-ReLU) of the best step
    trace: torch.Tensor  # (B, steps) reported value at every step
    objectives: list[Objective] = field(default_factory=list)


class TargetNet:
    """A network whose units AM maximises, with how to report them.

    ``relu_layers``: modules whose output Caffe reports after a ReLU (AM
    optimises the pre-ReLU value and reports the post-ReLU one).
    ``input_size``: images are resized to it (bilinear) before the network.
    """

    def __init__(self, model: nn.Module, *, relu_layers=frozenset(), input_size: int | None = None, name: str = "target"):
        self.model = model.eval()
        self.relu_layers = frozenset(relu_layers)
        self.input_size = input_size
        self.name = name
        for p in self.model.parameters():
            p.requires_grad_(False)

    @classmethod
    def caffenet(cls, net: CaffeNet, name: str = "caffenet") -> "TargetNet":
        return cls(net, relu_layers=RELU_LAYERS, input_size=net.config.image_size, name=name)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_size and images.shape[-1] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return images

    def activations(self, images: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """Raw module outputs (pre-ReLU for CaffeNet convs/fc6/fc7) for ``layers``."""
        return capture(self.model, self.prepare(images), list(layers))

    def report(self, layer: str, values: torch.Tensor) -> torch.Tensor:
        return F.relu(values) if layer in self.relu_layers else values

    def layer_shapes(self, layers, image_size: int, device=None) -> dict[str, tuple]:
        with torch.no_grad():
            acts = self.activations(torch.zeros(1, 3, image_size, image_size, device=device), layers)
        return {k: tuple(v.shape[1:]) for k, v in acts.items()}

    def values(self, images: torch.Tensor, objectives: list[Objective], *,
               log_softmax: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """(optimised, reported) objective values, each (B,); ``log_softmax``: optimise that layer's log-probabilities."""
        layers = {l for o in objectives for l in o.layers}
        acts = self.activations(images, layers)

        def optimised(layer, a):
            if layer != log_softmax:
                return a
            if a.dim() != 2:
                raise DGNError(f"log_softmax layer {layer!r} has {tuple(a.shape[1:])}-shaped outputs; "
                               "use a vector layer such as fc8")
            return F.log_softmax(a, 1)

        return evaluate(objectives, acts, transform=optimised), evaluate(objectives, acts, transform=self.report)


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
    """Optimise one code per objective; returns the best image, code and activation of each.

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


def _optimise(generator, target, objectives, code_stats, cfg, codes, device) -> AMResult:
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    dtype = next(generator.parameters()).dtype
    code_shape = tuple(generator.config.code_shape)
    image_size = generator.config.image_size
    layers = sorted({l for o in objectives for l in o.layers})
    check_objectives(objectives, target.layer_shapes(layers, image_size, device))

    upper = code_stats["upper"].to(device, dtype)
    code = _init_codes(cfg, len(objectives), code_shape, code_stats, codes, device, dtype)
    if cfg.clip:
        code = torch.minimum(code.clamp_min(0), upper)
    n = len(objectives)
    best_obj = torch.full((n,), -float("inf"), device=device, dtype=dtype)
    best_act = torch.zeros(n, device=device, dtype=dtype)
    best_code = code.clone()
    trace = torch.zeros(n, cfg.steps, dtype=dtype)
    view = (-1,) + (1,) * len(code_shape)
    shifts = torch.Generator().manual_seed(cfg.seed * 7919 + 17)  # one stream for the batch: batching changes nothing

    for i in range(cfg.steps):
        step = cfg.lr + (cfg.lr_end - cfg.lr) * i / cfg.steps
        code.requires_grad_(True)
        images = generator(code)  # (B, 3, S, S)
        obj, rep = target.values(_jitter(images, cfg.jitter, shifts), objectives, log_softmax=cfg.log_softmax)
        (grad,) = torch.autograd.grad(obj.sum(), code)
        with torch.no_grad():
            trace[:, i] = rep.detach().cpu()
            better = obj.detach() > best_obj
            best_obj = torch.where(better, obj.detach(), best_obj)
            best_act = torch.where(better, rep.detach(), best_act)
            best_code[better] = code.detach()[better]
            if cfg.normalise_grad:
                grad = grad / grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(view)
            code = code.detach() + step * grad
            code = code * (1 - cfg.decay)
            if cfg.clip:
                code = torch.minimum(code.clamp_min(0), upper)

    with torch.no_grad():  # the last code, too, may be the best
        images = generator(code)
        obj, rep = target.values(images, objectives, log_softmax=cfg.log_softmax)
        better = obj > best_obj
        best_obj = torch.where(better, obj, best_obj)
        best_act = torch.where(better, rep, best_act)
        best_code[better] = code[better]
        final = best_code if cfg.keep_best else code
        if not cfg.keep_best:
            best_obj, best_act = obj, rep
        images = generator(final).clamp(0, 1)
    return AMResult(images=images, codes=final, activations=best_act, objective=best_obj, trace=trace, objectives=objectives)
