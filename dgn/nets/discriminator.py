"""The discriminator D: it sees the image and the code it should match.

As in DGN-AM: an image branch (5 convs → global average pool), a code branch
(FC 1024 → 512), and a joint FC 512 → 2 (real / generated) over both.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, *, image_size: int, code_dim: int, widths=None, code_widths=(1024, 512)):
        super().__init__()
        if image_size >= 128:  # the paper's 227-px image branch
            widths = widths or (32, 64, 128, 256, 256)
            kernels, strides = (7, 5, 3, 3, 3), (4, 1, 2, 1, 2)
        else:  # small images: the same five convs, cheaper (stride 2 early, narrower)
            widths = widths or (32, 64, 64, 128, 128)
            kernels, strides = (5, 3, 3, 3, 3), (2, 2, 1, 2, 1)
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        layers, cin = [], 3
        for w, k, s in zip(widths, kernels, strides):
            layers += [nn.Conv2d(cin, w, k, s, k // 2), act()]
            cin = w
        self.image = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, widths[-1])
        w = widths
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
