"""Silhouettes of every family: inside the frame, a sensible area, rotation limited where it changes the name."""

import math

import numpy as np
import pytest

from dgn.data import shapes


@pytest.mark.parametrize("family", list(shapes.FAMILIES))
def test_every_silhouette_stays_in_frame_with_a_sensible_area(family):
    rng = np.random.default_rng(0)
    for label, name in enumerate(shapes.names(family)):
        for _ in range(8):
            m = shapes.mask(family, label, rng, 64)
            assert m.dtype == np.float32 and m.shape == (64, 64) and 0 <= m.min() and m.max() <= 1
            border = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]])
            assert border.max() < 0.1, name
            area = m.sum() / 64 ** 2
            assert 0.02 < area < 0.6, (name, area)


@pytest.mark.parametrize("family", list(shapes.FAMILIES))
def test_classes_of_a_family_differ_at_a_fixed_pose(family):
    # the same enclosing circle and draw for every class: no two classes give the same mask
    masks = [shapes.mask(family, k, np.random.default_rng(5), 64, radius=24, centre=(32, 32))
             for k in range(len(shapes.names(family)))]
    for i in range(len(masks)):
        for j in range(i):
            assert np.abs(masks[i] - masks[j]).mean() > 0.02, (shapes.names(family)[i], shapes.names(family)[j])


def test_rotation_is_limited_where_it_changes_the_name():
    assert shapes.MAX_TURN["heart"] <= math.radians(30) and shapes.MAX_TURN["house"] <= math.radians(30)
    assert all(shapes.MAX_TURN[g] <= math.radians(15) for g in shapes.GLYPHS)
    # an upright class keeps its top half heavier than a free one would (a house's roof stays up)
    rng = np.random.default_rng(2)
    m = [shapes.mask("icons", shapes.names("icons").index("tree"), rng, 64, radius=28, centre=(32, 32))
         for _ in range(20)]
    rows = np.stack(m).sum((0, 2))  # (64,) coverage per row
    assert rows[4:14].sum() < rows[44:56].sum()  # a narrow tip on top, the wide tier near the bottom


def test_glyphs_are_deterministic_and_drawn():
    a = shapes.mask("glyphs", 0, np.random.default_rng(1), 48)
    b = shapes.mask("glyphs", 0, np.random.default_rng(1), 48)
    assert np.array_equal(a, b) and a.sum() > 20
