"""The discriminator D: it sees the image and the code it should match.

As in DGN-AM / DeePSiM: an image branch (5 convs → global average pool), a code
branch (FC 1024 → 512), and a joint FC 512 → 2 (generated / real) over both.

Two layouts (``arch``):

- ``paper``: the reference's image branch exactly (``discriminator.prototxt`` of the
  DeePSiM training code as kept by KamitaniLab/End2EndDeepImageReconstruction):
  ``Dconv1`` 7×7/4 32, ``Dconv2`` 5×5/1 64, ``Dconv3`` 3×3/2 128, ``Dconv4`` 3×3/1 256,
  ``Dconv5`` 3×3/2 256, all unpadded, plain ReLU, average pool over the 11×11 map
  (at 227 px), dropout 0.5 before each FC, MSRA init with the reference's coefficients
  (``Dconv1`` and the FCs 0.1, the other convs 1), zero biases. That copy of the reference
  dropped the code input ("do not feed fmri to the discriminator"); the code branch
  (FC 1024 → 512, concatenated before the joint FC 512 → 2) is DeePSiM's conditional D as
  the DGN-AM paper describes it. Unpadded, the image branch needs ≥ 63 px; below that
  the convs are padded (``k // 2``) and :meth:`Discriminator.describe` says so.
- ``dgn``: the earlier layout (padded convs, LeakyReLU 0.2, PyTorch init); at < 128 px
  narrower and with stride 2 early. The default for the product preset.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgn.errors import DGNError
from dgn.nets.generator import msra_

ARCHS = ("dgn", "paper")
PAPER_MIN_SIZE = 63  # the unpadded reference image branch: 63 → 15 → 11 → 5 → 3 → 1


def _out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


class Discriminator(nn.Module):
    def __init__(self, *, image_size: int, code_dim: int, widths=None, code_widths=(1024, 512), arch: str = "dgn"):
        super().__init__()
        if arch not in ARCHS:
            raise DGNError(f"unknown discriminator arch {arch!r}; valid: {', '.join(ARCHS)}")
        self.arch, self.image_size = arch, image_size
        if arch == "paper":
            widths = widths or (32, 64, 128, 256, 256)
            kernels, strides = (7, 5, 3, 3, 3), (4, 1, 2, 1, 2)
            self.padded = image_size < PAPER_MIN_SIZE
            pads = tuple(k // 2 for k in kernels) if self.padded else (0,) * 5
            act = lambda: nn.ReLU(inplace=True)  # noqa: E731
        elif image_size >= 128:  # the paper's 227-px image branch, padded
            widths = widths or (32, 64, 128, 256, 256)
            kernels, strides = (7, 5, 3, 3, 3), (4, 1, 2, 1, 2)
            pads, self.padded = tuple(k // 2 for k in kernels), True
            act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        else:  # small images: the same five convs, cheaper (stride 2 early, narrower)
            widths = widths or (32, 64, 64, 128, 128)
            kernels, strides = (5, 3, 3, 3, 3), (2, 2, 1, 2, 1)
            pads, self.padded = tuple(k // 2 for k in kernels), True
            act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        layers, cin, size = [], 3, image_size
        self.map_sizes = []
        for w, k, s, p in zip(widths, kernels, strides, pads):
            layers += [nn.Conv2d(cin, w, k, s, p), act()]
            cin, size = w, _out(size, k, s, p)
            self.map_sizes.append(size)
        if size < 1:
            raise DGNError(f"a {image_size}-px image is too small for the discriminator's image branch")
        self.image = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, widths[-1])
        self.code = nn.Sequential(
            nn.Linear(code_dim, code_widths[0]), act(),
            nn.Linear(code_widths[0], code_widths[1]), act(),  # (B, 512)
        )
        joint_in = widths[4] + code_widths[1]
        if arch == "paper":  # drop5 → FC 512 → drop6 → FC 2, as the reference's Dfc6/Dfc7
            self.joint = nn.Sequential(nn.Dropout(0.5), nn.Linear(joint_in, 512), act(), nn.Dropout(0.5),
                                       nn.Linear(512, 2))
            convs = [m for m in self.image if isinstance(m, nn.Conv2d)]
            for i, m in enumerate(convs):
                msra_(m, 0.1 if i == 0 else 1.0)  # Dconv1 msra_coeff 0.1, Dconv2-5 1
            for m in self.code:
                if isinstance(m, nn.Linear):
                    msra_(m, 1.0)  # not in the reference copy (it has no code branch): plain MSRA
            for m in self.joint:
                if isinstance(m, nn.Linear):
                    msra_(m, 0.1)  # Dfc6, Dfc7 msra_coeff 0.1
        else:
            self.joint = nn.Sequential(
                nn.Linear(joint_in, 512), act(), nn.Dropout(0.5),
                nn.Linear(512, 2),  # logits: [generated, real]
            )

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Logits (B, 2): column 0 "generated", column 1 "real"."""
        return self.joint(torch.cat([self.image(image), self.code(code.flatten(1))], dim=1))

    def describe(self) -> str:
        what = ("the reference's image branch (unpadded, ReLU, MSRA init)" if self.arch == "paper" and not self.padded
                else "the reference's image branch with PADDED convs (the unpadded one needs ≥ 63 px)"
                if self.arch == "paper" else "dgn's image branch (padded, LeakyReLU 0.2)")
        maps = " → ".join(str(s) for s in (self.image_size, *self.map_sizes))
        return (f"D ({self.arch}) at {self.image_size} px: {what}, maps {maps} px → average pool; "
                f"code branch FC {self.code[0].out_features} → {self.code[2].out_features}; joint FC 512 → 2.")


def code_dim(code_shape) -> int:
    return int(math.prod(code_shape))
