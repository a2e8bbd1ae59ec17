"""Targets: any ``nn.Module`` whose units we visualise, addressed by module name.

A unit is ``layer:channel`` for a vector layer or ``layer:channel@y,x`` for a
conv layer (the centre position when ``@y,x`` is left out). Forward hooks are
registered only on the modules asked for and always removed in ``finally``;
the forward pass stops as soon as the last of them has fired.

For the CaffeNet family the module called ``conv5`` is the convolution (pre-
ReLU); :func:`capture` returns module outputs as they are, and callers apply
the ReLU when they report Caffe's post-ReLU blob.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from dgn.errors import DGNError

_UNIT = re.compile(r"^(?P<layer>[\w.]+):(?P<channel>\d+)(?:@(?P<y>\d+),(?P<x>\d+))?$")


@dataclass(frozen=True)
class Unit:
    """One neuron: a channel of ``layer``, at (y, x) for spatial layers (None: the centre)."""

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None

    def __str__(self) -> str:
        pos = f"@{self.y},{self.x}" if self.y is not None else ""
        return f"{self.layer}:{self.channel}{pos}"


def parse_unit(text: str) -> Unit:
    """``"fc8:3"`` → Unit("fc8", 3); ``"conv5:12@3,4"`` → Unit("conv5", 12, 3, 4)."""
    m = _UNIT.match(text.strip())
    if not m:
        raise DGNError(f"bad unit {text!r}; write layer:channel or layer:channel@y,x, e.g. fc8:3 or conv5:12@3,4")
    y, x = m["y"], m["x"]
    return Unit(m["layer"], int(m["channel"]), None if y is None else int(y), None if x is None else int(x))


def module_names(model: nn.Module) -> list[str]:
    """Every addressable module, except the insides of a module that is one layer (``layer_parts = False``,
    e.g. the small CaffeNet's conv + BatchNorm, whose output is the conv layer's)."""
    whole = [n + "." for n, m in model.named_modules() if n and getattr(m, "layer_parts", True) is False]
    return [n for n, _ in model.named_modules() if n and not any(n.startswith(w) for w in whole)]


def resolve_module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not name or name not in modules:
        names = module_names(model)
        shown = ", ".join(names[:40]) + (f", … ({len(names)} in all)" if len(names) > 40 else "")
        raise DGNError(f"unknown layer {name!r} in {type(model).__name__}; valid layers: {shown}")
    return modules[name]


class _Stop(Exception):
    pass


def capture(model: nn.Module, x: torch.Tensor, layers: list[str] | tuple[str, ...], *, stop_early: bool = True) -> dict[str, torch.Tensor]:
    """Outputs of the named modules for input ``x``; hooks removed in ``finally``.

    With ``stop_early`` the forward pass is cut short once every requested
    module has produced its output (the rest of the network is never run).
    """
    wanted = list(dict.fromkeys(layers))
    out: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name):
        def hook(_module, _inputs, output):
            out[name] = output
            if stop_early and len(out) == len(wanted):
                raise _Stop

        return hook

    try:
        for name in wanted:
            handles.append(resolve_module(model, name).register_forward_hook(make_hook(name)))
        try:
            model(x)
        except _Stop:
            pass
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in wanted if n not in out]
    if missing:
        raise DGNError(f"layers {missing} of {type(model).__name__} never ran in its forward pass")
    return out


def unit_values(acts: torch.Tensor, unit: Unit) -> torch.Tensor:
    """The unit's value per image, shape (B,), from a layer output (B, C) or (B, C, H, W)."""
    check_unit(acts.shape[1:], unit)
    if acts.dim() == 2:
        return acts[:, unit.channel]
    if acts.dim() == 4:
        y, x = unit_position(acts.shape[1:], unit)
        return acts[:, unit.channel, y, x]
    raise DGNError(f"layer {unit.layer!r} has output shape {tuple(acts.shape[1:])}; only (C,) and (C, H, W) are supported")


def unit_position(shape, unit: Unit) -> tuple[int, int]:
    _, h, w = shape
    return (h // 2 if unit.y is None else unit.y, w // 2 if unit.x is None else unit.x)


def check_unit(shape, unit: Unit) -> None:
    """Raise a DGNError if ``unit`` does not exist in a layer of per-image ``shape``."""
    if not 0 <= unit.channel < shape[0]:
        raise DGNError(f"unit {unit} is out of range: layer {unit.layer!r} has channels 0..{shape[0] - 1}")
    if len(shape) == 3:
        y, x = unit_position(shape, unit)
        if not (0 <= y < shape[1] and 0 <= x < shape[2]):
            raise DGNError(f"unit {unit} is out of range: layer {unit.layer!r} has positions 0..{shape[1] - 1}, 0..{shape[2] - 1}")
    elif unit.y is not None:
        raise DGNError(f"unit {unit} has a position but layer {unit.layer!r} is a vector of {shape[0]} units")
