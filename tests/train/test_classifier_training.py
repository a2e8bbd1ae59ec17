import pytest
import torch

from dgn.errors import DGNError
from dgn.nets import Judge, build_caffenet
from dgn.train import evaluate, load_classifier, load_judge, save_checkpoint, tensor_batches, train_epoch
from dgn.train.classifier import classifier_checkpoint, judge_checkpoint, make_optimizer


def _toy_data(n=64):
    # two classes a net tells apart at once: dark vs bright images
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = (torch.rand(n, 3, 64, 64, generator=g) * 100 + y.view(-1, 1, 1, 1) * 150).byte()
    return x, y


def test_classifier_learns_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    x, y = _toy_data()
    net = build_caffenet("small", num_classes=2)
    opt = make_optimizer(net, lr=1e-3)
    for ep in range(4):
        stats = train_epoch(net, opt, tensor_batches(x, y, batch_size=16, shuffle=True, seed=ep))
    ev = evaluate(net, tensor_batches(x, y, batch_size=32))
    assert ev["acc"] == 1.0 and stats["n"] == 64
    uri = save_checkpoint(classifier_checkpoint(net, opt, epoch=4, metrics=ev, class_names=["dark", "bright"]),
                          str(tmp_path / "epoch=0004.pt"))
    net2, ck = load_classifier(uri)
    assert ck["epoch"] == 4 and ck["class_names"] == ["dark", "bright"]
    xb = x[:4].float() / 255
    net.eval()
    assert torch.allclose(net2(xb), net(xb))


def test_judge_checkpoint_round_trip(tmp_path):
    j = Judge(num_classes=3).eval()
    uri = save_checkpoint(judge_checkpoint(j, epoch=1), str(tmp_path / "judge.pt"))
    j2 = load_judge(uri)
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(j(x), j2(x))


def test_wrong_architecture_checkpoint_is_a_clear_error(tmp_path):
    net = build_caffenet("small")
    ck = classifier_checkpoint(net, epoch=0)
    ck["model"] = {k: v[..., :1] if v.dim() > 1 else v for k, v in ck["model"].items()}  # wrong shapes
    uri = save_checkpoint(ck, str(tmp_path / "wrong.pt"))
    with pytest.raises(DGNError, match="does not fit the network"):
        load_classifier(uri)


def test_tensor_batches_shards_are_disjoint_and_cover():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    seen = []
    for rank in range(3):
        for b in tensor_batches(x, batch_size=2, shuffle=True, seed=1, shard=(rank, 3)):
            seen += (b[:, 0, 0, 0] * 255).round().long().tolist()
    assert sorted(seen) == list(range(10))
