"""The small preset's BatchNorm (inside each conv module) and the judge's five blocks; the 227-px presets unchanged."""

import torch
from torch import nn

from dgn.nets import Judge, build_caffenet, caffenet_config
from dgn.nets.caffenet import CaffeNet, CaffeNetConfig, NormedConv2d


def test_small_has_batchnorm_inside_its_convs_and_no_dropout():
    net = build_caffenet("small")
    assert net.config.batchnorm and net.config.dropout == 0.0
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        conv = getattr(net, name)
        assert isinstance(conv, NormedConv2d) and conv.bias is None and isinstance(conv.bn, nn.BatchNorm2d)
        assert conv.bn.num_batches_tracked.item() == 0  # building the net (its pool5 probe) left BN untouched
    assert net.conv5.out_channels == 64  # a Conv2d still


def test_caffe_presets_are_plain_convs():
    for preset in ("caffenet", "alexnet"):
        c = caffenet_config(preset)
        assert not c.batchnorm and c.dropout == 0.5
        net = CaffeNet(c)
        assert all(type(getattr(net, f"conv{i}")) is nn.Conv2d and getattr(net, f"conv{i}").bias is not None
                   for i in range(1, 6))
        assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_conv_blob_is_the_normalised_pre_relu_output():
    torch.manual_seed(0)
    net = build_caffenet("small").train()
    x = torch.rand(8, 3, 64, 64)
    for _ in range(3):  # move the running statistics off their initial values
        net(x)
    net.eval()
    pre = net.forward_until(x, "conv3")
    seen = {}
    h = net.conv3.register_forward_hook(lambda m, i, o: seen.setdefault("conv3", o))
    try:
        net(x)
    finally:
        h.remove()
    assert torch.allclose(seen["conv3"], pre) and (pre < 0).any()
    assert torch.equal(net.blobs(x, ("conv3", "fc8"))["conv3"], pre.clamp_min(0))


def test_old_small_checkpoint_config_loads_without_batchnorm():
    d = caffenet_config("small").to_dict()
    d.pop("batchnorm")  # a config saved before the field existed
    d["dropout"] = 0.5
    net = CaffeNet(CaffeNetConfig.from_dict(d))
    assert type(net.conv1) is nn.Conv2d and "conv1.bias" in net.state_dict()


def test_judge_has_five_blocks_and_works_on_small_images():
    j = Judge(num_classes=4)
    assert j.widths == (16, 32, 64, 128, 128)
    for size in (8, 16, 64):
        jj = Judge(num_classes=4, image_size=size).eval()
        assert jj(torch.rand(2, 3, size, size)).shape == (2, 4)
        assert jj.embed(torch.rand(2, 3, size, size)).shape == (2, 128)
