"""Targets: :class:`TargetNet` (any network whose units AM maximises), and targets from outside the run — a
TorchScript file, or a torchvision model name plus a local weights file.

    load_target("torchvision:alexnet", weights="alexnet.pt")   # Caffe layer names: conv5, fc6, fc7, fc8
    load_target("torchvision:resnet18", weights="r18.pt")       # module names: layer4, fc, ...
    load_target("model.ts")                                     # TorchScript: module names of its Sequential tree

Nothing is downloaded: torchvision models are built with ``weights=None`` and
filled from the given file. ``torchvision:alexnet`` becomes the CaffeNet
``alexnet`` preset (:func:`dgn.nets.weights.load_torchvision_alexnet`) so the
Caffe layer names and the post-ReLU reporting apply; other torchvision models
are addressed by module name and see 224-px ImageNet-normalised input.

TorchScript modules accept no forward hooks, so a TorchScript target is run
from Python through its ``Sequential`` containers: every module reachable
through nested ``Sequential`` s is a layer (``0``, ``features.10``, ...); a
module that is not a ``Sequential`` runs as one compiled block whose output
is the only layer it offers (the whole model's output is called ``output``).
A TorchScript target receives RGB in [0, 1] at the generator's resolution;
any normalisation belongs inside the scripted model.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dgn.errors import DGNError
from dgn.nets.caffenet import RELU_LAYERS, CaffeNet
from dgn.nets.conventions import imagenet_input
from dgn.nets.objectives import Objective, evaluate
from dgn.nets.target import capture
from dgn.nets.weights import _load_state, load_torchvision_alexnet

TORCHVISION_PREFIX = "torchvision:"


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

    def layer_shapes(self, layers, image_size: int, device=None, dtype=None) -> dict[str, tuple]:
        with torch.no_grad():
            acts = self.activations(torch.zeros(1, 3, image_size, image_size, device=device, dtype=dtype), layers)
        return {k: tuple(v.shape[1:]) for k, v in acts.items()}

    def values(self, images: torch.Tensor, objectives: list[Objective]) -> tuple[torch.Tensor, torch.Tensor]:
        """(optimised, reported) objective values, each (B,): raw module outputs, and those reported (ReLU'd)."""
        layers = {l for o in objectives for l in o.layers}
        acts = self.activations(images, layers)
        return evaluate(objectives, acts), evaluate(objectives, acts, transform=self.report)



class _Compiled(nn.Module):
    """A hookable Python wrapper around one compiled (TorchScript) block."""

    def __init__(self, block):
        super().__init__()
        object.__setattr__(self, "block", block)  # not a submodule: its internals are not addressable

    def forward(self, x):
        return self.block(x)


def _unroll(script) -> nn.Module:
    """Mirror a TorchScript module's ``Sequential`` tree with hookable Python modules, names preserved."""
    if getattr(script, "original_name", "") != "Sequential":
        return _Compiled(script)
    return _named_sequential([(name, _unroll(child)) for name, child in script.named_children()])


def _named_sequential(pairs) -> nn.Sequential:
    return nn.Sequential(OrderedDict(pairs))


def _with_output(body: nn.Module) -> nn.Sequential:
    """``body`` (unrolled) followed by an identity called ``output``, whose hook sees the model's final output."""
    if not isinstance(body, nn.Sequential):
        body = _named_sequential([("compiled", body)])
    body.add_module("output", nn.Identity())
    return body


class ImageNetTarget(TargetNet):
    """A torchvision classifier: images brought to 224 px and ImageNet-normalised (:func:`dgn.nets.conventions.
    imagenet_input`) before the network."""

    def __init__(self, model: nn.Module, *, input_size: int = 224, name: str = "torchvision"):
        super().__init__(model, input_size=input_size, name=name)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return imagenet_input(images, self.input_size)


def load_torchscript_target(path: str | Path) -> TargetNet:
    path = Path(path)
    if not path.is_file():
        raise DGNError(f"TorchScript target {str(path)!r} does not exist")
    try:
        script = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001 — the user's file
        raise DGNError(f"target {str(path)!r} is not a TorchScript file ({type(e).__name__}); save one with "
                       "torch.jit.save(torch.jit.script(model), path)") from None
    model = _with_output(_unroll(script))
    for p in script.parameters():
        p.requires_grad_(False)
    return TargetNet(model.eval(), name=path.name)


def load_torchvision_target(name: str, weights: str | Path | None) -> TargetNet:
    import torchvision

    if not weights:
        raise DGNError(f"target torchvision:{name} needs --target-weights FILE (a local state dict; nothing is "
                       "downloaded)")
    if name == "alexnet":
        net = load_torchvision_alexnet(weights)
        return TargetNet.caffenet(net, name="torchvision:alexnet")
    valid = torchvision.models.list_models(module=torchvision.models)
    if name not in valid:
        raise DGNError(f"unknown torchvision model {name!r}; valid: {', '.join(sorted(valid))}")
    state = _load_state(weights)
    model = torchvision.models.get_model(name, weights=None, num_classes=_num_classes(state))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DGNError(f"weights file {str(weights)!r} does not fit torchvision's {name}: "
                       f"{str(e).splitlines()[0]}") from None
    return ImageNetTarget(model.eval(), name=f"torchvision:{name}")


def _num_classes(state: dict) -> int:
    for key in ("fc.weight", "classifier.weight", "classifier.6.weight", "classifier.1.weight", "heads.head.weight",
                "classifier.3.weight", "classifier.2.weight"):
        if key in state and state[key].dim() >= 2:
            return state[key].shape[0]
    return 1000


def load_target(spec: str, *, weights: str | Path | None = None) -> TargetNet:
    """``torchvision:NAME`` (+ ``weights``) or the path of a TorchScript file → a TargetNet."""
    if spec.startswith(TORCHVISION_PREFIX):
        return load_torchvision_target(spec[len(TORCHVISION_PREFIX):], weights)
    if weights:
        raise DGNError(f"--target-weights is only for torchvision:NAME targets, not {spec!r}")
    return load_torchscript_target(spec.removeprefix("torchscript:"))


def layer_names(target: TargetNet) -> list[str]:
    return [n for n, _ in target.model.named_modules() if n]
