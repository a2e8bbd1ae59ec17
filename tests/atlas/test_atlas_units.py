"""Unit specs, work planning and target adapters: no Ray, no servers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dgn.atlas.config import AtlasConfig, parse_spec, spec_for, unit_specs
from dgn.atlas.plan import Item, Source, blocks, make_items
from dgn.errors import DGNError
from dgn.nets.adapters import layer_names, load_target


def test_unit_specs():
    assert parse_spec("all", 4) == [0, 1, 2, 3]
    assert parse_spec("0-2,7", 10) == [0, 1, 2, 7]
    assert parse_spec("5,1,1", 10) == [1, 5]
    specs = unit_specs("fc8=all;fc7=0-3")
    assert spec_for(specs, "fc8") == "all" and spec_for(specs, "fc7") == "0-3" and spec_for(specs, "fc6") == "all"
    assert unit_specs("1,2") == {"*": "1,2"}


@pytest.mark.parametrize("spec, match", [("0-10", "out of range.*units 0..9"), ("3-1", "below the start"),
                                         ("a", "bad unit spec")])
def test_bad_unit_specs(spec, match):
    with pytest.raises(DGNError, match=match):
        parse_spec(spec, 10, layer="fc8")


def test_bad_config():
    with pytest.raises(DGNError, match="generators must be one of"):
        AtlasConfig(storage="x", generators="some").validate()
    with pytest.raises(DGNError, match="unknown AM setting"):
        AtlasConfig(storage="x", am={"stepz": 3}).validate()


def test_blocks_are_aligned_and_items_skip_done_units():
    assert blocks([0, 1, 5, 8, 9, 17], 8) == [(0, 1, 5), (8, 9), (17,)]
    srcs = [Source(1, "c1", "g"), Source(2, "c2", "g")]
    items = make_items(srcs, {"fc8": list(range(10)), "fc7": [0, 1]}, {("epoch=0001", "fc8"): {0, 1, 2}}, chunk=4)
    got = [(it.source.epoch, it.layer, it.units) for it in items]
    assert got[0] == (1, "fc8", (3,)) and got[1] == (1, "fc8", (4, 5, 6, 7))
    # every (source, layer, unit) once, grouped source by source
    seen = [(it.source.key, it.layer, u) for it in items for u in it.units]
    assert len(seen) == len(set(seen)) == 7 + 2 + 10 + 2
    assert [it.source.epoch for it in items] == sorted(it.source.epoch for it in items)
    assert len({it.id for it in items}) == len(items)
    assert isinstance(items[0], Item)


def test_torchscript_target_layers_by_module_name(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(4 * 30 * 30, 5)))
    path = tmp_path / "net.ts"
    torch.jit.save(torch.jit.script(net), str(path))
    target = load_target(str(path))
    assert layer_names(target) == ["0", "1", "2", "2.0", "2.1", "output"]
    x = torch.rand(2, 3, 32, 32)
    acts = target.activations(x, ["0", "2.1", "output"])
    assert acts["0"].shape == (2, 4, 30, 30)
    assert torch.allclose(acts["output"], net(x), atol=1e-5) and torch.allclose(acts["2.1"], net(x), atol=1e-5)
    with pytest.raises(DGNError, match="unknown layer 'fc8'.*valid layers: 0, 1, 2"):
        target.activations(x, ["fc8"])


def test_torchvision_target_from_local_weights(tmp_path):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(weights=None, num_classes=7).eval()
    torch.save(model.state_dict(), tmp_path / "sq.pt")
    target = load_target("torchvision:squeezenet1_1", weights=str(tmp_path / "sq.pt"))
    x = torch.rand(1, 3, 64, 64)
    acts = target.activations(x, ["features.12"])  # (1, 512, 13, 13) at 224 px
    assert acts["features.12"].shape[1] == 512
    # the adapter resizes to 224 and normalises as torchvision's ImageNet models expect
    x224 = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(target.model((x224 - mean) / std), model((x224 - mean) / std))
    with pytest.raises(DGNError, match="needs --target-weights"):
        load_target("torchvision:squeezenet1_1")
    with pytest.raises(DGNError, match="unknown torchvision model 'nonet'"):
        load_target("torchvision:nonet", weights=str(tmp_path / "sq.pt"))
    with pytest.raises(DGNError, match="not a TorchScript file"):
        load_target(str(tmp_path / "sq.pt"))
