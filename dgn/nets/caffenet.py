"""The CaffeNet family, with Caffe's layer names.

Layers are addressed as in Caffe's reference model: ``conv1`` … ``conv5``,
``pool5``, ``fc6``, ``fc7``, ``fc8``. In Caffe the ReLUs run in place, so the
*blob* called ``conv5`` or ``fc6`` is post-ReLU while ``fc8`` is pre-softmax.
Here the module called ``conv5`` is the convolution itself (pre-ReLU output);
:meth:`CaffeNet.blob` applies the ReLU where Caffe's blob would have it. AM
optimises the pre-ReLU value (a dead unit still has a gradient) and reports
the post-ReLU one.

Presets:

- ``caffenet``: the faithful 227-px CaffeNet (grouped convs, LRN after the
  pools, fc 4096), for GPU clusters.
- ``alexnet``: torchvision's AlexNet widths (no groups, no LRN), so that real
  ImageNet weights load from a local torchvision state dict
  (:func:`dgn.nets.weights.load_torchvision_alexnet`).
- ``small``: a 64-px CaffeNet-shaped net (~1M params) for the embedded
  default on a CPU, with BatchNorm inside each conv (``batchnorm``) and no
  dropout: as in Caffe (no BN, dropout 0.5) the recipe's 375 steps of AdamW
  3e-3 one-cycle never leave chance on random-colour data (val 0.10); without
  dropout 0.34, with BN 0.89-0.92, with BN and no dropout 0.99
  (docs/datasets.md). The 227-px presets stay as in Caffe / torchvision.

Every net takes RGB images in [0, 1], shape (B, 3, S, S); normalisation by
the preset's mean/std happens inside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgn.errors import DGNError

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8")
RELU_LAYERS = frozenset({"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"})
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CaffeNetConfig:
    """Widths and geometry of one CaffeNet-family network."""

    image_size: int
    channels: tuple[int, ...]  # conv1..conv5 output channels
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    groups: tuple[int, ...]
    pool_after: tuple[str, ...]  # convs followed by a 3x3/2 max pool
    lrn: bool
    fc: tuple[int, int]  # fc6, fc7 widths
    num_classes: int
    dropout: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pool_ceil: bool = True  # Caffe pools round up; torchvision's round down
    batchnorm: bool = False  # BatchNorm2d inside each conv module (its output: conv → BN, still pre-ReLU)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CaffeNetConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


PRESETS = {
    "caffenet": dict(
        image_size=227,
        channels=(96, 256, 384, 384, 256),
        kernels=(11, 5, 3, 3, 3),
        strides=(4, 1, 1, 1, 1),
        pads=(0, 2, 1, 1, 1),
        groups=(1, 2, 1, 2, 2),
        pool_after=("conv1", "conv2", "conv5"),
        lrn=True,
        fc=(4096, 4096),
        num_classes=1000,
    ),
    "alexnet": dict(
        image_size=227,
        channels=(64, 192, 384, 256, 256),
        kernels=(11, 5, 3, 3, 3),
        strides=(4, 1, 1, 1, 1),
        pads=(2, 2, 1, 1, 1),
        groups=(1, 1, 1, 1, 1),
        pool_after=("conv1", "conv2", "conv5"),
        lrn=False,
        fc=(4096, 4096),
        num_classes=1000,
        pool_ceil=False,
    ),
    "small": dict(
        image_size=64,
        channels=(32, 64, 96, 96, 64),
        kernels=(5, 5, 3, 3, 3),
        strides=(2, 1, 1, 1, 1),
        pads=(2, 2, 1, 1, 1),
        groups=(1, 1, 1, 1, 1),
        pool_after=("conv1", "conv2", "conv5"),
        lrn=False,
        fc=(512, 512),
        num_classes=10,
        batchnorm=True,
        dropout=0.0,
    ),
}


def caffenet_config(preset: str = "small", **overrides) -> CaffeNetConfig:
    if preset not in PRESETS:
        raise DGNError(f"unknown network preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return CaffeNetConfig(**{**PRESETS[preset], **overrides})


class NormedConv2d(nn.Conv2d):
    """A convolution followed by BatchNorm, as one module: hooks and ``forward_until`` see the normalised,
    pre-ReLU output under the conv's own name, and the conv's attributes (``weight``, ``out_channels``) stay."""

    layer_parts = False  # one layer: its BatchNorm is not listed as a layer of its own (dgn.nets.target)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, bias=False, **kwargs)  # BN's shift replaces the bias
        self.bn = nn.BatchNorm2d(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(super().forward(x))


class CaffeNet(nn.Module):
    """conv1-5 → pool5 → fc6 → fc7 → fc8, each stage a named submodule."""

    def __init__(self, config: CaffeNetConfig):
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("mean", torch.tensor(c.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(c.std).view(1, 3, 1, 1), persistent=False)
        cin = 3
        for i, name in enumerate(LAYERS[:5]):
            conv = (NormedConv2d if c.batchnorm else nn.Conv2d)(cin, c.channels[i], c.kernels[i], c.strides[i],
                                                                c.pads[i], groups=c.groups[i])
            self.add_module(name, conv)
            cin = c.channels[i]
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=c.pool_ceil)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if c.lrn else nn.Identity()
        self.pool5 = nn.MaxPool2d(3, 2, ceil_mode=c.pool_ceil)
        self.pool5_shape = self._pool5_shape()
        self.fc6 = nn.Linear(int(torch.tensor(self.pool5_shape).prod()), c.fc[0])
        self.fc7 = nn.Linear(c.fc[0], c.fc[1])
        self.fc8 = nn.Linear(c.fc[1], c.num_classes)
        self.drop = nn.Dropout(c.dropout)

    # helpers

    def _pool5_shape(self) -> tuple[int, int, int]:
        was = self.training
        self.eval()  # BatchNorm: no running-statistics update from this probe
        with torch.no_grad():
            x = torch.zeros(1, 3, self.config.image_size, self.config.image_size)
            shape = tuple(self._convs(x, "pool5")[1].shape[1:])
        self.train(was)
        return shape

    def _convs(self, x, stop: str):
        """Run the conv trunk up to ``stop`` (inclusive); returns (name, blob) last reached."""
        x = (x - self.mean) / self.std
        for name in LAYERS[:5]:
            pre = getattr(self, name)(x)
            if name == stop:
                return name, pre
            x = F.relu(pre)
            if name in self.config.pool_after and name != "conv5":
                x = self.norm(self.pool(x))
        x = self.pool5(x)  # (B, C5, h, w)
        return "pool5", x

    # public API

    def forward_until(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Pre-activation output of ``layer`` (the module's own output); stops there."""
        check_layer(layer)
        if layer in LAYERS[:6]:
            return self._convs(x, layer)[1]
        h = self._convs(x, "pool5")[1].flatten(1)  # (B, C5*h*w)
        for name in ("fc6", "fc7", "fc8"):
            pre = getattr(self, name)(h)
            if name == layer:
                return pre
            h = self.drop(F.relu(pre))
        raise AssertionError(layer)

    def blob(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Caffe's blob for ``layer``: post-ReLU for conv1-5/fc6/fc7, pre-softmax fc8."""
        pre = self.forward_until(x, layer)
        return F.relu(pre) if layer in RELU_LAYERS else pre

    def blobs(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Caffe's blobs of several layers from one forward pass (to the deepest of them)."""
        for layer in layers:
            check_layer(layer)
        deepest = max(layers, key=LAYERS.index)
        found: dict[str, torch.Tensor] = {}
        hooks = [getattr(self, name).register_forward_hook(lambda m, i, o, name=name: found.__setitem__(name, o))
                 for name in set(layers) - {deepest}]
        try:
            last = self.forward_until(x, deepest)
        finally:
            for h in hooks:
                h.remove()
        found[deepest] = last
        return {k: F.relu(v) if k in RELU_LAYERS else v for k, v in found.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_until(x, "fc8")  # (B, num_classes) logits

    def code_shape(self, layer: str) -> tuple[int, ...]:
        """Shape of one image's ``layer`` blob, e.g. (512,) for fc6 or (96, 4, 4) for pool5."""
        check_layer(layer)
        with torch.no_grad():
            was = self.training
            self.eval()
            out = self.forward_until(torch.zeros(1, 3, self.config.image_size, self.config.image_size), layer)
            self.train(was)
        return tuple(out.shape[1:])


def check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise DGNError(f"unknown layer {layer!r}; valid layers: {', '.join(LAYERS)}")


def build_caffenet(preset: str = "small", **overrides) -> CaffeNet:
    return CaffeNet(caffenet_config(preset, **overrides))
