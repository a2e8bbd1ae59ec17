"""The published DeePSiM generators: layout, loading from the upconvGAN state-dict layout, conventions, bounds.

No real weights are needed: a reference network is built here, independently of dgn's Generator, from the
published layer list (upconvGAN / the Caffe generator.prototxt), filled with random weights and saved in exactly
the published layout; dgn must load it and produce identical outputs.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from dgn.errors import DGNError
from dgn.nets import conventions as cv
from dgn.nets.deepsim import (
    bounds_from_images,
    build_deepsim,
    deepsim_prior,
    load_bounds,
    load_deepsim,
    parse_spec,
    published_shapes,
    save_bounds,
)


class _Reshape(nn.Module):
    def forward(self, x):
        return x.view(-1, 256, 4, 4)


def reference_net(layer: str) -> nn.Sequential:
    """The published layer list: (name, module), LeakyReLU(0.3) after every layer but deconv0."""
    if layer == "pool5":
        front = [("Rconv6", nn.Conv2d(256, 512, 3, 1, 1)), ("Rconv7", nn.Conv2d(512, 512, 3, 1, 1)),
                 ("Rconv8", nn.Conv2d(512, 512, 3, 1, 0))]
        c0 = 512
    else:
        d = 1000 if layer == "fc8" else 4096
        front = [("defc7", nn.Linear(d, 4096)), ("defc6", nn.Linear(4096, 4096)), ("defc5", nn.Linear(4096, 4096))]
        c0 = 256
    up = lambda i, o: nn.ConvTranspose2d(i, o, 4, 2, 1)  # noqa: E731
    same = lambda i, o: nn.ConvTranspose2d(i, o, 3, 1, 1)  # noqa: E731 — Caffe "Deconvolution", stride 1
    stack = [("deconv5", up(c0, 256)), ("conv5_1", same(256, 512)), ("deconv4", up(512, 256)),
             ("conv4_1", same(256, 256)), ("deconv3", up(256, 128)), ("conv3_1", same(128, 128)),
             ("deconv2", up(128, 64)), ("deconv1", up(64, 32)), ("deconv0", up(32, 3))]
    layers = []
    for name, m in front:
        layers += [(name, m), (f"relu_{name}", nn.LeakyReLU(0.3))]
    if layer != "pool5":
        layers.append(("reshape", _Reshape()))
    for name, m in stack:
        layers.append((name, m))
        if name != "deconv0":
            layers.append((f"relu_{name}", nn.LeakyReLU(0.3)))
    return nn.Sequential(OrderedDict(layers)).eval()


def _code(layer, n=2, seed=0):
    shape = {"pool5": (256, 6, 6), "fc8": (1000,)}.get(layer, (4096,))
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 5


def test_published_keys_and_shapes():
    fc6 = published_shapes("fc6")
    assert list(fc6)[:2] == ["defc7.weight", "defc7.bias"] and list(fc6)[-2:] == ["deconv0.weight", "deconv0.bias"]
    assert len(fc6) == 24 and fc6["defc5.weight"] == (4096, 4096)
    assert fc6["conv5_1.weight"] == (256, 512, 3, 3)  # ConvTranspose2d: (in, out, k, k)
    assert fc6["deconv4.weight"] == (512, 256, 4, 4) and fc6["deconv0.weight"] == (32, 3, 4, 4)
    assert published_shapes("fc8")["defc7.weight"] == (4096, 1000)
    pool5 = published_shapes("pool5")
    assert pool5["Rconv8.weight"] == (512, 512, 3, 3) and pool5["deconv5.weight"] == (512, 256, 4, 4)
    for layer in ("fc6", "fc8", "pool5"):
        ref = {k: tuple(v.shape) for k, v in reference_net(layer).state_dict().items()}
        assert ref == dict(published_shapes(layer))


def test_generator_layout():
    g = build_deepsim("fc6", 256)
    acts = [m for m in g.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 11 and {a.negative_slope for a in acts} == {0.3}
    assert g.config.output == "caffe" and g.out_size == 256
    assert build_deepsim("fc6").config.image_size == 227


@pytest.mark.parametrize("layer,variant", [("fc6", "stray"), ("fc8", "plain"), ("pool5", "prefixed")])
def test_published_layout_round_trips_to_identical_outputs(tmp_path, layer, variant):
    torch.manual_seed(1)
    ref = reference_net(layer)
    state = ref.state_dict()
    if variant == "stray":  # some conversions write "defc7.1.weight"
        state = OrderedDict((k.replace(".", ".1.", 1), v) for k, v in state.items())
    elif variant == "prefixed":  # the whole upconvGAN module saved: "G.deconv5.weight"
        state = OrderedDict((f"G.{k}", v) for k, v in state.items())
    path = tmp_path / f"upconvGAN_{layer}.pt"
    torch.save(state, path)
    code = _code(layer)
    with torch.no_grad():
        want = ref(code)  # (2, 3, 256, 256): BGR, 0–255, mean subtracted
        g = load_deepsim(path, layer, image_size=256)
        assert torch.equal(g.native(code), want)
        assert torch.equal(g(code), cv.caffe_to_rgb(want))
        g227 = load_deepsim(path, layer)  # the CaffeNet crop
        assert torch.equal(g227(code), cv.caffe_to_rgb(want)[:, :, 14:241, 14:241])


def test_bad_files_name_the_first_bad_key(tmp_path):
    torch.manual_seed(0)
    state = reference_net("fc8").state_dict()
    cases = {
        "missing": ({k: v for k, v in state.items() if k != "deconv3.bias"}, "key 'deconv3.bias' is missing"),
        "shape": ({**state, "conv4_1.weight": torch.zeros(256, 256, 4, 4)},
                  "key 'conv4_1.weight' has shape (256, 256, 4, 4), expected (256, 256, 3, 3)"),
        "extra": ({**state, "deconv_1.weight": torch.zeros(1)}, "unexpected key 'deconv_1.weight'"),
    }
    for name, (sd, msg) in cases.items():
        p = tmp_path / f"{name}.pt"
        torch.save(sd, p)
        with pytest.raises(DGNError) as e:
            load_deepsim(p, "fc8")
        assert msg in str(e.value) and "\n" not in str(e.value), (name, str(e.value))
    with pytest.raises(DGNError, match="key 'defc7.weight' has shape"):  # an fc8 file is not an fc6 one
        load_deepsim(tmp_path / "extra.pt", "fc6")
    with pytest.raises(DGNError, match="does not exist"):
        load_deepsim(tmp_path / "nope.pt", "fc6")
    with pytest.raises(DGNError, match="unknown DeePSiM generator 'conv3'"):
        load_deepsim(tmp_path / "extra.pt", "conv3")
    with pytest.raises(DGNError, match="write deepsim:LAYER=FILE"):
        parse_spec("deepsim:fc6")
    assert parse_spec("deepsim:fc7=/x/G.pt") == ("fc7", "/x/G.pt")


# conventions, on fixed tensors

def _pixel(b, g, r):
    return torch.tensor([b, g, r], dtype=torch.float32).view(1, 3, 1, 1)


def test_caffe_to_rgb_on_fixed_pixels():
    assert torch.equal(cv.caffe_to_rgb(_pixel(-104, -117, -123)), torch.zeros(1, 3, 1, 1))  # black
    assert torch.allclose(cv.caffe_to_rgb(_pixel(151, 138, 132)), torch.ones(1, 3, 1, 1))  # white
    # the mean itself is (R, G, B) = (123, 117, 104): channel order is flipped
    assert torch.allclose(cv.caffe_to_rgb(_pixel(0, 0, 0)).flatten(), torch.tensor([123, 117, 104]) / 255.0)
    # pure blue in Caffe's BGR → pure blue in RGB
    assert torch.allclose(cv.caffe_to_rgb(_pixel(151, -117, -123)).flatten(), torch.tensor([0.0, 0.0, 1.0]))
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(cv.caffe_to_rgb(cv.rgb_to_caffe(x)), x, atol=1e-6)
    assert torch.allclose(cv.rgb_to_caffe(torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)).flatten(),
                          torch.tensor([0 - 104, 127.5 - 117, 255 - 123]))


def test_crops_are_centred_like_the_reference():
    x = torch.arange(256.0).view(1, 1, 1, 256).expand(1, 1, 256, 256)
    c = cv.centre_crop(x, 227)
    assert c.shape[-2:] == (227, 227) and c[0, 0, 0, 0] == 14 and c[0, 0, 0, -1] == 240  # topleft (256-227)//2
    assert cv.centre_crop(x, 224)[0, 0, 0, 0] == 16
    assert cv.crop_size(None) == 227 and cv.crop_size(224) == 224 and cv.crop_size(299) == 256
    with pytest.raises(ValueError):
        cv.centre_crop(x, 300)


def test_imagenet_input_and_display():
    mean = torch.tensor(cv.IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 224, 224)
    assert torch.allclose(cv.imagenet_input(mean, 224), torch.zeros(1, 3, 224, 224), atol=1e-6)
    one = cv.imagenet_input(torch.ones(1, 3, 227, 227), 224)  # resized (constant stays constant)
    assert one.shape == (1, 3, 224, 224)
    assert torch.allclose(one[0, :, 0, 0], (1 - torch.tensor(cv.IMAGENET_MEAN)) / torch.tensor(cv.IMAGENET_STD))
    img = cv.display_uint8(torch.tensor([-0.2, 0.5, 1.3]).view(1, 3, 1, 1))
    assert img.shape == (1, 1, 1, 3) and img.flatten().tolist() == [0, 128, 255]
    ref = cv.reference_display(_pixel(120, 0, -120))  # BGR → RGB: R=-120 → 0, G=0 → .5, B=120 → 1
    assert torch.allclose(ref.flatten(), torch.tensor([0.0, 0.5, 1.0]))


def test_imagenet_class_names_ship_offline():
    names = cv.imagenet_class_names()
    assert len(names) == 1000 and names[643] == "mask" and names[437] == "beacon"


# bounds

def test_bounds_in_the_reference_format(tmp_path):
    p = tmp_path / "fc8.txt"
    p.write_text(" ".join(str(i % 17) for i in range(1000)) + " \n")  # one line, trailing space, as act_range/3x
    up = load_bounds(p, (1000,))
    assert up.shape == (1000,) and up[16] == 16 and up[17] == 0
    with pytest.raises(DGNError, match="holds 1000 numbers; the \\(4096,\\) code needs 4096"):
        load_bounds(p, (4096,))
    q = tmp_path / "pool5.txt"
    q.write_text(" ".join(["2"] * 256))
    assert load_bounds(q, (256, 6, 6)).shape == (256, 6, 6)  # one per channel, broadcast
    save_bounds(torch.arange(6.0).view(1, 2, 3) + 0.5, tmp_path / "s.txt")
    assert (tmp_path / "s.txt").read_text() == "0.5 1.5 2.5 3.5 4.5 5.5\n"
    bad = tmp_path / "bad.txt"
    bad.write_text("1 -2 3")
    with pytest.raises(DGNError, match="negative"):
        load_bounds(bad, (3,))


def test_prior_needs_bounds(tmp_path):
    with pytest.raises(DGNError, match="needs code bounds"):
        deepsim_prior("deepsim:fc8=x.pt", bounds="")


def test_bounds_from_images_are_mean_plus_3_sigma(tmp_path):
    from PIL import Image

    from dgn.nets.adapters import TargetNet

    for i, v in enumerate((0, 64, 128, 255)):
        d = tmp_path / "imgs" / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10, 12), (v, v, v)).save(d / f"{i}.png")

    class Mean(nn.Module):  # "fc6": the image's mean, minus .25, before a ReLU
        def __init__(self):
            super().__init__()
            self.fc6 = nn.Identity()

        def forward(self, x):
            return self.fc6(x.mean((1, 2, 3)).unsqueeze(1) - 0.25)

    enc = TargetNet(Mean(), relu_layers={"fc6"})
    up = bounds_from_images(tmp_path / "imgs", enc, "fc6", image_size=8, batch_size=3)
    vals = torch.tensor([0, 64, 128, 255], dtype=torch.float64) / 255 - 0.25
    vals = vals.clamp_min(0)  # reported: post-ReLU
    want = vals.mean() + 3 * vals.std(unbiased=False)
    assert up.shape == (1,) and torch.allclose(up.double(), want.view(1), atol=1e-5)
    with pytest.raises(DGNError, match="does not exist"):
        bounds_from_images(tmp_path / "none", enc, "fc6")
