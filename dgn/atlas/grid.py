"""Labelled atlas grids: a tile per unit with its name and numbers, dead units drawn as marked tiles.

The frame colour :data:`FRAME` is deliberately distinctive (deep indigo), so a
screenshot of a page that shows a grid can be checked for it.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FRAME = (38, 20, 110)  # grid background and title bar
TEXT = (255, 255, 255)
DEAD = (70, 70, 70)
DEAD_MARK = (220, 40, 40)
TILE = 96  # pixels per tile image
LABEL = 26  # pixels under each tile for its label
PAD = 4
TITLE = 28


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def dead_tile(size: int = TILE) -> Image.Image:
    """A grey tile crossed in red: the unit never fires on real images and has no gradient."""
    img = Image.new("RGB", (size, size), DEAD)
    d = ImageDraw.Draw(img)
    d.line([(6, 6), (size - 7, size - 7)], fill=DEAD_MARK, width=4)
    d.line([(6, size - 7), (size - 7, 6)], fill=DEAD_MARK, width=4)
    d.text((size // 2, size // 2), "dead", fill=TEXT, anchor="mm", font=_font(16))
    return img


def tile(image: np.ndarray, *, dead: bool = False, size: int = TILE) -> Image.Image:
    """``image``: (H, W, 3) uint8 → a square tile: nearest-neighbour upscaling keeps small images crisp; a larger
    image (227 px) is shrunk with an antialiasing filter (nearest-neighbour decimation would alias its detail)."""
    if dead:
        return dead_tile(size)
    img = Image.fromarray(image)
    return img.resize((size, size), Image.NEAREST if max(img.size) <= size else Image.LANCZOS)


def fmt(x: float, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def labelled_grid(images: np.ndarray, labels: list[str], sublabels: list[str], *, dead=None, title: str = "",
                  ncol: int | None = None) -> Image.Image:
    """``images`` (K, H, W, 3) uint8 → one PIL image: a titled grid, each tile with two label lines."""
    K = len(images)
    dead = np.zeros(K, bool) if dead is None else np.asarray(dead, bool)
    ncol = ncol or max(1, min(K, math.ceil(math.sqrt(K * 1.5))))
    nrow = math.ceil(K / ncol)
    W = PAD + ncol * (TILE + PAD)
    H = TITLE + PAD + nrow * (TILE + LABEL + PAD)
    canvas = Image.new("RGB", (W, H), FRAME)
    d = ImageDraw.Draw(canvas)
    small, big = _font(11), _font(16)
    if title:
        d.text((PAD + 2, TITLE // 2), title, fill=TEXT, anchor="lm", font=big)
    for k in range(K):
        r, c = divmod(k, ncol)
        x, y = PAD + c * (TILE + PAD), TITLE + PAD + r * (TILE + LABEL + PAD)
        canvas.paste(tile(images[k], dead=bool(dead[k])), (x, y))
        d.text((x + TILE // 2, y + TILE + 6), labels[k], fill=TEXT, anchor="mm", font=small)
        d.text((x + TILE // 2, y + TILE + 18), sublabels[k], fill=TEXT, anchor="mm", font=small)
    return canvas
