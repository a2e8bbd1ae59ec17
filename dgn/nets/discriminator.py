"""The discriminator D: it sees the image and the code it should match.

As in DGN-AM: an image branch (5 convs → global average pool), a code branch
(FC 1024 → 512), and a joint FC 512 → 2 (real / generated) over both.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, *, image_size: int, code_dim: int, widths=(32, 64, 128, 256, 256), code_widths=(1024, 512)):
        super().__init__()
        # the paper's 227-px D starts with a 7x7/4 conv; small images start with 5x5/2
        k1, s1 = (7, 4) if image_size >= 128 else (5, 2)
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        w = widths
        self.image = nn.Sequential(
            nn.Conv2d(3, w[0], k1, s1, k1 // 2), act(),  # (B, 32, S/s1, S/s1)
            nn.Conv2d(w[0], w[1], 5, 1, 2), act(),
            nn.Conv2d(w[1], w[2], 3, 2, 1), act(),  # /2
            nn.Conv2d(w[2], w[3], 3, 1, 1), act(),
            nn.Conv2d(w[3], w[4], 3, 2, 1), act(),  # /2
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 256)
        )
        self.code = nn.Sequential(
            nn.Linear(code_dim, code_widths[0]), act(),
            nn.Linear(code_widths[0], code_widths[1]), act(),  # (B, 512)
        )
        self.joint = nn.Sequential(
            nn.Linear(w[4] + code_widths[1], 512), act(), nn.Dropout(0.5),
            nn.Linear(512, 2),  # logits: [generated, real]
        )

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([self.image(image), self.code(code.flatten(1))], dim=1))


def code_dim(code_shape) -> int:
    return int(math.prod(code_shape))
