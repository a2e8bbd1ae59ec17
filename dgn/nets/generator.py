"""The generator G: a code y = E(x) of one layer → an image.

One generator per code layer. Vector codes (fc6/fc7/fc8) enter through an FC
stack and are reshaped to 256×4×4; spatial codes (conv3 … pool5) enter through
a conv front end at their own resolution. Both then run the shared upconv
stack up to the image size.

Presets:

- ``paper``: the reference fc6 generator of DGN-AM — 3 FC (4096 each; the last is the reshape) →
  reshape 256×4×4 → 9 (de)conv layers → 256×256, centre crop 227; LeakyReLU
  0.3, linear output.
- ``small``: for the embedded 64-px default — FC → 256×4×4 → 4 × [nearest
  upsample ×2, conv 3×3, BatchNorm, LeakyReLU] → conv 3×3 → sigmoid-like
  output in [0, 1]. Upsample + conv avoids the checkerboard of strided deconvs.
- ``deepsim``: the ``paper`` layout exactly as Dosovitskiy & Brox published it
  (fc6/fc7/fc8 codes; pool5 through three convs), so their weights load
  (:mod:`dgn.nets.deepsim`): the 3×3 layers are stride-1 transposed convs, as
  in the Caffe release, and the output is Caffe's (BGR, 0–255, ImageNet mean
  subtracted), turned into RGB [0, 1] by :mod:`dgn.nets.conventions`.

Images are RGB in [0, 1] (the ``paper`` preset's linear output is not
bounded; renderers clamp).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from dgn.errors import DGNError

ARCHS = ("deconv", "upsample")
OUTPUTS = ("linear", "tanh", "caffe")
FRONTS = ("dgn", "deepsim")
EXTRA_CONVS = ("conv", "deconv")


@dataclass(frozen=True)
class GeneratorConfig:
    code_shape: tuple[int, ...]  # (D,) for vector codes, (C, h, w) for spatial ones
    image_size: int
    arch: str = "upsample"  # "deconv": 4x4/2 transposed convs (paper); "upsample": nearest ×2 + conv 3x3
    fc: tuple[int, ...] = (1024,)  # hidden FC widths before the 256×4×4 reshape
    widths: tuple[int, ...] = (256, 128, 64, 32)  # channels after each ×2 stage (last → image)
    extra_widths: tuple[int, ...] = (0, 0, 0, 0)  # per stage: width of an extra 3x3 conv (0: none)
    norm: str = "batch"  # "batch", "group" (per image: independent of how a batch is split across workers) or "none"
    slope: float = 0.3  # LeakyReLU
    output: str = "tanh"  # "tanh" → (tanh+1)/2 in [0,1]; "linear"; "caffe": BGR 0–255 minus the mean → RGB [0,1]
    base_channels: int = 256
    base_size: int = 4
    front: str = "dgn"  # spatial codes: "dgn" (3 convs + upsample) or "deepsim" (pool5: 3 convs, the last unpadded)
    extra_conv: str = "conv"  # the extra 3x3 layers: "conv" or "deconv" (stride-1 transposed, as in DeePSiM)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def generator_config(preset: str, code_shape, image_size: int | None = None, **overrides) -> GeneratorConfig:
    code_shape = tuple(int(s) for s in code_shape)
    if preset == "paper":
        # defc7, defc6, defc5 (4096) → 256×4×4 → deconv5, conv5_1, deconv4, conv4_1,
        # deconv3, conv3_1, deconv2, deconv1, deconv0 → 256×256 → crop 227.
        base = dict(
            arch="deconv", fc=(4096, 4096), widths=(256, 256, 128, 64, 32, 3),
            extra_widths=(512, 256, 128, 0, 0, 0),
            norm="none", slope=0.3, output="linear", image_size=image_size or 227,
        )
    elif preset == "deepsim":
        # the published DeePSiM generators: fc6/fc7 (4096), fc8 (1000) or pool5 (256×6×6 → Rconv6-8 → 512×4×4)
        spatial = len(code_shape) == 3
        base = dict(
            arch="deconv", fc=(4096, 4096), widths=(256, 256, 128, 64, 32, 3),
            extra_widths=(512, 256, 128, 0, 0, 0), norm="none", slope=0.3, output="caffe",
            image_size=image_size or 227, front="deepsim", extra_conv="deconv",
            base_channels=512 if spatial else 256,
        )
    elif preset == "small":
        base = dict(image_size=image_size or 64)
    else:
        raise DGNError(f"unknown generator preset {preset!r}; valid presets: paper, deepsim, small")
    base.update(overrides)
    return GeneratorConfig(code_shape=code_shape, **base)


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, c), c)
    if kind == "none":
        return nn.Identity()
    raise DGNError(f"unknown normalisation {kind!r}; valid: batch, group, none")


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        c = self.config = config
        if c.arch not in ARCHS:
            raise DGNError(f"unknown generator arch {c.arch!r}; valid: {', '.join(ARCHS)}")
        if c.output not in OUTPUTS:
            raise DGNError(f"unknown generator output {c.output!r}; valid: {', '.join(OUTPUTS)}")
        if c.front not in FRONTS or c.extra_conv not in EXTRA_CONVS:
            raise DGNError(f"unknown generator front {c.front!r} or extra_conv {c.extra_conv!r}; valid: "
                           f"{', '.join(FRONTS)} and {', '.join(EXTRA_CONVS)}")
        extra_conv = nn.ConvTranspose2d if c.extra_conv == "deconv" else nn.Conv2d
        act = lambda: nn.LeakyReLU(c.slope, inplace=True)  # noqa: E731

        # front end: code → (base_channels, r0, r0)
        if len(c.code_shape) == 1:
            layers, d = [], c.code_shape[0]
            for w in c.fc:
                layers += [nn.Linear(d, w), act()]
                d = w
            layers += [nn.Linear(d, c.base_channels * c.base_size**2), act()]
            self.front = nn.Sequential(*layers)
            r0 = c.base_size
        elif len(c.code_shape) == 3 and c.front == "deepsim":
            ch, h, _ = c.code_shape  # Rconv6, Rconv7 (padded), Rconv8 (unpadded: 6 → 4)
            self.front = nn.Sequential(
                nn.Conv2d(ch, 512, 3, 1, 1), act(), nn.Conv2d(512, 512, 3, 1, 1), act(),
                nn.Conv2d(512, c.base_channels, 3, 1, 0), act(),
            )
            r0 = h - 2
        elif len(c.code_shape) == 3:
            ch, h, _ = c.code_shape
            r0 = c.base_size * 2 ** max(0, math.ceil(math.log2(h / c.base_size)))  # 6 → 8, 13 → 16
            self.front = nn.Sequential(
                nn.Conv2d(ch, c.base_channels, 3, 1, 1), act(),
                nn.Conv2d(c.base_channels, c.base_channels, 3, 1, 1), act(),
                nn.Upsample(size=(r0, r0), mode="bilinear", align_corners=False) if r0 != h else nn.Identity(),
                nn.Conv2d(c.base_channels, c.base_channels, 3, 1, 1), act(),
            )
        else:
            raise DGNError(f"code shape {c.code_shape} is neither a vector (D,) nor a map (C, h, w)")
        self.r0 = r0

        # shared upconv stack: r0 → ≥ image_size
        n_stages = max(0, math.ceil(math.log2(c.image_size / r0)))
        if n_stages > len(c.widths):
            raise DGNError(
                f"generator widths {c.widths} give {len(c.widths)} ×2 stages but {n_stages} are needed "
                f"to go from {r0} px to {c.image_size} px"
            )
        widths = c.widths[len(c.widths) - n_stages:]  # spatial codes start later in the stack
        extra = (tuple(c.extra_widths) + (0,) * len(c.widths))[len(c.widths) - n_stages:len(c.widths)]
        stages, cin = [], c.base_channels
        for i, w in enumerate(widths):
            last = i == n_stages - 1
            if c.arch == "deconv":
                stages.append(nn.ConvTranspose2d(cin, w, 4, 2, 1))
            else:
                stages += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, w, 3, 1, 1)]
            cin = w
            if last and c.arch == "deconv" and w == 3:
                break  # the paper's deconv0 is the output layer
            stages += [_norm(c.norm, w), act()]
            if extra[i]:
                stages += [extra_conv(cin, extra[i], 3, 1, 1), _norm(c.norm, extra[i]), act()]
                cin = extra[i]
        if not (c.arch == "deconv" and cin == 3):
            stages.append(nn.Conv2d(cin, 3, 3, 1, 1))
        self.stack = nn.Sequential(*stages)
        self.out_size = r0 * 2**n_stages

    def native(self, code: torch.Tensor, *, crop: bool = True) -> torch.Tensor:
        """The last layer's output before the output transform (for ``caffe``: BGR, 0–255, mean subtracted)."""
        c = self.config
        h = self.front(code.flatten(1) if len(c.code_shape) == 1 else code)
        if len(c.code_shape) == 1:
            h = h.view(-1, c.base_channels, c.base_size, c.base_size)  # (B, 256, 4, 4)
        x = self.stack(h)  # (B, 3, out_size, out_size)
        if crop and self.out_size != c.image_size:  # centre crop, 256 → 227 (offset 14, as the reference)
            from dgn.nets.conventions import centre_crop

            x = centre_crop(x, c.image_size)
        return x

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = self.native(code)
        if c.output == "tanh":
            return (torch.tanh(x) + 1) / 2  # [0, 1]
        if c.output == "caffe":
            from dgn.nets.conventions import caffe_to_rgb

            return caffe_to_rgb(x)
        return x + 0.5  # linear, centred on mid-grey
