"""The generator G: a code y = E(x) of one layer → an image.

One generator per code layer. Vector codes (fc6/fc7/fc8) enter through an FC
stack and are reshaped to 256×4×4; spatial codes (conv3 … pool5) enter through
a conv front end at their own resolution. Both then run the shared upconv
stack up to the image size.

Presets:

- ``paper``: the generator DGN-AM trains, laid out and initialised as the DeePSiM training
  net (``generator.prototxt`` of the reference training code): 3 FC (``defc7, defc6, defc5``,
  4096 each; the last is the reshape) → 256×4×4 → 9 layers, all Caffe ``Deconvolution``
  (``deconv5, conv5_1, deconv4, conv4_1, deconv3, conv3_1, deconv2, deconv1, deconv0``:
  six 4×4/2 and three 3×3/1) → 3×256×256, centre crop 227; LeakyReLU 0.3, linear output on
  Caffe's scale (BGR, 0–255, mean subtracted; :meth:`Generator.forward` returns RGB [0, 1]);
  MSRA init with the reference's coefficients (FC 1, 4×4/2 1.8, 3×3/1 0.9), zero biases.
  **Only at 227 px (any size over 128) is it the full net.** It starts at 4×4 and doubles per
  4×4/2 stage, so a smaller image drops the *first* stages: at 64 px it is 3 FC → 256×4×4 →
  ``deconv3, conv3_1, deconv2, deconv1, deconv0`` (5 of the 9; ``deconv5, conv5_1, deconv4,
  conv4_1`` cut). :meth:`Generator.describe` says what was built and what was cut. Spatial codes
  enter through a conv front end (pool5 6×6: DeePSiM's ``Rconv6-8``) instead of the FCs.
- ``small``: for the embedded 64-px default — FC → 256×4×4 → 4 × [nearest
  upsample ×2, conv 3×3, BatchNorm, LeakyReLU] → conv 3×3 → sigmoid-like
  output in [0, 1]. Upsample + conv avoids the checkerboard of strided deconvs.
- ``deepsim``: the published DeePSiM generators (fc6/fc7/fc8 codes; pool5 through three
  convs), so their weights load (:mod:`dgn.nets.deepsim`): the ``paper`` layout (its fc6 G
  *is* this layout, so published weights load into it too) with PyTorch's init, since the
  weights are overwritten.

Images are RGB in [0, 1] (the ``paper``/``deepsim`` linear output is not bounded;
renderers clamp). Layout and cut layers: docs/gan.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from dgn.errors import DGNError
from dgn.nets.conventions import caffe_to_rgb, centre_crop

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
    init: str = "torch"  # "torch" (PyTorch's defaults) or "msra" (the reference's: N(0, (coeff·√(2/fan_in))²), bias 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# The reference's names for the stages of the paper / DeePSiM stack (6 × 4×4/2, three with a 3×3/1 after),
# and the MSRA coefficients of its generator.prototxt (``msra_coeff``; FC layers have none, i.e. 1).
REFERENCE_STAGES = (("deconv5", "conv5_1"), ("deconv4", "conv4_1"), ("deconv3", "conv3_1"), ("deconv2",),
                    ("deconv1",), ("deconv0",))
MSRA_COEFF = {"fc": 1.0, "up": 1.8, "extra": 0.9, "front": 1.0, "out": 1.0}
INITS = ("torch", "msra")


def generator_config(preset: str, code_shape, image_size: int | None = None, **overrides) -> GeneratorConfig:
    code_shape = tuple(int(s) for s in code_shape)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}  # JSON gives lists
    if preset == "paper":
        # defc7, defc6, defc5 (4096) → 256×4×4 → deconv5, conv5_1, deconv4, conv4_1,
        # deconv3, conv3_1, deconv2, deconv1, deconv0 (all Deconvolution) → 256×256 → crop 227.
        pool5 = len(code_shape) == 3 and code_shape[1:] == (6, 6)  # DeePSiM's pool5 front (Rconv6-8)
        base = dict(
            arch="deconv", fc=(4096, 4096), widths=(256, 256, 128, 64, 32, 3),
            extra_widths=(512, 256, 128, 0, 0, 0), norm="none", slope=0.3, output="caffe",
            image_size=image_size or 227, extra_conv="deconv", init="msra",
            front="deepsim" if pool5 else "dgn", base_channels=512 if pool5 else 256,
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


def msra_(m: nn.Module, coeff: float = 1.0) -> None:
    """Caffe's ``msra`` filler with Dosovitskiy's ``msra_coeff``: weights N(0, (coeff·√(2/fan_in))²), bias 0.

    Caffe's fan_in is ``count / shape(0)`` of the weight blob, whose layout PyTorch shares: in·k·k for a
    convolution, in for an InnerProduct, and out·k·k for a Deconvolution (blob (in, out, k, k)). The coefficient
    multiplies the standard deviation (as in the same author's DFP code, ``stddev = msra_coeff * sqrt(2/fan_in)``).
    """
    w = m.weight
    with torch.no_grad():
        w.normal_(0.0, coeff * math.sqrt(2.0 / w[0].numel()))
        if m.bias is not None:
            m.bias.zero_()


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
        if c.init not in INITS:
            raise DGNError(f"unknown generator init {c.init!r}; valid: {', '.join(INITS)}")
        roles: list[tuple[nn.Module, str]] = []  # (layer, MSRA role) for the reference's init
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
            roles += [(m, "fc") for m in layers if isinstance(m, nn.Linear)]
            r0 = c.base_size
        elif len(c.code_shape) == 3 and c.front == "deepsim":
            ch, h, _ = c.code_shape  # Rconv6, Rconv7 (padded), Rconv8 (unpadded: 6 → 4)
            self.front = nn.Sequential(
                nn.Conv2d(ch, 512, 3, 1, 1), act(), nn.Conv2d(512, 512, 3, 1, 1), act(),
                nn.Conv2d(512, c.base_channels, 3, 1, 0), act(),
            )
            r0 = h - 2
            roles += [(m, "front") for m in self.front if isinstance(m, nn.Conv2d)]
        elif len(c.code_shape) == 3:
            ch, h, _ = c.code_shape
            r0 = c.base_size * 2 ** max(0, math.ceil(math.log2(h / c.base_size)))  # 6 → 8, 13 → 16
            self.front = nn.Sequential(
                nn.Conv2d(ch, c.base_channels, 3, 1, 1), act(),
                nn.Conv2d(c.base_channels, c.base_channels, 3, 1, 1), act(),
                nn.Upsample(size=(r0, r0), mode="bilinear", align_corners=False) if r0 != h else nn.Identity(),
                nn.Conv2d(c.base_channels, c.base_channels, 3, 1, 1), act(),
            )
            roles += [(m, "front") for m in self.front if isinstance(m, nn.Conv2d)]
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
        self.n_stages, self.skipped_stages = n_stages, len(c.widths) - n_stages
        widths = c.widths[len(c.widths) - n_stages:]  # spatial codes and small images start later in the stack
        extra = (tuple(c.extra_widths) + (0,) * len(c.widths))[len(c.widths) - n_stages:len(c.widths)]
        stages, cin = [], c.base_channels
        for i, w in enumerate(widths):
            last = i == n_stages - 1
            if c.arch == "deconv":
                stages.append(nn.ConvTranspose2d(cin, w, 4, 2, 1))
            else:
                stages += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, w, 3, 1, 1)]
            roles.append((stages[-1], "up"))
            cin = w
            if last and c.arch == "deconv" and w == 3:
                break  # the paper's deconv0 is the output layer
            stages += [_norm(c.norm, w), act()]
            if extra[i]:
                stages += [extra_conv(cin, extra[i], 3, 1, 1), _norm(c.norm, extra[i]), act()]
                roles.append((stages[-3], "extra"))
                cin = extra[i]
        if not (c.arch == "deconv" and cin == 3):
            stages.append(nn.Conv2d(cin, 3, 3, 1, 1))
            roles.append((stages[-1], "out"))
        self.stack = nn.Sequential(*stages)
        self.out_size = r0 * 2**n_stages
        if c.init == "msra":
            for m, role in roles:
                msra_(m, MSRA_COEFF[role])

    def stage_names(self) -> list[tuple[str, ...]]:
        """Names of all ``len(widths)`` ×2 stages, first to last (the reference's for the 6-stage stack)."""
        c = self.config
        n = len(c.widths)
        if n == len(REFERENCE_STAGES) and c.arch == "deconv":
            return [s if len(s) == 1 or c.extra_widths[i] else s[:1] for i, s in enumerate(REFERENCE_STAGES)]
        kind = "deconv" if c.arch == "deconv" else "up"
        return [(f"{kind}{n - 1 - i}",) + ((f"conv{n - 1 - i}_1",) if i < len(c.extra_widths) and c.extra_widths[i]
                                             else ()) for i in range(n)]

    def layer_names(self) -> tuple[list[str], list[str]]:
        """(names of the stack's layers that were built, names of those cut because the image is small or the
        code spatial), in the stack's order."""
        names = self.stage_names()
        cut = [n for s in names[:self.skipped_stages] for n in s]
        kept = [n for s in names[self.skipped_stages:] for n in s]
        return kept, cut

    def describe(self) -> str:
        """One paragraph: what this G is, and what of its full stack was cut (e.g. the paper G at 64 px)."""
        c = self.config
        kept, cut = self.layer_names()
        if len(c.code_shape) == 1:
            front = f"{len(c.fc) + 1} FC ({', '.join(str(w) for w in (*c.fc, c.base_channels * c.base_size ** 2))})"
            front += f" → {c.base_channels}×{c.base_size}×{c.base_size}"
        else:
            front = f"conv front end ({c.front}) → {c.base_channels}×{self.r0}×{self.r0}"
        extra_out = 0 if c.arch == "deconv" and c.widths[-1] == 3 else 1
        n_layers, n_full = len(kept) + extra_out, len(kept) + len(cut) + extra_out
        crop = f", centre crop {c.image_size}" if self.out_size != c.image_size else ""
        out = {"caffe": "linear on Caffe's scale (BGR, 0–255, mean subtracted; returned as RGB [0, 1])",
               "linear": "linear (+0.5)", "tanh": "(tanh + 1)/2"}[c.output]
        text = (f"G for code {tuple(c.code_shape)}: {front} → {n_layers} (de)conv layers ({', '.join(kept)}"
                f"{', output conv' if extra_out else ''}) → 3×{self.out_size}×{self.out_size}{crop}; "
                f"LeakyReLU {c.slope}, norm {c.norm}, output {out}, init {c.init}.")
        if cut:
            text += (f" CUT: {len(cut)} of the full stack's {n_full} (de)conv layers ({', '.join(cut)}; "
                     f"{self.skipped_stages} of {len(c.widths)} ×2 stages), because {c.image_size} px needs only "
                     f"{self.n_stages} doublings from {self.r0} px; this is not the full {n_full}-layer generator.")
        return text

    def native(self, code: torch.Tensor, *, crop: bool = True) -> torch.Tensor:
        """The last layer's output before the output transform (for ``caffe``: BGR, 0–255, mean subtracted)."""
        c = self.config
        h = self.front(code.flatten(1) if len(c.code_shape) == 1 else code)
        if len(c.code_shape) == 1:
            h = h.view(-1, c.base_channels, c.base_size, c.base_size)  # (B, 256, 4, 4)
        x = self.stack(h)  # (B, 3, out_size, out_size)
        if crop and self.out_size != c.image_size:  # centre crop, 256 → 227 (offset 14, as the reference)
            x = centre_crop(x, c.image_size)
        return x

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = self.native(code)
        if c.output == "tanh":
            return (torch.tanh(x) + 1) / 2  # [0, 1]
        if c.output == "caffe":
            return caffe_to_rgb(x)
        return x + 0.5  # linear, centred on mid-grey
