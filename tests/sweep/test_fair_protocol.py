"""The fair layer comparison's parts: matched G capacity, an independent comparator, the seed verdict with its ties,
the score without X (the flow end to end: test_fair_flow.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from dgn.errors import DGNError
from dgn.nets.caffenet import build_caffenet
from dgn.sweep import score, sweep_config
from dgn.sweep.capacity import generator_params, matched_overrides
from dgn.sweep.report import per_layer_seeds, seed_verdict, seed_verdict_line
from dgn.sweep.trial import gan_config
from dgn.train.gan import GANConfig, GANTrainer

SMALL_G = {"widths": (128, 64, 32, 16)}


@pytest.mark.parametrize("shape", [(96, 8, 8), (64, 4, 4), (512,), (10,)])
def test_matched_generators_have_the_target_parameter_count(shape):
    over, n = matched_overrides(shape, 64, 2_000_000, base=SMALL_G)
    assert abs(n - 2_000_000) / 2_000_000 < 0.01
    assert over["widths"] == SMALL_G["widths"]  # only the front width moves
    assert n == generator_params(shape, 64, **over)


def test_the_fair_sweep_gives_every_layer_the_same_g_size_and_the_product_g_does_not():
    net = build_caffenet("small", image_size=64, num_classes=10)
    cfg = sweep_config("fair", storage="/tmp/unused-fair")
    built = {}
    for layer in ("conv3", "pool5", "fc6", "fc8"):
        g = gan_config(cfg, layer, {"w_image": 0.1, "w_feature": 1.0, "w_adv": 0.0}, net.code_shape(layer))
        t = GANTrainer(net, g, comparator=net)  # the fair preset's independent comparator: any net, for G's size
        built[layer] = sum(p.numel() for p in t.generator.parameters())
    assert max(built.values()) / min(built.values()) < 1.02
    product = {layer: sum(p.numel() for p in GANTrainer(net, GANConfig(layer=layer)).generator.parameters())
               for layer in ("conv3", "fc6")}
    assert product["fc6"] / product["conv3"] > 2  # what the matching removes


def test_an_independent_comparator_replaces_e_in_the_feature_loss():
    torch.manual_seed(0)
    e = build_caffenet("small", image_size=32, num_classes=4).eval()
    c = build_caffenet("small", image_size=32, num_classes=4).eval()  # other weights
    x = torch.rand(6, 3, 32, 32)
    cfg = GANConfig(layer="pool5", feature_layer="pool5", warmup_steps=0, w_image=0.0, w_feature=1.0)
    losses = {}
    for name, comp in (("e", None), ("c", c)):
        t = GANTrainer(e, cfg if comp is None else replace(cfg, comparator="independent"), seed=3, comparator=comp)
        with torch.no_grad():
            fake = t.G(e.blob(x, "pool5"))  # train mode, as in step(): the same batch statistics
            net = e if comp is None else c
            expected = ((net.blob(fake, "pool5") - net.blob(x, "pool5")) ** 2).mean().item()
        losses[name] = t.step(x)["feature"]
        assert losses[name] == pytest.approx(expected, rel=1e-5)
    assert abs(losses["e"] - losses["c"]) > 1e-3 * losses["e"]  # E's code layer is not what C compares
    with pytest.raises(DGNError, match="needs the independent comparator network"):
        GANTrainer(e, replace(cfg, comparator="independent"))
    with pytest.raises(DGNError, match="needs no comparator network"):
        GANTrainer(e, cfg, comparator=c)


def test_score_without_x_renormalises_the_other_terms():
    m = {"am_recognisability": 0.9, "am_median_activation_ratio": 1.2, "am_realism_fd": 50.0, "recon_image_mse": 0.02}
    assert score(m, without=("X",)) == pytest.approx((0.4 * 0.9 + 0.2 * 0.6 + 0.2 / 1.5) / 0.8)
    assert score({**m, "recon_image_mse": 1.0}, without=("X",)) == pytest.approx(score(m, without=("X",)))
    assert score({**m, "recon_image_mse": 1.0}) < score(m)


def _rows(layer, scores, no_x):
    return [{"layer": layer, "seed": i, "trial": f"{layer}-{i}", "score": s, "score_no_x": n, "term_R": s,
             "term_A": s, "term_N": s, "term_X": s, "g_params": 1000.0, "g_step_s": 0.1}
            for i, (s, n) in enumerate(zip(scores, no_x))]


def test_seed_verdict_calls_a_gap_within_the_seed_spread_a_tie():
    rows = (_rows("conv3", [0.70, 0.72, 0.74], [0.60, 0.61, 0.62]) + _rows("fc6", [0.69, 0.71, 0.73], [0.70, 0.71, 0.72])
            + _rows("fc8", [0.40, 0.41, 0.42], [0.40, 0.41, 0.42]))
    summary = per_layer_seeds(rows, ("conv3", "fc6", "fc8"))
    assert summary[0]["n_seeds"] == 3 and summary[0]["score_mean"] == pytest.approx(0.72)
    assert summary[0]["score_sd"] == pytest.approx(0.02)  # sample sd across seeds
    v = seed_verdict(summary, "score")
    assert v["best_layer"] == "conv3" and v["ties"] == ["fc6"]  # 0.01 behind, spread √2·0.02
    assert "tie" in seed_verdict_line(v) and "fc8" not in v["ties"]
    w = seed_verdict(summary, "score_no_x")  # without X, fc6 leads by 0.1 ≫ spread 0.014: a win
    assert w["best_layer"] == "fc6" and w["ties"] == []
    assert "fc6 wins" in seed_verdict_line(w)
    assert not math.isnan(w["ranked"][1]["spread"])
