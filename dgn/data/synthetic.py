"""The embedded synthetic datasets: silhouettes whose shape alone decides the class.

Kinds (``write_synthetic(uri, kind=...)``, ``flows/prepare_data.py --synthetic KIND``; docs/datasets.md):

- ``shapes`` — the embedded default and the one development dataset (``DEVELOPMENT``): circle, square,
  triangle, star, plus, ring, crescent, arrow, semicircle, heart.
- ``glyphs``, ``icons`` — held out (``HELD_OUT``): no default is tuned on them; ten letters/digits, and ten
  pictograms (bolt, drop, house, ...) unlike the default's shapes.
- ``hues`` — the earlier default, byte for byte: the ``shapes`` silhouettes with a hexagon for the semicircle,
  each class in its own base hue, so colour alone tells the class. Kept only as the colour-reading control of
  ``bench/cue_conflict.py``.

In every kind but ``hues``, everything except the silhouette is drawn independently of the class: the
foreground colour (any hue, saturation and value), the background colour and pattern (flat, gradient, smooth
noise or stripes), size, position and rotation (limited where turning changes the name, :mod:`dgn.data.shapes`).
The one coupling is contrast: the background's base colour differs from the shape's in luminance by at least
``CONTRAST`` (the shape is lighter or darker at random; a pattern moves it by at most ~0.15), so a person always
sees the silhouette.

Everything is a pure function of a numpy Generator, so a (seed, split, kind) triple always gives the same
bytes. Coverage masks are drawn with PIL at 4x (:mod:`dgn.data.shapes`); colour, shading and background are
composed in numpy at the final size: 9000 64-px images in ~10 s on one core (glyphs ~20 s).

    from dgn.data.synthetic import write_synthetic
    meta = write_synthetic("/tmp/shapes")                  # 8000 train + 1000 val rows of the default
    meta = write_synthetic("/tmp/glyphs", kind="glyphs")   # a held-out kind
"""

from __future__ import annotations

import colorsys
import functools
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dgn.data import shapes
from dgn.data.parquet import read_meta, write_split
from dgn.errors import DGNError


@dataclass(frozen=True)
class Kind:
    family: str   # the silhouettes: a family of dgn.data.shapes
    colours: str  # "random": colour independent of the class; "class": a base hue per class (hues)


KINDS = {
    "shapes": Kind("shapes", "random"),
    "glyphs": Kind("glyphs", "random"),
    "icons": Kind("icons", "random"),
    "hues": Kind("hues", "class"),
}
DEFAULT_KIND = "shapes"
DEVELOPMENT = ("shapes",)  # settings are tuned on these ...
HELD_OUT = ("glyphs", "icons")  # ... and reported on these too; nothing is ever tuned on them
CLASS_NAMES = shapes.names(KINDS[DEFAULT_KIND].family)  # the default's classes, indexed by label
CONTRAST = 0.35  # least |luminance(background) - luminance(shape)| in random-colour kinds (luminance in [0, 1])
HUE_JITTER = 0.05  # hues: ± around a class's base hue; base hues are 0.1 apart, so classes' hues stay disjoint
SPLIT_STREAMS = {"train": 0, "val": 1}  # separate random streams per split


def check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise DGNError(f"synthetic kind {kind!r} is not one of {', '.join(KINDS)}.")
    return KINDS[kind]


def class_names(kind: str = DEFAULT_KIND) -> list[str]:
    """The classes of ``kind``, indexed by label."""
    return shapes.names(check_kind(kind).family)


# helpers: colour


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


def _class_hue_colour(label: int, rng: np.random.Generator, n_classes: int) -> np.ndarray:
    hue = label / n_classes + rng.uniform(-HUE_JITTER, HUE_JITTER)
    return _hsv(hue, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))


