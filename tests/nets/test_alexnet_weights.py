import pytest
import torch
import torchvision

from dgn.errors import DGNError
from dgn.nets import load_torchvision_alexnet


def test_torchvision_alexnet_weights_load_and_give_the_same_logits(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.alexnet(weights=None, num_classes=1000).eval()  # random init, never downloaded
    path = tmp_path / "alexnet.pth"
    torch.save(tv.state_dict(), path)
    net = load_torchvision_alexnet(path)
    x = torch.rand(2, 3, 227, 227)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(net(x), tv((x - mean) / std), atol=1e-4)
        feats = tv.features[:11]((x - mean) / std)  # through conv5 (pre-ReLU)
        assert torch.allclose(net.forward_until(x, "conv5"), feats, atol=1e-4)


def test_bad_weights_files(tmp_path):
    with pytest.raises(DGNError, match="does not exist"):
        load_torchvision_alexnet(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DGNError, match="not a readable torch state dict"):
        load_torchvision_alexnet(bad)
    other = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, other)
    with pytest.raises(DGNError, match="not a torchvision AlexNet state dict"):
        load_torchvision_alexnet(other)
