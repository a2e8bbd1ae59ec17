import pytest
import torch
from torch import nn

from dgn.errors import DGNError
from dgn.nets import Unit, build_caffenet, capture, parse_unit, unit_values


def test_parse_unit():
    assert parse_unit("fc8:3") == Unit("fc8", 3)
    assert parse_unit("conv5:12@3,4") == Unit("conv5", 12, 3, 4)
    assert parse_unit("layer4.1.conv2:7") == Unit("layer4.1.conv2", 7)
    assert str(parse_unit("conv5:12@3,4")) == "conv5:12@3,4"
    with pytest.raises(DGNError, match="bad unit 'fc8'"):
        parse_unit("fc8")


def test_capture_hooks_only_named_modules_and_removes_them():
    torch.manual_seed(0)
    net = build_caffenet("small").eval()
    x = torch.rand(2, 3, 64, 64)
    out = capture(net, x, ["conv5", "fc6"])
    assert set(out) == {"conv5", "fc6"}
    assert torch.allclose(out["fc6"], net.forward_until(x, "fc6"))
    assert all(not m._forward_hooks for m in net.modules())


def test_capture_removes_hooks_when_forward_fails():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)

        def forward(self, x):
            self.a(x)
            raise RuntimeError("boom")

    m = Boom()
    with pytest.raises(RuntimeError):
        capture(m, torch.zeros(1, 2), ["a"], stop_early=False)
    assert not m.a._forward_hooks


def test_capture_stops_early():
    calls = []
    net = build_caffenet("small").eval()
    net.fc8.register_forward_hook(lambda *a: calls.append(1))
    capture(net, torch.rand(1, 3, 64, 64), ["conv2"])
    assert calls == []  # fc8 never ran
    net(torch.rand(1, 3, 64, 64))
    assert calls == [1]


def test_unknown_module_lists_valid_names():
    net = build_caffenet("small")
    with pytest.raises(DGNError, match=r"unknown layer 'fc9' in CaffeNet; valid layers: conv1, conv2"):
        capture(net, torch.rand(1, 3, 64, 64), ["fc9"])


def test_unit_values_and_ranges():
    acts = torch.arange(2 * 3 * 5 * 5, dtype=torch.float).view(2, 3, 5, 5)
    assert torch.equal(unit_values(acts, Unit("c", 1)), acts[:, 1, 2, 2])  # centre by default
    assert torch.equal(unit_values(acts, Unit("c", 2, 0, 4)), acts[:, 2, 0, 4])
    with pytest.raises(DGNError, match=r"unit c:3 is out of range: layer 'c' has channels 0..2"):
        unit_values(acts, Unit("c", 3))
    with pytest.raises(DGNError, match="out of range"):
        unit_values(acts, Unit("c", 0, 5, 0))
    with pytest.raises(DGNError, match="is a vector"):
        unit_values(torch.zeros(2, 4), Unit("fc", 1, 0, 0))
