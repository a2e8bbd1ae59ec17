"""The synthetic datasets: deterministic, balanced, varied, and (but for hues) colour independent of the class."""

import colorsys
import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from dgn.data import CLASS_NAMES, make_rows, render, synthetic
from dgn.data.synthetic import (CONTRAST, DEFAULT_KIND, DEVELOPMENT, HELD_OUT, KINDS, _luma, background,
                                class_names, foreground_colour, write_synthetic)
from dgn.errors import DGNError

RANDOM_COLOUR_KINDS = [k for k in KINDS if KINDS[k].colours == "random"]


def test_kinds_development_and_held_out():
    assert DEFAULT_KIND == "shapes" and DEVELOPMENT == ("shapes",) and set(HELD_OUT) == {"glyphs", "icons"}
    assert not set(DEVELOPMENT) & set(HELD_OUT) and set(DEVELOPMENT + HELD_OUT) <= set(KINDS)
    assert CLASS_NAMES == class_names() == class_names("shapes")
    for kind in KINDS:
        names = class_names(kind)
        assert len(names) == 10 and len(set(names)) == 10, kind
    # the held-out kinds share no class with the development kind
    for kind in HELD_OUT:
        assert not set(class_names(kind)) & set(class_names("shapes")), kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_same_seed_same_bytes(kind):
    a = [r["image"] for r in make_rows("train", 12, seed=4, kind=kind)]
    b = [r["image"] for r in make_rows("train", 12, seed=4, kind=kind)]
    c = [r["image"] for r in make_rows("train", 12, seed=5, kind=kind)]
    assert a == b and a != c


def test_train_and_val_streams_differ():
    train = {r["image"] for r in make_rows("train", 20, seed=0)}
    val = {r["image"] for r in make_rows("val", 20, seed=0)}
    assert not train & val


@pytest.mark.parametrize("kind", list(KINDS))
def test_classes_present_and_balanced(kind):
    rows = list(make_rows("train", 53, seed=1, image_size=32, kind=kind))
    counts = Counter(r["label"] for r in rows)
    assert sorted(counts) == list(range(10)) and max(counts.values()) - min(counts.values()) <= 1
    assert all(r["label_name"] == class_names(kind)[r["label"]] for r in rows)


@pytest.mark.parametrize("kind", list(KINDS))
def test_images_are_png_rgb_and_vary(kind):
    rows = list(make_rows("val", 20, seed=2, image_size=48, kind=kind))
    imgs = [np.asarray(Image.open(io.BytesIO(r["image"]))) for r in rows]
    assert all(im.shape == (48, 48, 3) and im.dtype == np.uint8 for im in imgs)
    assert all(im.std() > 10 for im in imgs)  # never a constant image
    assert len({im.tobytes() for im in imgs}) == len(imgs)


@pytest.mark.parametrize("kind", RANDOM_COLOUR_KINDS)
def test_background_contrasts_with_the_shape(kind):
    rng = np.random.default_rng(3)
    darker = 0
    for _ in range(200):
        fg = foreground_colour(kind, 0, rng)
        bg = background(kind, fg, rng, 16)  # (16, 16, 3)
        lum = bg.reshape(-1, 3) @ np.array([0.299, 0.587, 0.114])
        gap = np.abs(lum - _luma(fg))
        assert gap.mean() >= CONTRAST - 0.05 and gap.min() >= CONTRAST - 0.16  # patterns: ±0.12 (bicubic noise ±0.15)
        darker += lum.mean() < _luma(fg)
    assert 40 < darker < 160  # the shape is lighter or darker at random