def _muted_background_colour(fg: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """hues: a low-saturation colour whose luminance is far from the foreground's; returns (rgb, dark)."""
    fl = _luma(fg)
    fg_hue = colorsys.rgb_to_hsv(*fg.tolist())[0]
    dark = fl > 0.5 if abs(fl - 0.5) > 0.08 else bool(rng.integers(2))
    for _ in range(20):
        v = rng.uniform(0.05, 0.3) if dark else rng.uniform(0.8, 1.0)
        bg = _hsv(fg_hue + rng.uniform(0.15, 0.85), rng.uniform(0.0, 0.45), v)  # never the shape's hue
        if abs(_luma(bg) - fl) >= 0.3:
            return bg, dark
    return (np.full(3, 0.08, np.float32) if dark else np.full(3, 0.95, np.float32)), dark


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.uniform(), rng.uniform(0.0, 1.0), rng.uniform(0.1, 1.0))


def _contrasting_colour(fg: np.ndarray, rng: np.random.Generator, dark: bool | None = None) -> tuple[np.ndarray, bool]:
    """Any colour at least CONTRAST darker (``dark``) or lighter than ``fg`` in luminance; None: either, at random."""
    fl = _luma(fg)
    if dark is None:  # a side with room for the contrast; both: a coin
        can_dark, can_light = fl >= CONTRAST + 0.02, fl <= 1 - CONTRAST - 0.02
        dark = bool(rng.integers(2)) if can_dark and can_light else can_dark
    for _ in range(50):
        bg = _hsv(rng.uniform(), rng.uniform(0.0, 1.0), rng.uniform(0.0, 1.0))
        if (fl - _luma(bg) if dark else _luma(bg) - fl) >= CONTRAST:
            return bg, dark
    return np.full(3, 0.0 if dark else 1.0, np.float32), dark


def foreground_colour(kind: str, label: int, rng: np.random.Generator) -> np.ndarray:
    """The shape's RGB in [0, 1], (3,); only ``hues`` looks at ``label``."""
    k = check_kind(kind)
    if k.colours == "class":
        return _class_hue_colour(label, rng, len(shapes.names(k.family)))
    return _random_colour(rng)


# helpers: background


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5  # (2, size, size) in [-0.5, 0.5]
    return yy, xx


def _ramp(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear ramp in [-1, 1] across the image in a random direction, (size, size)."""
    a = rng.uniform(0, 2 * math.pi)
    yy, xx = _grid(size)
    return (xx * math.cos(a) + yy * math.sin(a)) * math.sqrt(2)


def background(kind: str, fg: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A background for a shape of colour ``fg``: float (size, size, 3) in [0, 1], flat, gradient, noise or stripes."""
    muted = check_kind(kind).colours == "class"
    base, dark = _muted_background_colour(fg, rng) if muted else _contrasting_colour(fg, rng)
    pattern = rng.choice(["flat", "gradient", "noise", "stripes"])
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    # amplitudes are kept small; a gradient's second colour is on the same side of the shape's luminance
    amp = 0.12
    if pattern == "gradient":
        other, _ = _muted_background_colour(fg, rng) if muted else _contrasting_colour(fg, rng, dark)
        t = (_ramp(rng, size)[..., None] + 1) / 2
        img = base * (1 - t) + other * t
    elif pattern == "noise":
        cells = int(rng.integers(4, 12))
        coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))
        img = img + amp * smooth[..., None]
    elif pattern == "stripes":
        freq = rng.uniform(3, 9)
        wave = np.sin(2 * math.pi * freq * _ramp(rng, size) / 2 + rng.uniform(0, 2 * math.pi))
        img = img + 0.7 * amp * wave[..., None]
    if muted:  # hues: pushed away from the foreground's luminance
        lo, hi = (0.0, 0.42) if dark else (0.7, 1.0)
        return np.clip(img, lo, hi)
    return np.clip(img, 0.0, 1.0)


