"""The independent judge: a VGG-style classifier with BatchNorm.

It is trained on the same data with its own seed and architecture and is
never used as E, C or a target, so that "the judge recognises it" means the
image carries the class, not that it exploits E's quirks.
"""

from __future__ import annotations

import torch
from torch import nn

from dgn.nets.caffenet import IMAGENET_MEAN, IMAGENET_STD

# Five blocks: after four (receptive field ~31 px) the judge could not see a whole 50-px silhouette and read
# 0.88 of the default's val set after 2 epochs; the fifth (RF ~63 px, +0.15M params) reads 0.99 (docs/datasets.md).
WIDTHS = (16, 32, 64, 128, 128)


class Judge(nn.Module):
    def __init__(self, *, num_classes: int, image_size: int = 64, widths=WIDTHS, convs_per_block: int = 1):
        super().__init__()
        self.image_size = image_size
        self.widths, self.convs_per_block = tuple(widths), convs_per_block
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        layers, cin = [], 3
        side = image_size
        for w in widths:  # each block halves the resolution, down to 1 px (small images: the last blocks don't)
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(cin, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
            layers.append(nn.MaxPool2d(2) if side >= 2 else nn.Identity())  # Identity: same module indices
            side //= 2
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, widths[-1])
        self.head = nn.Linear(cin, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, widths[-1]): the space realism (Fréchet distance) is measured in."""
        return self.features((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
