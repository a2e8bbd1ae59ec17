import pytest
import torch
from torch import nn

from dgn.errors import DGNError
from dgn.nets import Discriminator, Generator, Judge, generator_config


def test_paper_fc6_generator_matches_the_reference_layer_list():
    g = Generator(generator_config("paper", (4096,)))
    fcs = [m for m in g.modules() if isinstance(m, nn.Linear)]
    convs = [m for m in g.stack if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [m.out_features for m in fcs] == [4096, 4096, 4096]  # defc7, defc6, defc5 → 256×4×4
    assert len(convs) == 9  # deconv5, conv5_1, deconv4, conv4_1, deconv3, conv3_1, deconv2, deconv1, deconv0
    kinds = ["d" if isinstance(m, nn.ConvTranspose2d) else "c" for m in convs]
    assert kinds == list("dcdcdcddd")
    assert [m.out_channels for m in convs] == [256, 512, 256, 256, 128, 128, 64, 32, 3]
    acts = [m for m in g.modules() if isinstance(m, nn.LeakyReLU)]
    assert {a.negative_slope for a in acts} == {0.3}
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Tanh)) for m in g.modules())
    assert g.out_size == 256
    out = g(torch.zeros(1, 4096))
    assert out.shape == (1, 3, 227, 227)  # 256 cropped to 227


@pytest.mark.parametrize("code_shape", [(512,), (10,), (64, 4, 4), (96, 8, 8)])
def test_small_generator_shapes_for_vector_and_spatial_codes(code_shape):
    g = Generator(generator_config("small", code_shape))
    out = g(torch.rand(2, *code_shape))
    assert out.shape == (2, 3, 64, 64)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("code_shape", [(256, 6, 6), (384, 13, 13)])
def test_paper_generator_takes_spatial_codes(code_shape):
    g = Generator(generator_config("paper", code_shape))
    assert g(torch.zeros(1, *code_shape)).shape == (1, 3, 227, 227)


def test_bad_generator_settings_are_clear_errors():
    with pytest.raises(DGNError, match="unknown generator preset 'huge'"):
        generator_config("huge", (512,))
    with pytest.raises(DGNError, match="unknown generator arch 'pixelshuffle'"):
        Generator(generator_config("small", (512,), arch="pixelshuffle"))


def test_discriminator_and_judge_shapes():
    d = Discriminator(image_size=64, code_dim=512)
    assert d(torch.rand(3, 3, 64, 64), torch.rand(3, 512)).shape == (3, 2)
    d = Discriminator(image_size=227, code_dim=4096)
    assert d(torch.rand(1, 3, 227, 227), torch.rand(1, 4096)).shape == (1, 2)
    j = Judge(num_classes=10)
    assert j(torch.rand(2, 3, 64, 64)).shape == (2, 10)
    assert j.embed(torch.rand(2, 3, 64, 64)).shape == (2, 128)


def test_group_norm_generator_is_per_image_where_batch_norm_is_not():
    # what makes a G trained by N data-parallel workers (each normalising its own shard on CPU) the G of one worker
    torch.manual_seed(0)
    codes = torch.rand(8, 512) * 2
    for norm, per_image in (("group", True), ("batch", False)):
        g = Generator(generator_config("small", (512,), widths=(32, 16, 8, 8), fc=(64,), norm=norm)).train()
        with torch.no_grad():
            whole, half = g(codes)[:4], g(codes[:4])
        assert torch.allclose(whole, half, atol=1e-5) == per_image, norm
    with pytest.raises(DGNError, match="valid: batch, group, none"):
        Generator(generator_config("small", (512,), norm="layer"))
