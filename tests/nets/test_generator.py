import pytest
import torch
from torch import nn

from dgn.errors import DGNError
from dgn.nets import Discriminator, Generator, Judge, generator_config
from dgn.nets.conventions import caffe_to_rgb


def test_paper_fc6_generator_at_227_px_is_the_full_reference_net():
    # generator.prototxt of the reference training code: defc7, defc6, defc5 (InnerProduct 4096, msra) → reshape
    # 256×4×4 → deconv5, conv5_1, deconv4, conv4_1, deconv3, conv3_1, deconv2, deconv1, deconv0 (all Deconvolution;
    # 4×4/2 pad 1 with msra_coeff 1.8, the conv*_1 3×3/1 pad 1 with 0.9), LeakyReLU 0.3, deconv0 linear → 256 → 227
    torch.manual_seed(0)
    g = Generator(generator_config("paper", (4096,)))
    fcs = [m for m in g.front if isinstance(m, nn.Linear)]
    convs = [m for m in g.stack if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [(m.in_features, m.out_features) for m in fcs] == [(4096, 4096)] * 3
    assert len(convs) == 9 and all(isinstance(m, nn.ConvTranspose2d) for m in convs)
    assert [m.out_channels for m in convs] == [256, 512, 256, 256, 128, 128, 64, 32, 3]
    assert [(m.kernel_size[0], m.stride[0], m.padding[0]) for m in convs] == [
        (4, 2, 1), (3, 1, 1), (4, 2, 1), (3, 1, 1), (4, 2, 1), (3, 1, 1), (4, 2, 1), (4, 2, 1), (4, 2, 1)]
    acts = [m for m in g.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 3 + 8 and {a.negative_slope for a in acts} == {0.3}  # after every layer but deconv0
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.Tanh, nn.Upsample)) for m in g.modules())
    assert g.layer_names() == (["deconv5", "conv5_1", "deconv4", "conv4_1", "deconv3", "conv3_1", "deconv2",
                                "deconv1", "deconv0"], [])
    assert "9 (de)conv layers" in g.describe() and "CUT" not in g.describe()
    # MSRA: std = coeff·√(2/fan_in), Caffe's fan_in = count / shape(0) (a Deconvolution blob is (in, out, k, k))
    for m, coeff, fan_in in ((fcs[0], 1.0, 4096), (convs[0], 1.8, 256 * 16), (convs[1], 0.9, 512 * 9),
                             (convs[8], 1.8, 3 * 16)):
        assert m.weight.std().item() == pytest.approx(coeff * (2 / fan_in) ** 0.5, rel=0.05)
    assert all(m.bias.abs().max() == 0 for m in fcs + convs)
    # the published DeePSiM fc6 layout: its weights load into this G
    from dgn.nets.deepsim import _param_modules, published_shapes

    want = [s for k, s in published_shapes("fc6").items() if k.endswith(".weight")]
    assert [tuple(m.weight.shape) for m in _param_modules(g)] == want
    assert g.out_size == 256
    with torch.no_grad():
        native, out = g.native(torch.zeros(1, 4096), crop=False), g(torch.zeros(1, 4096))
    assert native.shape == (1, 3, 256, 256) and out.shape == (1, 3, 227, 227)  # 256, centre-cropped to 227
    assert torch.allclose(out, caffe_to_rgb(native[..., 14:241, 14:241]))  # Caffe's BGR 0–255 − mean → RGB


def test_paper_generator_at_64_px_says_what_is_cut():
    g = Generator(generator_config("paper", (512,), image_size=64))
    kept, cut = g.layer_names()
    assert kept == ["deconv3", "conv3_1", "deconv2", "deconv1", "deconv0"]
    assert cut == ["deconv5", "conv5_1", "deconv4", "conv4_1"]
    text = g.describe()
    assert "5 (de)conv layers" in text and "CUT: 4 of the full stack's 9" in text and "not the full 9-layer" in text
    assert g(torch.zeros(2, 512)).shape == (2, 3, 64, 64)


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
    # the reference's image branch: unpadded, ReLU, 227 → 56 → 52 → 25 → 23 → 11, average pool
    d = Discriminator(image_size=227, code_dim=4096, arch="paper")
    assert d.map_sizes == [56, 52, 25, 23, 11] and "unpadded" in d.describe()
    convs = [m for m in d.image if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]) for m in convs] == [
        (32, 7, 4, 0), (64, 5, 1, 0), (128, 3, 2, 0), (256, 3, 1, 0), (256, 3, 2, 0)]
    assert not any(isinstance(m, nn.LeakyReLU) for m in d.modules())
    assert d(torch.rand(2, 3, 227, 227), torch.rand(2, 4096)).shape == (2, 2)
    assert Discriminator(image_size=64, code_dim=512, arch="paper").map_sizes[-1] == 1
    assert "PADDED" in Discriminator(image_size=32, code_dim=512, arch="paper").describe()
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
