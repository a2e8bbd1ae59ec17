import pytest
import torch

from dgn.errors import DGNError
from dgn.nets import LAYERS, build_caffenet, caffenet_config


@pytest.mark.parametrize(
    "preset,shapes",
    [
        ("caffenet", {"conv1": (96, 55, 55), "conv5": (256, 13, 13), "pool5": (256, 6, 6), "fc6": (4096,), "fc8": (1000,)}),
        ("alexnet", {"conv1": (64, 56, 56), "conv2": (192, 27, 27), "pool5": (256, 6, 6), "fc7": (4096,)}),
        ("small", {"conv1": (32, 32, 32), "pool5": (64, 4, 4), "fc6": (512,), "fc8": (10,)}),
    ],
)
def test_presets_have_caffe_layer_shapes(preset, shapes):
    net = build_caffenet(preset)
    for layer, shape in shapes.items():
        assert net.code_shape(layer) == shape


def test_blob_is_post_relu_except_fc8():
    torch.manual_seed(0)
    net = build_caffenet("small").eval()
    x = torch.rand(4, 3, 64, 64)
    for layer in ("conv3", "fc6", "fc7"):
        pre = net.forward_until(x, layer)
        assert (pre < 0).any(), "a random net should have negative pre-activations"
        assert torch.equal(net.blob(x, layer), pre.clamp_min(0))
    assert torch.equal(net.blob(x, "fc8"), net(x))
    assert (net(x) < 0).any()


def test_unknown_layer_and_preset_are_clear_errors():
    net = build_caffenet("small")
    with pytest.raises(DGNError, match="unknown layer 'fc9'.*fc6"):
        net.blob(torch.zeros(1, 3, 64, 64), "fc9")
    with pytest.raises(DGNError, match="unknown network preset 'vgg'"):
        caffenet_config("vgg")


def test_config_round_trips_through_dict():
    c = caffenet_config("small", num_classes=7)
    assert type(c).from_dict(c.to_dict()) == c
    assert LAYERS[-1] == "fc8"


def test_blobs_of_one_pass_equal_each_blob():
    import torch

    from dgn.nets import build_caffenet

    net = build_caffenet("small", num_classes=10, image_size=64).eval()
    x = torch.rand(3, 3, 64, 64)
    got = net.blobs(x, ("fc6", "conv3", "pool5", "fc8"))
    assert sorted(got) == ["conv3", "fc6", "fc8", "pool5"]
    for layer, blob in got.items():
        assert torch.equal(blob, net.blob(x, layer)), layer
