import pytest
import torch

from dgn.am import AM_PAPER, AMConfig, Objective, TargetNet, dgn_am, evaluate, unit
from dgn.errors import DGNError
from dgn.nets import Generator, build_caffenet, generator_config


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    e = build_caffenet("small").eval()
    g = Generator(generator_config("small", (512,), widths=(32, 16, 8, 8), fc=(128,))).eval()
    # a random G's BatchNorm running stats squash its output: set them from a batch of codes
    g.train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.rand(32, 512) * 2)
    g.eval()
    stats = {"mean": torch.full((512,), 0.5), "std": torch.full((512,), 0.5), "upper": torch.full((512,), 2.0)}
    return e, g, stats


def test_objective_parse_and_compose():
    o = Objective.parse("fc8:3+0.5*fc8:7")
    assert str(o) == "fc8:3+0.5*fc8:7"
    assert unit("fc8", 3) + 0.5 * unit("fc8", 7) == o
    assert o.layers == ("fc8",)
    with pytest.raises(DGNError, match="bad objective"):
        Objective.parse("fc8:3++")


def test_evaluate_objective_k_on_image_k():
    acts = {"fc8": torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), "conv": torch.arange(2 * 2 * 3 * 3.0).view(2, 2, 3, 3)}
    objs = [Objective.parse("fc8:2"), Objective.parse("fc8:0+2*fc8:1+conv:1@0,0")]
    assert evaluate(objs, acts).tolist() == [3.0, 4.0 + 10.0 + 9 + 18]


def test_am_raises_class_units(nets):
    e, g, stats = nets
    target = TargetNet.caffenet(e)
    objs = [f"fc8:{k}" for k in range(4)]
    res = dgn_am(g, target, objs, code_stats=stats, config=AMConfig(steps=12, lr=1.0, init="noise"))
    assert res.images.shape == (4, 3, 64, 64)
    assert res.trace.shape == (4, 12)
    assert (res.activations > res.trace[:, 0]).all(), "every class unit should rise above its start"
    assert (res.codes >= 0).all() and (res.codes <= 2.0 + 1e-6).all(), "codes stay inside [0, upper]"


def test_hidden_units_optimise_pre_relu_and_report_post_relu(nets):
    e, g, stats = nets
    target = TargetNet.caffenet(e)
    units = ["fc6:1", "conv5:3", "conv3:2@1,1"]
    start = dgn_am(g, target, units, code_stats=stats, config=AMConfig(steps=0, init="zeros"))
    res = dgn_am(g, target, units, code_stats=stats, config=AMConfig(steps=10, lr=1.0, init="zeros"))
    assert (res.activations >= 0).all()
    assert torch.allclose(res.activations, res.objective.clamp_min(0))
    assert (res.objective > start.objective).all(), "the pre-ReLU value rises even where the unit starts dead"


@pytest.mark.parametrize("jitter", [0, 3])
def test_batched_equals_one_at_a_time(nets, jitter):
    e, g, stats = nets
    e64, g64 = build_caffenet("small").double().eval(), g.double()
    e64.load_state_dict(e.state_dict())
    stats64 = {k: v.double() for k, v in stats.items()}
    target = TargetNet.caffenet(e64)
    objs = ["fc8:0", "fc8:5", "fc6:9", "fc8:1+fc8:2"]
    cfg = AMConfig(steps=8, lr=1.0, init="noise", seed=3, jitter=jitter)
    batched = dgn_am(g64, target, objs, code_stats=stats64, config=cfg)
    for k, o in enumerate(objs):
        # the same start as the batch gave objective k (noise is drawn per objective index)
        single = dgn_am(g64, target, [o], code_stats=stats64, config=AMConfig(**{**cfg.to_dict(), "init": "codes"}),
                        codes=_start(cfg, k, stats64))
        assert torch.allclose(single.codes[0], batched.codes[k], atol=1e-9)
        assert torch.allclose(single.activations[0], batched.activations[k], atol=1e-9)
    if jitter:  # the shifts do reach the target: without them the codes differ
        still = dgn_am(g64, target, objs, code_stats=stats64, config=AMConfig(**{**cfg.to_dict(), "jitter": 0}))
        assert not torch.allclose(still.codes, batched.codes)
    g.float()


def _start(cfg, k, stats):
    from dgn.am.dgn_am import _init_codes

    return _init_codes(cfg, k + 1, (512,), stats, None, "cpu", torch.float64)[k:k + 1]


def test_defaults_are_the_product_and_am_paper_the_reference():
    # the product default: what the old DEFAULT_AM laid over the old AMConfig() (lr now 0.5), made faithful to the
    # reference in what it returns (the last step, keep_best off), the start (not clipped) and clip-then-decay
    assert AMConfig() == AMConfig(steps=200, lr=0.5, lr_end=1e-10, decay=0.01, normalise_grad=True, clip=True,
                                  clip_start=False, init="noise", noise_std=1.0, seed=0, keep_best=False, jitter=0)
    assert {k: v for k, v in AM_PAPER.items() if getattr(AMConfig(), k) != v} == {"lr": 8.0, "init": "randn"}
    p = AMConfig(**AM_PAPER)  # act_max.py run by 1_activate_output.sh
    assert (p.steps, p.lr, p.lr_end, p.decay, p.normalise_grad, p.clip) == (200, 8.0, 1e-10, 0.01, True, True)
    assert (p.init, p.seed, p.clip_start, p.keep_best, p.jitter) == ("randn", 0, False, False, 0)


def test_bad_units_and_inits_are_clear_errors(nets):
    e, g, stats = nets
    target = TargetNet.caffenet(e)
    with pytest.raises(DGNError, match=r"unit fc8:10 is out of range: layer 'fc8' has channels 0..9"):
        dgn_am(g, target, ["fc8:10"], code_stats=stats, config=AMConfig(steps=1))
    with pytest.raises(DGNError, match="unknown layer 'fc9'"):
        dgn_am(g, target, ["fc9:1"], code_stats=stats, config=AMConfig(steps=1))
    with pytest.raises(DGNError, match="unknown AM init 'ones'"):
        dgn_am(g, target, ["fc8:1"], code_stats=stats, config=AMConfig(steps=1, init="ones"))
    with pytest.raises(DGNError, match="no objectives"):
        dgn_am(g, target, [], code_stats=stats)


def test_any_module_can_be_a_target(nets):
    _, g, stats = nets
    torch.manual_seed(1)
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 5))
    target = TargetNet(other, input_size=32)
    res = dgn_am(g, target, ["4:2", "0:3@5,5"], code_stats=stats, config=AMConfig(steps=10, lr=1.0, init="noise"))
    assert (res.activations > res.trace[:, 0]).all()
    assert not any(m._forward_hooks for m in other.modules())