def _mean_rgb_probe(kind: str, n_per_class: int = 60, seed: int = 0) -> float:
    """Val accuracy of a least-squares linear classifier (one-hot targets) on each image's mean RGB."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n_per_class):
        for label in range(10):
            X.append(render(label, rng, 24, kind=kind).reshape(-1, 3).mean(0) / 255)
            y.append(label)
    X = np.c_[np.array(X), np.ones(len(X))]  # (N, 4) with a bias column
    y = np.array(y)
    half = len(y) // 2
    W, *_ = np.linalg.lstsq(X[:half], np.eye(10)[y[:half]], rcond=None)  # (4, 10)
    return float(((X[half:] @ W).argmax(1) == y[half:]).mean())


@pytest.mark.parametrize("kind", RANDOM_COLOUR_KINDS)
def test_colour_is_independent_of_the_class(kind):
    # a colour-only classifier is at chance (0.1; 300 test images: 2 sigma ≈ 0.035) ...
    assert _mean_rgb_probe(kind) < 0.17
    # ... and the per-class foreground hue histograms are alike
    rng = np.random.default_rng(1)
    hist = np.stack([np.histogram([colorsys.rgb_to_hsv(*foreground_colour(kind, label, rng).tolist())[0]
                                   for _ in range(400)], bins=6, range=(0, 1))[0] / 400 for label in range(10)])
    assert np.abs(hist - hist.mean(0)).max() < 0.08  # each bin ≈ 1/6 ± sampling noise (σ ≈ 0.019)


def test_the_probe_sees_colour_where_it_is_coded():
    assert _mean_rgb_probe("hues") > 0.3  # the control (chance 0.1): the same probe reads the hue code of hues


def test_colour_of_changes_only_hue_coded_kinds():
    a = render(1, np.random.default_rng(9), 32, kind="shapes", colour_of=6)
    b = render(1, np.random.default_rng(9), 32, kind="shapes")
    assert np.array_equal(a, b)  # colours never depend on the class here
    for _ in range(5):
        img = render(1, np.random.default_rng(_), 32, kind="hues", colour_of=6) / 255.0  # a square in class 6's hue
        hsv = np.array([colorsys.rgb_to_hsv(*p) for p in img.reshape(-1, 3)])
        fg = hsv[:, 1] > 0.52  # the shape (saturation ≥ 0.55; hues backgrounds ≤ 0.45)
        hue = np.angle(np.exp(2j * np.pi * hsv[fg, 0]).mean()) / (2 * np.pi) % 1  # circular mean
        assert abs((hue - 0.6 + 0.5) % 1 - 0.5) < 0.06


def test_hues_class_colour_is_informative():
    rng = np.random.default_rng(0)
    for label in range(10):
        for _ in range(10):
            h, s, v = colorsys.rgb_to_hsv(*foreground_colour("hues", label, rng).tolist())
            d = abs((h - label / 10 + 0.5) % 1 - 0.5)  # circular hue distance
            assert d <= synthetic.HUE_JITTER + 1e-3 and 0.55 <= s <= 1 and 0.6 <= v <= 1


def test_shape_and_background_contrast_in_every_image():
    rng = np.random.default_rng(0)
    for kind in KINDS:
        for label in range(10):
            img = render(label, rng, 64, kind=kind).astype(float)
            assert img.max() - img.min() > 60, (kind, label)


@pytest.mark.parametrize("kind", ["shapes", "glyphs"])
def test_write_synthetic_kind_reads_back(tmp_path, kind):
    from dgn.data import load_split

    meta = write_synthetic(str(tmp_path / kind), kind=kind, n_train=20, n_val=10, image_size=16)
    assert meta.class_names == class_names(kind) and meta.counts == {"train": 20, "val": 10}
    x, y = load_split(str(tmp_path / kind), "val", image_size=16)
    assert x.shape == (10, 3, 16, 16) and sorted(y.tolist()) == list(range(10))


def test_bad_arguments_raise(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(DGNError, match="label 10"):
        render(10, rng)
    with pytest.raises(DGNError, match="kind 'blue'.*shapes, glyphs, icons, hues"):
        render(0, rng, kind="blue")
    with pytest.raises(DGNError, match="colour_of class 11"):
        render(0, rng, colour_of=11)
    with pytest.raises(DGNError, match="image_size 8"):
        render(0, rng, 8)
    with pytest.raises(DGNError, match="split"):
        next(make_rows("test", 3))
    with pytest.raises(DGNError, match="kind 'x'"):
        next(make_rows("train", 3, kind="x"))
    with pytest.raises(DGNError, match="train size 5 is smaller than the 10 classes"):
        write_synthetic(str(tmp_path / "d"), n_train=5)
