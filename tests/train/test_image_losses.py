"""The colour-free image loss: the contrast map keeps where a shape is, and drops its colour and polarity."""

import torch

from dgn.train.gan import GANConfig, contrast_map, image_loss


def _disc(fg, bg, size=16, centre=(8, 8), r=4):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) <= r * r
    img = torch.empty(3, size, size)
    for c in range(3):
        img[c] = torch.where(inside, torch.tensor(fg[c]), torch.tensor(bg[c]))
    return img[None]


def test_same_shape_in_other_colours_and_polarity_has_the_same_map():
    a = _disc((0.9, 0.1, 0.1), (0.1, 0.1, 0.4))
    b = _disc((0.05, 0.05, 0.05), (0.2, 0.9, 0.8))  # other colours, shape darker than its background
    cfg = GANConfig(image_loss="contrast")
    assert image_loss(a, b, cfg).item() < 1e-3
    assert image_loss(a, b, GANConfig(image_loss="pixel")).item() > 0.1  # the pixel MSE sees colour


def test_a_moved_shape_has_another_map():
    a = _disc((0.9, 0.1, 0.1), (0.1, 0.1, 0.4), centre=(5, 5))
    b = _disc((0.9, 0.1, 0.1), (0.1, 0.1, 0.4), centre=(10, 10))
    cfg = GANConfig(image_loss="contrast")
    assert image_loss(a, b, cfg).item() > 0.3
    m = contrast_map(a)[0]
    assert m[5, 5] > m[12, 12]  # the shape (the smaller region) stands out from the background


def test_a_flat_image_gives_a_finite_gradient():
    x = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    loss = image_loss(x, _disc((1, 1, 1), (0, 0, 0), size=8, centre=(4, 4), r=2), GANConfig(image_loss="contrast"))
    loss.backward()
    assert torch.isfinite(x.grad).all()
