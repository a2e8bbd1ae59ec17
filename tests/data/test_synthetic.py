"""The embedded synthetic dataset: deterministic, balanced, varied, shapes inside the frame."""

import colorsys
import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from dgn.data import CLASS_NAMES, make_rows, render
from dgn.data.synthetic import _foreground_colour, _mask
from dgn.errors import DGNError


def test_same_seed_same_bytes():
    a = [r["image"] for r in make_rows("train", 12, seed=4)]
    b = [r["image"] for r in make_rows("train", 12, seed=4)]
    c = [r["image"] for r in make_rows("train", 12, seed=5)]
    assert a == b and a != c


def test_train_and_val_streams_differ():
    train = {r["image"] for r in make_rows("train", 20, seed=0)}
    val = {r["image"] for r in make_rows("val", 20, seed=0)}
    assert not train & val


def test_classes_present_and_balanced():
    rows = list(make_rows("train", 53, seed=1, image_size=32))
    counts = Counter(r["label"] for r in rows)
    assert sorted(counts) == list(range(len(CLASS_NAMES))) and max(counts.values()) - min(counts.values()) <= 1
    assert all(r["label_name"] == CLASS_NAMES[r["label"]] for r in rows)
    assert len(CLASS_NAMES) >= 10 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)


@pytest.mark.parametrize("colour", ["class", "random", "grey"])
def test_images_are_png_rgb_and_vary(colour):
    rows = list(make_rows("val", 20, seed=2, image_size=48, colour=colour))
    imgs = [np.asarray(Image.open(io.BytesIO(r["image"]))) for r in rows]
    assert all(im.shape == (48, 48, 3) and im.dtype == np.uint8 for im in imgs)
    assert all(im.std() > 10 for im in imgs)  # never a constant image
    assert len({im.tobytes() for im in imgs}) == len(imgs)


def test_shape_contrasts_and_stays_in_frame():
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASS_NAMES):
        for _ in range(8):
            m = _mask(name, rng, 64)
            border = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]])
            assert border.max() < 0.1, name
            area = m.sum() / 64 ** 2
            assert 0.04 < area < 0.6, (name, area)
        img = render(label, rng, 64).astype(float)
        assert img.max() - img.min() > 80  # foreground and background contrast


def test_class_colour_is_informative():
    rng = np.random.default_rng(0)
    for label in range(len(CLASS_NAMES)):
        for _ in range(10):
            h, s, v = colorsys.rgb_to_hsv(*_foreground_colour(label, rng, "class").tolist())
            d = abs((h - label / len(CLASS_NAMES) + 0.5) % 1 - 0.5)  # circular hue distance
            assert d <= 0.051 and 0.55 <= s <= 1 and 0.6 <= v <= 1


@pytest.mark.parametrize("jitter", [0.0, 0.15, 0.5])
def test_hue_jitter_sets_the_spread_of_a_class_hue(jitter):
    rng = np.random.default_rng(1)
    d = []
    for _ in range(200):
        h, _, _ = colorsys.rgb_to_hsv(*_foreground_colour(3, rng, "class", jitter).tolist())
        d.append(abs((h - 0.3 + 0.5) % 1 - 0.5))
    assert max(d) <= jitter + 1e-3 and max(d) >= 0.8 * jitter  # fills its range, never beyond


def test_cue_conflict_and_grey_images_change_only_the_colour_of_the_shape():
    rng = np.random.default_rng(7)
    for _ in range(5):
        img = render(1, rng, 32, hue_class=6) / 255.0  # a square in the crescent's colour
        hsv = np.array([colorsys.rgb_to_hsv(*p) for p in img.reshape(-1, 3)])
        fg = hsv[:, 1] > 0.52  # the shape (saturation ≥ 0.55; backgrounds ≤ 0.45)
        assert fg.mean() > 0.03
        hue = np.angle(np.exp(2j * np.pi * hsv[fg, 0]).mean()) / (2 * np.pi) % 1  # circular mean
        assert abs((hue - 0.6 + 0.5) % 1 - 0.5) < 0.06
    for label in range(len(CLASS_NAMES)):
        _, s, v = colorsys.rgb_to_hsv(*_foreground_colour(label, rng, "grey").tolist())
        assert s == 0 and 0.6 <= v <= 1  # shape alone: no hue


def test_bad_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(DGNError, match="label 10"):
        render(10, rng)
    with pytest.raises(DGNError, match="colour"):
        render(0, rng, colour="blue")
    with pytest.raises(DGNError, match="split"):
        next(make_rows("test", 3))
    with pytest.raises(DGNError, match="hue_jitter 0.7"):
        render(0, rng, hue_jitter=0.7)
    with pytest.raises(DGNError, match="hue_class 11"):
        render(0, rng, hue_class=11)
