import pytest
import torch

from dgn.am import PIXEL_METHODS, PixelAMConfig, TargetNet, pixel_am
from dgn.am.pixel import gaussian_blur, total_variation
from dgn.errors import DGNError
from dgn.nets import build_caffenet


@pytest.fixture(scope="module")
def target():
    torch.manual_seed(0)  # an untrained net without the small preset's BatchNorm: at init (running mean 0, var 1)
    # BN scales every conv's output down to ~1/√(fan-in), leaving the objectives too flat for 15 TV-damped steps
    return TargetNet.caffenet(build_caffenet("small", batchnorm=False).eval())


@pytest.mark.parametrize("method", PIXEL_METHODS)
def test_each_baseline_raises_its_objective(target, method):
    start = pixel_am(target, ["fc8:1", "fc6:4"], image_size=64, config=PixelAMConfig(method=method, steps=1))
    res = pixel_am(target, ["fc8:1", "fc6:4"], image_size=64, config=PixelAMConfig(method=method, steps=15))
    assert res.images.shape == (2, 3, 64, 64)
    assert res.images.min() >= 0 and res.images.max() <= 1
    assert (res.objective > start.objective).all()


def test_l2_decay_shrinks_the_image_towards_grey(target):
    few = PixelAMConfig(method="l2", steps=20, step=0.01)
    strong = PixelAMConfig(method="l2", steps=20, step=0.01, l2=0.3)
    a = pixel_am(target, ["fc8:2"], image_size=64, config=few).images - 0.5
    b = pixel_am(target, ["fc8:2"], image_size=64, config=strong).images - 0.5
    assert b.abs().mean() < a.abs().mean()


def test_tv_gives_smoother_images_than_plain_l2(target):
    a = pixel_am(target, ["fc8:3"], image_size=64, config=PixelAMConfig(method="l2", steps=20))
    b = pixel_am(target, ["fc8:3"], image_size=64, config=PixelAMConfig(method="tv", steps=20, tv=5.0))
    assert total_variation(b.images) < total_variation(a.images)


def test_small_value_clipping_sets_low_norm_pixels_to_grey(target):
    res = pixel_am(target, ["fc8:0"], image_size=64,
                   config=PixelAMConfig(method="jitter-blur", steps=6, clip_percentile=0.5, blur_every=0))
    grey = ((res.images - 0.5).abs().sum(1) < 1e-6).float().mean()
    assert grey >= 0.45  # about half the pixels were clipped to grey on the last step


def test_blur_and_tv_helpers():
    x = torch.rand(1, 3, 16, 16)
    assert total_variation(gaussian_blur(x, 1.0)) < total_variation(x)
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)) == 0


def test_bad_method_is_a_clear_error(target):
    with pytest.raises(DGNError, match="unknown pixel AM method 'dream'"):
        pixel_am(target, ["fc8:0"], image_size=64, config=PixelAMConfig(method="dream"))
    with pytest.raises(DGNError, match="out of range"):
        pixel_am(target, ["fc8:99"], image_size=64, config=PixelAMConfig(steps=1))
