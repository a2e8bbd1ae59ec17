"""The embedded synthetic dataset: bold shapes a person names at a glance.

Ten classes of filled shapes, each with its own base hue (like natural
categories, colour is informative but not decisive), drawn at random scale,
position, rotation and on a random background that contrasts with the shape
in luminance. Everything is a pure function of a numpy Generator, so a
(seed, split) pair always gives the same bytes.

Drawing: the shape's coverage mask is drawn with PIL at 4x and downsampled
with LANCZOS (anti-aliased edges); colour, shading and background are
composed in numpy at the final size, which keeps 9000 64-px images to a few
seconds on one core.

    from dgn.data.synthetic import write_synthetic
    meta = write_synthetic("/tmp/shapes")        # 8000 train + 1000 val rows
"""

from __future__ import annotations

import colorsys
import functools
import io
import math
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

from dgn.errors import DGNError

CLASS_NAMES = [
    "circle", "square", "triangle", "star", "plus",
    "ring", "crescent", "arrow", "hexagon", "heart",
]
COLOURS = ("class", "random", "grey")  # grey: shape alone (a grey shape on a contrasting background)
HUE_JITTER = 0.05  # ± around a class's base hue; base hues are 0.1 apart, so 0.05 keeps classes' hues disjoint
SUPERSAMPLE = 4
SPLIT_STREAMS = {"train": 0, "val": 1}  # separate random streams per split


# helpers: shape outlines in unit coordinates (fit inside the unit circle)

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


_POLYGONS = {
    "square": _regular(4, math.pi / 4),
    "triangle": _regular(3, -math.pi / 2),
    "star": _star(),
    "plus": _plus(),
    "arrow": _arrow(),
    "hexagon": _regular(6),
    "heart": _heart(),
}
# hearts upside down stop being hearts; everything else turns freely
_MAX_TURN = {"heart": math.radians(25)}