def compose(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The shape (coverage ``alpha`` (H, W), colour ``fg``, slight directional light) over ``bg`` → uint8 (H, W, 3)."""
    a = alpha[..., None]  # (H, W, 1)
    shade = 1 + rng.uniform(0.05, 0.18) * _ramp(rng, alpha.shape[0])[..., None]
    fgi = np.clip(fg * shade, 0, 1)
    img = bg * (1 - a) + fgi * a
    return (img * 255 + 0.5).astype(np.uint8)


def render(label: int, rng: np.random.Generator, image_size: int = 64, *, kind: str = DEFAULT_KIND,
           colour_of: int | None = None) -> np.ndarray:
    """One image of class ``label`` of ``kind`` as uint8 (image_size, image_size, 3) RGB.

    ``colour_of``: draw the colours as for this class instead (cue-conflict images, ``bench/cue_conflict.py``);
    it changes the distribution only where colour depends on the class (``hues``).
    """
    k = check_kind(kind)
    n = len(shapes.names(k.family))
    for what, v in (("label", label), ("colour_of class", label if colour_of is None else colour_of)):
        if not 0 <= v < n:
            raise DGNError(f"synthetic {what} {v} is out of range for kind {kind!r}; valid labels are 0..{n - 1}.")
    if image_size < 16:
        raise DGNError(f"image_size {image_size} is too small for the synthetic shapes; use 16 or more.")
    fg = foreground_colour(kind, label if colour_of is None else colour_of, rng)
    bg = background(kind, fg, rng, image_size)  # (H, W, 3) float
    alpha = shapes.mask(k.family, label, rng, image_size)  # (H, W)
    return compose(alpha, fg, bg, rng)


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make_rows(split: str, n: int, *, seed: int = 0, image_size: int = 64, kind: str = DEFAULT_KIND) -> Iterator[dict]:
    """``n`` rows {image: PNG bytes, label, label_name}, classes balanced and interleaved.

    Deterministic in (seed, split, kind); train and val draw from different streams.
    """
    names = class_names(kind)
    if split not in SPLIT_STREAMS:
        raise DGNError(f"split {split!r} is not one of {', '.join(SPLIT_STREAMS)}.")
    if n < 0:
        raise DGNError(f"row count {n} is negative; use 0 or more.")
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    # a balanced label sequence (counts differ by at most one), in random order
    labels = rng.permutation(np.arange(n) % len(names))
    for label in labels.tolist():
        img = render(label, rng, image_size, kind=kind)
        yield {"image": _png(img), "label": label, "label_name": names[label]}


def montage(kind: str = DEFAULT_KIND, *, per_class: int = 8, image_size: int = 64, seed: int = 0,
            pad: int = 2) -> np.ndarray:
    """A uint8 grid (a row per class, ``per_class`` fresh draws each) for looking at a kind; docs/datasets.md."""
    names = class_names(kind)
    rng = np.random.default_rng([seed, 99])
    step = image_size + pad
    out = np.full((len(names) * step + pad, per_class * step + pad, 3), 255, np.uint8)
    for label in range(len(names)):
        for j in range(per_class):
            y, x = pad + label * step, pad + j * step
            out[y:y + image_size, x:x + image_size] = render(label, rng, image_size, kind=kind)
    return out


def write_synthetic(uri: str, *, kind: str = DEFAULT_KIND, n_train: int = 8000, n_val: int = 1000, seed: int = 0,
                    image_size: int = 64):
    """Write the synthetic dataset ``kind`` to ``uri`` (local dir or s3://) and return its DatasetMeta."""
    k = len(class_names(kind))
    for split, n in (("train", n_train), ("val", n_val)):
        if n < k:
            raise DGNError(f"{split} size {n} is smaller than the {k} classes; use at least {k} rows per split.")
    if image_size < 16:
        raise DGNError(f"image_size {image_size} is too small for the synthetic shapes; use 16 or more.")
    for split, n in (("train", n_train), ("val", n_val)):
        write_split(make_rows(split, n, seed=seed, image_size=image_size, kind=kind), uri, split)
    return read_meta(uri)
