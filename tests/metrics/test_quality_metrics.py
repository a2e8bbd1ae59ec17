import numpy as np
import pytest
import torch
from torch import nn

from dgn.am import Objective, TargetNet
from dgn.metrics import (
    activation_ratio,
    best_real_activations,
    frechet_distance,
    manifold_precision,
    realism,
    recognisability,
    reconstruct,
    reconstruction_metrics,
)
from dgn.nets import Generator, Judge, build_caffenet, generator_config


def test_frechet_distance_is_zero_for_same_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shifted = a + 2.0  # mean moves by 2 in each of 8 dims: |Δμ|² = 32
    assert frechet_distance(a, shifted) == pytest.approx(32, rel=1e-6)
    wider = a * 3
    assert frechet_distance(a, wider) > 10


def test_manifold_precision_counts_samples_that_lie_among_the_real_ones():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(600, 8))
    held_out = rng.normal(size=(300, 8))
    assert manifold_precision(held_out, real) > 0.85  # fresh samples of the same law lie among the real ones
    assert manifold_precision(held_out + 6.0, real) == 0.0  # far away: none
    # half from the real law, half far away: precision counts exactly the realistic half (up to the ball edges)
    assert manifold_precision(np.concatenate([held_out, held_out + 6.0]), real) == pytest.approx(
        manifold_precision(held_out, real) / 2)
    with pytest.raises(ValueError, match="more than k=3"):
        manifold_precision(held_out, real[:3])


def test_activation_ratio_is_nan_for_units_that_never_fire():
    r = activation_ratio(torch.tensor([2.0, 1.0, 5.0]), torch.tensor([4.0, 0.0, -1.0]))
    assert r[0] == 0.5 and torch.isnan(r[1]) and torch.isnan(r[2])


def test_best_real_activations_match_a_direct_max():
    torch.manual_seed(0)
    net = build_caffenet("small").eval()
    target = TargetNet.caffenet(net)
    x = torch.rand(10, 3, 64, 64)
    objs = [Objective.parse(s) for s in ("fc8:1", "fc6:3", "conv5:2", "fc8:0+fc8:2")]
    best = best_real_activations(target, objs, [x[:4], x[4:]])
    with torch.no_grad():
        logits = net(x)
        assert best[0] == pytest.approx(logits[:, 1].max().item(), abs=1e-5)
        assert best[1] == pytest.approx(net.blob(x, "fc6")[:, 3].max().item(), abs=1e-5)
        assert best[2] == pytest.approx(net.blob(x, "conv5")[:, 2, 4, 4].max().item(), abs=1e-5)
        assert best[3] == pytest.approx((logits[:, 0] + logits[:, 2]).max().item(), abs=1e-5)


class _Oracle(nn.Module):
    """A 'judge' that reads the class from the image's mean red value: 0.1 → class 1, …"""

    def __init__(self):
        super().__init__()
        self.image_size = 64

    def embed(self, x):
        return x.mean((2, 3))

    def forward(self, x):
        k = (x[:, 0].mean((1, 2)) * 10).round().long()
        return nn.functional.one_hot(k, 10).float() * 10


def test_recognisability_counts_the_intended_class():
    x = torch.zeros(4, 3, 8, 8)
    for i, k in enumerate([1, 2, 3, 4]):
        x[i, 0] = k / 10
    assert recognisability(_Oracle(), x, torch.tensor([1, 2, 3, 4])) == 1.0
    assert recognisability(_Oracle(), x, torch.tensor([1, 2, 0, 0])) == 0.5


def test_realism_prefers_images_like_the_real_ones():
    torch.manual_seed(0)
    judge = Judge(num_classes=10).eval()
    real = torch.rand(300, 3, 64, 64) * 0.5
    like = torch.rand(300, 3, 64, 64) * 0.5
    unlike = torch.rand(300, 3, 64, 64) * 0.5 + 0.5
    assert realism(judge, like, real) < realism(judge, unlike, real)


def test_reconstruction_metrics_keys_and_ranges():
    torch.manual_seed(0)
    e = build_caffenet("small").eval()
    g = Generator(generator_config("small", (512,), widths=(16, 8, 8, 8), fc=(64,))).eval()
    x, y = torch.rand(6, 3, 64, 64), torch.arange(6) % 10
    m = reconstruction_metrics(g, e, "fc6", x, y, judge=Judge(num_classes=10).eval())
    assert set(m) == {"recon_image_mse", "recon_feature_mse", "recon_encoder_acc", "recon_judge_acc", "real_judge_acc"}
    assert 0 < m["recon_image_mse"] < 1 and 0 <= m["recon_judge_acc"] <= 1
    # E's accuracy on G(E(x)) is E's argmax on the reconstructions against the labels
    rec = reconstruct(g, e, "fc6", x)
    with torch.no_grad():
        e_lab = e(rec).argmax(1)
    assert m["recon_encoder_acc"] == pytest.approx((e_lab == y).float().mean().item())
    wrong = (e_lab + 1) % 10  # labels E never gives: 0 by construction
    assert reconstruction_metrics(g, e, "fc6", x, wrong)["recon_encoder_acc"] == 0.0