def _mask(name: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Coverage of the shape in [0, 1], float32 (size, size); always fully inside the frame."""
    # radius of the enclosing circle; its diameter is 40-80% of the image, so the
    # visible extent of every shape (a triangle is narrower than its circle) spans ~35-75%
    r = rng.uniform(0.2, 0.4) * size
    margin = 1.0
    cx, cy = rng.uniform(r + margin, size - r - margin, 2)
    turn = _MAX_TURN.get(name, math.pi)
    theta = rng.uniform(-turn, turn)

    # draw only the shape's box (plus the LANCZOS footprint) at SUPERSAMPLE x: ~2x faster
    x0, y0 = max(0, int(cx - r) - 3), max(0, int(cy - r) - 3)
    x1, y1 = min(size, int(cx + r) + 4), min(size, int(cy + r) + 4)
    s = SUPERSAMPLE
    cx, cy, r = (cx - x0) * s, (cy - y0) * s, r * s
    im = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    d = ImageDraw.Draw(im)

    def disc(x, y, rad, fill):
        d.ellipse((x - rad, y - rad, x + rad, y + rad), fill=fill)

    if name == "circle":
        disc(cx, cy, r, 255)
    elif name == "ring":
        disc(cx, cy, r, 255)
        disc(cx, cy, r * rng.uniform(0.45, 0.58), 0)
    elif name == "crescent":
        disc(cx, cy, r, 255)
        off = r * rng.uniform(0.42, 0.55)
        disc(cx + off * math.cos(theta), cy + off * math.sin(theta), r * rng.uniform(0.82, 0.92), 0)
    else:
        pts = _POLYGONS[name]
        c, sn = math.cos(theta), math.sin(theta)
        rot = pts @ np.array([[c, sn], [-sn, c]])
        xy = rot * r + (cx, cy)
        d.polygon([tuple(p) for p in xy.tolist()], fill=255)
    mask = np.zeros((size, size), np.float32)
    small = im.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
    mask[y0:y1, x0:x1] = np.asarray(small, np.float32) / 255.0
    return mask


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


def _foreground_colour(label: int, rng: np.random.Generator, colour: str, hue_jitter: float = HUE_JITTER) -> np.ndarray:
    if colour == "class":
        hue = label / len(CLASS_NAMES) + rng.uniform(-hue_jitter, hue_jitter)
    elif colour == "grey":
        return _hsv(0.0, 0.0, rng.uniform(0.6, 1.0))
    else:
        hue = rng.uniform()
    return _hsv(hue, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))


def _background_colour(fg: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """A low-saturation colour whose luminance is far from the foreground's; returns (rgb, dark)."""
    fl = _luma(fg)
    fg_hue = colorsys.rgb_to_hsv(*fg.tolist())[0]
    dark = fl > 0.5 if abs(fl - 0.5) > 0.08 else bool(rng.integers(2))
    for _ in range(20):
        v = rng.uniform(0.05, 0.3) if dark else rng.uniform(0.8, 1.0)
        bg = _hsv(fg_hue + rng.uniform(0.15, 0.85), rng.uniform(0.0, 0.45), v)  # never the shape's hue
        if abs(_luma(bg) - fl) >= 0.3:
            return bg, dark
    return (np.full(3, 0.08, np.float32) if dark else np.full(3, 0.95, np.float32)), dark


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5  # (2, size, size) in [-0.5, 0.5]
    return yy, xx


def _ramp(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear ramp in [-1, 1] across the image in a random direction, (size, size)."""
    a = rng.uniform(0, 2 * math.pi)
    yy, xx = _grid(size)
    return (xx * math.cos(a) + yy * math.sin(a)) * math.sqrt(2)


def _background(fg: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    base, dark = _background_colour(fg, rng)
    kind = rng.choice(["flat", "gradient", "noise", "stripes"])
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    # amplitudes are kept small and pushed away from the foreground's luminance
    amp = 0.12
    if kind == "gradient":
        other, _ = _background_colour(fg, rng)
        t = (_ramp(rng, size)[..., None] + 1) / 2
        img = base * (1 - t) + other * t
    elif kind == "noise":
        cells = int(rng.integers(4, 12))
        coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))
        img = img + amp * smooth[..., None]
    elif kind == "stripes":
        freq = rng.uniform(3, 9)
        wave = np.sin(2 * math.pi * freq * _ramp(rng, size) / 2 + rng.uniform(0, 2 * math.pi))
        img = img + 0.7 * amp * wave[..., None]
    lo, hi = (0.0, 0.42) if dark else (0.7, 1.0)
    return np.clip(img, lo, hi)


def render(label: int, rng: np.random.Generator, image_size: int = 64, colour: str = "class",
           hue_jitter: float = HUE_JITTER, hue_class: int | None = None) -> np.ndarray:
    """One image of class ``label`` as uint8 (image_size, image_size, 3) RGB.

    ``hue_jitter``: with ``colour="class"``, the foreground hue is the class's base hue ± this (hues in [0, 1),
    base hues 0.1 apart); above 0.05 neighbouring classes share hues and only shape tells them apart.
    ``hue_class``: draw ``label``'s shape in this class's colour instead (cue-conflict images:
    ``bench/cue_conflict.py``).
    """
    if not 0 <= label < len(CLASS_NAMES):
        raise DGNError(f"synthetic label {label} is out of range; valid labels are 0..{len(CLASS_NAMES) - 1}.")
    if colour not in COLOURS:
        raise DGNError(f"colour {colour!r} is not one of {', '.join(COLOURS)}.")
    if image_size < 16:
        raise DGNError(f"image_size {image_size} is too small for the synthetic shapes; use 16 or more.")
    if not 0 <= hue_jitter <= 0.5:
        raise DGNError(f"hue_jitter {hue_jitter} is out of range; use 0 to 0.5 (0.5: any hue).")
    hue_label = label if hue_class is None else hue_class
    if not 0 <= hue_label < len(CLASS_NAMES):
        raise DGNError(f"synthetic hue_class {hue_label} is out of range; valid classes are 0..{len(CLASS_NAMES) - 1}.")
    fg = _foreground_colour(hue_label, rng, colour, hue_jitter)
    bg = _background(fg, rng, image_size)  # (H, W, 3) float
    alpha = _mask(CLASS_NAMES[label], rng, image_size)[..., None]  # (H, W, 1)
    shade = 1 + rng.uniform(0.05, 0.18) * _ramp(rng, image_size)[..., None]  # slight directional light
    fgi = np.clip(fg * shade, 0, 1)
    img = bg * (1 - alpha) + fgi * alpha
    return (img * 255 + 0.5).astype(np.uint8)


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make_rows(split: str, n: int, *, seed: int = 0, image_size: int = 64, colour: str = "class",
              hue_jitter: float = HUE_JITTER) -> Iterator[dict]:
    """``n`` rows {image: PNG bytes, label, label_name}, classes balanced and interleaved.

    Deterministic in (seed, split); train and val draw from different streams.
    """
    if split not in SPLIT_STREAMS:
        raise DGNError(f"split {split!r} is not one of {', '.join(SPLIT_STREAMS)}.")
    if n < 0:
        raise DGNError(f"row count {n} is negative; use 0 or more.")
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    k = len(CLASS_NAMES)
    # a balanced label sequence (counts differ by at most one), in random order
    labels = rng.permutation(np.arange(n) % k)
    for label in labels.tolist():
        img = render(label, rng, image_size, colour, hue_jitter)
        yield {"image": _png(img), "label": label, "label_name": CLASS_NAMES[label]}


def write_synthetic(uri: str, *, n_train: int = 8000, n_val: int = 1000, seed: int = 0,
                    image_size: int = 64, colour: str = "class", hue_jitter: float = HUE_JITTER):
    """Write the synthetic dataset to ``uri`` (local dir or s3://) and return its DatasetMeta."""
    from dgn.data.parquet import read_meta, write_split

    for split, n in (("train", n_train), ("val", n_val)):
        if n < len(CLASS_NAMES):
            raise DGNError(f"{split} size {n} is smaller than the {len(CLASS_NAMES)} classes; "
                           f"use at least {len(CLASS_NAMES)} rows per split.")
        write_split(make_rows(split, n, seed=seed, image_size=image_size, colour=colour, hue_jitter=hue_jitter),
                    uri, split)
    return read_meta(uri)
