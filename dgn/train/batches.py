"""In-memory batches for data that fits in RAM (the embedded default trains from it)."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def tensor_batches(
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    shard: tuple[int, int] = (0, 1),
    device: torch.device | str = "cpu",
) -> Iterator:
    """Batches of uint8 (N, 3, H, W) images as float [0, 1]; with labels, (images, labels).

    ``shard=(rank, world)`` keeps every world-th row starting at rank, after
    the seeded shuffle, so that shards are disjoint and cover the data.
    """
    n = images.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
    rank, world = shard
    order = order[rank::world]
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        x = images[idx].to(device, non_blocking=True)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x
        yield x if labels is None else (x, labels[idx].to(device))
