"""The independent judge: a VGG-style classifier with BatchNorm.

It is trained on the same data with its own seed and architecture and is
never used as E, C or a target, so that "the judge recognises it" means the
image carries the class, not that it exploits E's quirks.
"""

from __future__ import annotations

import torch
from torch import nn

from dgn.nets.caffenet import IMAGENET_MEAN, IMAGENET_STD


class Judge(nn.Module):
    def __init__(self, *, num_classes: int, image_size: int = 64, widths=(16, 32, 64, 128), convs_per_block: int = 1):
        super().__init__()
        self.image_size = image_size
        self.widths, self.convs_per_block = tuple(widths), convs_per_block
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        layers, cin = [], 3
        for w in widths:  # each block halves the resolution
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(cin, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 256)
        self.head = nn.Linear(cin, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 256): the space realism (Fréchet distance) is measured in."""
        return self.features((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
