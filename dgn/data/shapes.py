"""Geometry of the synthetic datasets: families of silhouettes a person names at a glance.

- ``shapes`` (the development family, the embedded default): circle, square, triangle, star, plus, ring,
  crescent, arrow, semicircle, heart.
- ``hues``: the earlier default's ten, with a hexagon where ``shapes`` has the semicircle (at 64 px a small
  hexagon and a circle differ by a few pixels: half the errors of a 3-epoch E; docs/datasets.md).
- ``icons`` (held out): bolt, drop, house, cloud, tree, hourglass, bone, pacman, keyhole, mushroom.
- ``glyphs`` (held out): ten letters and digits in Pillow's built-in font (Aileron, embedded in Pillow, so
  the same on every machine), thickened with a stroke.

A silhouette is a coverage mask in [0, 1] at the final size: drawn with PIL at SUPERSAMPLE x and downsampled
with LANCZOS (anti-aliased edges). Its enclosing circle has a random radius (a diameter of 40-80% of the
image), a random centre that keeps it inside the frame and a random rotation, limited only where turning
would change what a person calls it (a heart upside down, a house on its roof, a rotated letter).
Colour and background are not drawn here (:mod:`dgn.data.synthetic`).

Each class is a list of primitives in unit coordinates (x right, y down, inside the unit circle):
``("poly", points, fill)``, ``("disc", (x, y), radius, fill)``, ``("pie", (x, y), radius, start°, end°, fill)``
(PIL's clockwise angles) or ``("text", char)``; fill 255 draws, 0 carves.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 4


# helpers: outlines in unit coordinates


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], 1)  # (n, 2)


def _star() -> np.ndarray:
    outer = _regular(5, -math.pi / 2)
    inner = 0.48 * _regular(5, -math.pi / 2 + math.pi / 5)  # fat arms: reads as a star at 64 px
    return np.stack([outer, inner], 1).reshape(10, 2)


def _plus(w: float = 0.36) -> np.ndarray:
    a = w  # half arm width
    return np.array([
        (-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a),
        (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a),
    ]) / math.hypot(1, a)


def _arrow() -> np.ndarray:
    # points along +x: shaft from x=-1 to the head base, head to x=+1
    shaft, head, base = 0.26, 0.66, 0.0
    return np.array([
        (-1, -shaft), (base, -shaft), (base, -head), (1, 0),
        (base, head), (base, shaft), (-1, shaft),
    ]) / math.hypot(1, shaft)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))  # image y points down
    pts = np.stack([x, y + 2.5], 1)  # roughly centre the bounding box
    return pts / np.abs(pts).max() / 1.05


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], float)


def _poly(pts, fill: int = 255) -> tuple:
    return ("poly", np.asarray(pts, float), fill)


def _disc(x: float, y: float, r: float, fill: int = 255) -> tuple:
    return ("disc", (x, y), r, fill)


Builder = Callable[[np.random.Generator], list]  # rng → primitives (a builder may draw its own variation)


def _fixed(*prims) -> Builder:
    return lambda rng: list(prims)


SILHOUETTES: dict[str, Builder] = {
    "circle": _fixed(_disc(0, 0, 1)),
    "square": _fixed(_poly(_regular(4, math.pi / 4))),
    "triangle": _fixed(_poly(_regular(3, -math.pi / 2))),
    "star": _fixed(_poly(_star())),
    "plus": _fixed(_poly(_plus())),
    "ring": lambda rng: [_disc(0, 0, 1), _disc(0, 0, rng.uniform(0.45, 0.58), 0)],
    "crescent": lambda rng: [_disc(0, 0, 1), _disc(rng.uniform(0.42, 0.55), 0, rng.uniform(0.82, 0.92), 0)],
    "arrow": _fixed(_poly(_arrow())),
    "hexagon": _fixed(_poly(_regular(6))),
    "heart": _fixed(_poly(_heart())),
    "semicircle": _fixed(("pie", (0, 0.4), 0.91, 180, 360, 255)),  # the flat edge's ends touch the unit circle
    # icons
    "bolt": _fixed(_poly(np.array([(0.3, -1), (-0.5, 0.12), (-0.04, 0.12), (-0.3, 1), (0.5, -0.14),
                                   (0.04, -0.14)]) / 1.05)),
    "drop": _fixed(_disc(0, 0.32, 0.62), _poly([(-0.56, 0.06), (0.56, 0.06), (0, -0.95)])),
    "house": _fixed(_poly(_rect(-0.6, -0.1, 0.6, 0.78)), _poly([(-0.85, -0.05), (0.85, -0.05), (0, -0.85)]),
                    _poly(_rect(-0.17, 0.3, 0.17, 0.79), 0)),
    "cloud": _fixed(_disc(-0.5, 0.18, 0.36), _disc(0.5, 0.18, 0.36), _disc(-0.05, -0.12, 0.5),
                    _poly(_rect(-0.5, 0.1, 0.5, 0.54))),
    "tree": _fixed(_poly([(0, -0.97), (-0.5, -0.28), (0.5, -0.28)]), _poly([(0, -0.58), (-0.72, 0.4), (0.72, 0.4)]),
                   _poly(_rect(-0.15, 0.38, 0.15, 0.95))),
    "hourglass": _fixed(_poly(np.array([(-0.6, -0.85), (0.6, -0.85), (0.13, 0), (0.6, 0.85), (-0.6, 0.85),
                                        (-0.13, 0)]) / 1.05)),
    "bone": _fixed(_poly(_rect(-0.62, -0.16, 0.62, 0.16)), _disc(-0.68, -0.2, 0.26), _disc(-0.68, 0.2, 0.26),
                   _disc(0.68, -0.2, 0.26), _disc(0.68, 0.2, 0.26)),
    "pacman": _fixed(("pie", (0, 0), 1.0, 35, 325, 255)),
    "keyhole": _fixed(_disc(0, -0.42, 0.48), _poly([(-0.2, -0.3), (0.2, -0.3), (0.45, 0.88), (-0.45, 0.88)])),
    "mushroom": _fixed(("pie", (0, 0.12), 0.88, 180, 360, 255), _poly(_rect(-0.26, 0.1, 0.26, 0.82))),
}
GLYPHS = ("A", "E", "G", "H", "K", "M", "R", "S", "3", "7")
SILHOUETTES.update({ch: _fixed(("text", ch)) for ch in GLYPHS})

FAMILIES: dict[str, tuple[str, ...]] = {  # class names, indexed by label
    "shapes": ("circle", "square", "triangle", "star", "plus", "ring", "crescent", "arrow", "semicircle", "heart"),
    "icons": ("bolt", "drop", "house", "cloud", "tree", "hourglass", "bone", "pacman", "keyhole", "mushroom"),
    "glyphs": GLYPHS,
    "hues": ("circle", "square", "triangle", "star", "plus", "ring", "crescent", "arrow", "hexagon", "heart"),
}

UPRIGHT = math.radians(25)  # the most a class whose name depends on which way is up may turn
MAX_TURN: dict[str, float] = {  # default: any rotation
    "heart": UPRIGHT,
    **{k: UPRIGHT for k in ("drop", "house", "cloud", "tree", "keyhole", "mushroom")},
    **{k: math.radians(15) for k in GLYPHS},
}
GLYPH_STROKE = 0.05  # stroke width added around each glyph, as a share of the font size (bold at 64 px)


def names(family: str) -> list[str]:
    return list(FAMILIES[family])


@functools.lru_cache(maxsize=256)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=64)
def _glyph_extent(ch: str) -> tuple[float, float, float]:
    """(half-diagonal, box centre x, box centre y) of ``ch`` at font size 100 with its stroke, anchor 'mm'."""
    x0, y0, x1, y1 = _font(100).getbbox(ch, anchor="mm", stroke_width=round(GLYPH_STROKE * 100))
    return math.hypot(x1 - x0, y1 - y0) / 2, (x0 + x1) / 2, (y0 + y1) / 2


def _draw(d: ImageDraw.ImageDraw, im: Image.Image, prim: tuple, cx: float, cy: float, r: float,
          theta: float) -> Image.Image:
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, s], [-s, c]])  # row vectors: (x, y) @ rot turns by theta (clockwise on screen)

    def at(x: float, y: float) -> tuple[float, float]:
        px, py = np.array([x, y]) @ rot
        return cx + px * r, cy + py * r

    kind = prim[0]
    if kind == "poly":
        xy = prim[1] @ rot * r + (cx, cy)
        d.polygon([tuple(p) for p in xy.tolist()], fill=prim[2])
    elif kind == "disc":
        x, y = at(*prim[1])
        rad = prim[2] * r
        d.ellipse((x - rad, y - rad, x + rad, y + rad), fill=prim[3])
    elif kind == "pie":
        x, y = at(*prim[1])
        rad, deg = prim[2] * r, math.degrees(theta)
        d.pieslice((x - rad, y - rad, x + rad, y + rad), prim[3] + deg, prim[4] + deg, fill=prim[5])
    elif kind == "text":  # the glyph's box centred on (cx, cy), its half-diagonal = r, then turned
        half, bx, by = _glyph_extent(prim[1])
        size = max(4, round(100 * r / half))
        k = size / 100
        d.text((cx - bx * k, cy - by * k), prim[1], fill=255, font=_font(size), anchor="mm",
               stroke_width=round(GLYPH_STROKE * size), stroke_fill=255)
        im = im.rotate(-math.degrees(theta), resample=Image.Resampling.BICUBIC, center=(cx, cy))
    else:
        raise AssertionError(kind)
    return im


def mask(family: str, label: int, rng: np.random.Generator, size: int, *, radius: float | None = None,
         centre: tuple[float, float] | None = None) -> np.ndarray:
    """Coverage of class ``label``'s silhouette in [0, 1], float32 (size, size); always inside the frame.

    ``radius`` / ``centre`` (pixels) fix the enclosing circle instead of drawing it (the cue-conflict bench
    draws small copies of a class inside a large one); the caller keeps such a circle inside the frame.
    """
    name = names(family)[label]
    # radius of the enclosing circle; its diameter is 40-80% of the image, so the
    # visible extent of every shape (a triangle is narrower than its circle) spans ~35-75%
    r = rng.uniform(0.2, 0.4) * size if radius is None else float(radius)
    margin = 1.0
    cx, cy = rng.uniform(r + margin, size - r - margin, 2) if centre is None else centre
    turn = MAX_TURN.get(name, math.pi)
    theta = rng.uniform(-turn, turn)
    prims = SILHOUETTES[name](rng)

    # draw only the shape's box (plus the LANCZOS footprint) at SUPERSAMPLE x: ~2x faster
    x0, y0 = max(0, int(cx - r) - 3), max(0, int(cy - r) - 3)
    x1, y1 = min(size, int(cx + r) + 4), min(size, int(cy + r) + 4)
    s = SUPERSAMPLE
    cxs, cys, rs = (cx - x0) * s, (cy - y0) * s, r * s
    im = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    for prim in prims:
        im = _draw(ImageDraw.Draw(im), im, prim, cxs, cys, rs, theta)
    out = np.zeros((size, size), np.float32)
    small = im.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
    out[y0:y1, x0:x1] = np.asarray(small, np.float32) / 255.0
    return out
