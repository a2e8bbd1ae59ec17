"""Image conventions between generators and targets: the one place that converts between them.

Two conventions meet when a published prior visualises an ImageNet network:

- **Caffe** (the DeePSiM generators, CaffeNet, the DGN-AM reference code):
  BGR channel order, 0–255 scale, the ImageNet mean ``(104, 117, 123)``
  (B, G, R) subtracted; G's image is 256×256 and CaffeNet sees its centre
  227×227 crop (top-left offset ``(256 − 227) // 2 = 14``, as the reference).
- **dgn** (everything inside this project: AM, targets, atlases): RGB in
  [0, 1]. Torchvision classifiers then see ``(x − mean) / std`` with the
  ImageNet mean/std ``(0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)`` at their
  input size.

What is done where:

- a DeePSiM G (``output="caffe"``) produces Caffe's image; :func:`caffe_to_rgb`
  turns it into dgn's RGB [0, 1] — linearly and unclipped, so AM's gradient is
  the reference's;
- G's 256-px image is **centre-cropped** (never resized) to the target's input
  size (:func:`crop_size`): 227 for CaffeNet/AlexNet, 224 for other torchvision
  classifiers (the standard 256 → 224 evaluation crop);
- any other size difference (a trained dgn G, a target larger than 256 px) is
  bridged by bilinear resizing (:func:`imagenet_input`);
- images are *shown* by adding the mean back and clipping to [0, 255]
  (:func:`display_uint8`): the reference instead maps [−120, 120] (mean
  subtracted) to [0, 255] before saving, which saturates sooner; we keep the
  true colours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)  # the DGN-AM reference's ImageNet mean, B, G, R, 0–255
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision, RGB, [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
DEEPSIM_SIZE = 256  # the DeePSiM generators' output
CAFFENET_SIZE = 227  # CaffeNet's (and the alexnet preset's) input
TORCHVISION_SIZE = 224
REFERENCE_RANGE = (-120.0, 120.0)  # the reference's patchShow in_range, for its saved images


def _col(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def caffe_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Caffe's image (B, 3, H, W) BGR 0–255 minus the mean → RGB in [0, 1] (unclipped)."""
    return (x + _col(CAFFE_MEAN_BGR, x)).flip(1) / 255.0


def rgb_to_caffe(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] → Caffe's BGR 0–255 minus the mean (what CaffeNet and the reference take)."""
    return (x * 255.0).flip(1) - _col(CAFFE_MEAN_BGR, x)


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size``×``size`` of (B, C, S, S); offset ``(S − size) // 2`` (256 → 227: 14, 256 → 224: 16)."""
    s = x.shape[-1]
    if size > s:
        raise ValueError(f"cannot crop {s}-px images to {size} px")
    o = (s - size) // 2
    return x[..., o:o + size, o:o + size]


def crop_size(target_size: int | None) -> int:
    """The size a 256-px DeePSiM image is centre-cropped to for a target of ``target_size`` px (None: CaffeNet's)."""
    if not target_size:
        return CAFFENET_SIZE
    return min(int(target_size), DEEPSIM_SIZE)


def imagenet_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """RGB [0, 1] → what a torchvision classifier takes: ``size`` px (bilinear resize if the size differs; a DeePSiM
    G has already centre-cropped to it), then ImageNet mean/std."""
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - _col(IMAGENET_MEAN, x)) / _col(IMAGENET_STD, x)


def display_uint8(x: torch.Tensor) -> torch.Tensor:
    """RGB [0, 1] (B, 3, H, W) → (B, H, W, 3) uint8: the mean already added back, clipped to [0, 255]."""
    return (x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8)


def reference_display(x_caffe: torch.Tensor) -> torch.Tensor:
    """The reference's saved image of Caffe's (B, 3, H, W): [−120, 120] → [0, 1] RGB, clipped (for comparison)."""
    lo, hi = REFERENCE_RANGE
    return ((x_caffe.flip(1) - lo) / (hi - lo)).clamp(0, 1)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names, from torchvision's own package data (never downloaded)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)
