"""The paper preset against the reference's own definitions, written out here by hand.

Reference: the DeePSiM training code DGN-AM's G was trained with, as kept in
KamitaniLab/End2EndDeepImageReconstruction (``model_training/train.py``, ``generator.prototxt``,
``encoder.prototxt``, ``discriminator.prototxt``, ``img_data.prototxt``, ``net_templates/solver_template.prototxt``),
and Caffe's layer definitions (EuclideanLossLayer, SoftmaxWithLossLayer).
"""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from dgn.nets import build_caffenet
from dgn.train.gan import (
    PAPER, GANConfig, GANTrainer, adversarial_loss, balance_rule, discriminator_losses, euclidean, image_loss,
    input_convention,
)

SMALL_FC = {"fc": (128,)}  # the paper G with a narrower first FC: the same losses, a faster test


# --- Caffe, by hand (float64 numpy) ---------------------------------------------------------------------------

def caffe_euclidean(a, b) -> float:
    """EuclideanLossLayer::Forward: dot(diff, diff) / bottom[0]->num() / 2."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = (a - b).reshape(len(a), -1)
    return float((diff * diff).sum() / len(a) / 2)


def caffe_softmax_with_loss(logits, labels) -> float:
    """SoftmaxWithLossLayer::Forward (normalization VALID, no ignore_label): −Σ_n log p_n[label_n] / N."""
    z = np.asarray(logits, np.float64)
    loss = 0.0
    for n in range(len(z)):
        e = np.exp(z[n] - z[n].max())
        loss -= math.log(max(e[labels[n]] / e.sum(), np.finfo(np.float32).tiny))
    return loss / len(z)


def caffe_data(x) -> np.ndarray:
    """img_data.prototxt's data blob of RGB [0, 1] images: BGR, 0–255, mean_value 104, 117, 123 subtracted."""
    bgr = np.asarray(x, np.float64)[:, ::-1] * 255.0
    return bgr - np.array([104.0, 117.0, 123.0]).reshape(1, 3, 1, 1)


def reference_switch(train_discr, train_gen, ratio):
    """model_training/train.py's three ifs, verbatim in logic, on discr_loss_ratio."""
    if ratio < 1e-1 and train_discr:
        train_discr, train_gen = False, True
    if ratio > 5e-1 and not train_discr:
        train_discr, train_gen = True, True
    if ratio > 1e1 and train_gen:
        train_gen, train_discr = False, True
    return train_discr, train_gen


# --- fixtures ---------------------------------------------------------------------------------------------------

@pytest.fixture()
def encoder():
    torch.manual_seed(0)
    return build_caffenet("small").eval()


def _images(n=4, seed=0):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _no_dropout(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


# --- the loss layers ---------------------------------------------------------------------------------------------

def test_loss_functions_are_caffes_layers_on_fixed_tensors():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 3, 5, 5, generator=g), torch.rand(3, 3, 5, 5, generator=g)
    assert euclidean(a, b, "caffe").item() == pytest.approx(caffe_euclidean(a, b), rel=1e-6)
    assert euclidean(a, b, "mean").item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)
    paper = GANConfig(**PAPER)
    assert image_loss(a, b, paper).item() == pytest.approx(caffe_euclidean(caffe_data(a), caffe_data(b)), rel=1e-5)
    logits_real, logits_fake = torch.randn(4, 2, generator=g) * 3, torch.randn(4, 2, generator=g) * 3
    l_real, l_fake = discriminator_losses(logits_real, logits_fake)
    # our D's columns are [generated, real]; the reference labels real 0 and generated 1 on its own columns, the
    # same loss with the columns named the other way round
    assert l_real.item() == pytest.approx(caffe_softmax_with_loss(logits_real.flip(1), [0] * 4), rel=1e-6)
    assert l_fake.item() == pytest.approx(caffe_softmax_with_loss(logits_fake.flip(1), [1] * 4), rel=1e-6)
    assert adversarial_loss(logits_fake).item() == pytest.approx(
        caffe_softmax_with_loss(logits_fake.flip(1), [0] * 4), rel=1e-6)


def test_paper_preset_holds_the_reference_numbers():
    cfg = GANConfig(**PAPER)
    # generator.prototxt recon_loss 2e-6, encoder.prototxt feat_recon_loss on pool5 0.01, discriminator.prototxt
    # discr_loss 100; solver_template: Adam 2e-4, 0.9, 0.999, weight_decay 4e-4, multistep γ 0.5 at 300k … 1.1M
    assert (cfg.w_image, cfg.w_feature, cfg.w_adv, cfg.feature_layer) == (2e-6, 0.01, 100.0, "pool5")
    assert (cfg.reduction, cfg.scale, cfg.image_loss, cfg.warmup_steps) == ("caffe", "caffe", "pixel", 0)
    assert (cfg.lr, cfg.beta1, cfg.beta2) == (2e-4, 0.9, 0.999)
    assert cfg.lr_steps == (300_000, 500_000, 700_000, 900_000, 1_100_000) and cfg.lr_gamma == 0.5
    # decay_mult 0 on every generator parameter, 1 on the discriminator's; G's Deconvolution biases lr_mult 0
    assert (cfg.weight_decay_g, cfg.weight_decay_d, cfg.freeze_g_conv_bias) == (0.0, 4e-4, True)
    assert (cfg.balance, cfg.d_resume, cfg.pause) == (10.0, 0.5, "update")
    assert (cfg.generator, cfg.discriminator, cfg.generator_overrides) == ("paper", "paper", None)


def test_paper_step_computes_each_loss_as_the_reference(encoder):
    torch.manual_seed(0)
    tr = GANTrainer(encoder, GANConfig(**{**PAPER, "generator_overrides": SMALL_FC}))
    x = _images()
    y = encoder.blob(x, "fc6")
    with torch.no_grad():
        fake = tr.G(y)  # G has no dropout or batch norm: the step's G(y) before its update
    calls = []
    tr.D.register_forward_hook(lambda m, inp, out: calls.append((inp[0].detach().clone(), out.detach().clone())))
    out = tr.step(x)

    # reconstruction loss on the data blob (Caffe's convention) and the feature loss on pool5
    img = caffe_euclidean(caffe_data(fake), caffe_data(x))
    feat = caffe_euclidean(encoder.blob(fake, "pool5"), encoder.blob(x, "pool5"))
    assert out["image"] == pytest.approx(img, rel=1e-4)
    assert out["feature"] == pytest.approx(feat, rel=1e-4)
    # D: real then generated, both as the data blob; then the updated D on the generated batch for G
    (d_in, d_logits), (g_in, g_logits) = calls
    assert np.allclose(d_in.numpy(), caffe_data(torch.cat([x, fake])), atol=1e-3)
    assert np.allclose(g_in.numpy(), caffe_data(fake), atol=1e-3)
    d_real = caffe_softmax_with_loss(d_logits[:4].flip(1), [0] * 4)  # the reference's label 0: real
    d_fake = caffe_softmax_with_loss(d_logits[4:].flip(1), [1] * 4)
    adv = caffe_softmax_with_loss(g_logits.flip(1), [0] * 4)  # "fake_for_generator": generated labelled real
    assert (out["d_real"], out["d_fake"], out["adversarial"]) == pytest.approx((d_real, d_fake, adv), rel=1e-5)
    assert out["d_loss"] == pytest.approx(d_real + d_fake, rel=1e-5)
    assert out["ratio"] == pytest.approx((d_real + d_fake) / adv, rel=1e-5)  # discr_loss_ratio
    assert out["g_loss"] == pytest.approx(2e-6 * img + 0.01 * feat + 100 * adv, rel=1e-4)
    assert out["d_trained"] == out["g_trained"] == 1.0
    assert "CUT" in tr.describe() and "E takes imagenet input (not Caffe's" in tr.describe()


def test_paper_d_minimises_100_times_the_sum_of_its_two_losses(encoder):
    torch.manual_seed(0)
    tr = GANTrainer(encoder, GANConfig(**{**PAPER, "generator_overrides": SMALL_FC}))
    _no_dropout(tr.D)
    x = _images()
    y = encoder.blob(x, "fc6")
    d0 = copy.deepcopy(tr.D)
    with torch.no_grad():
        fake = tr.G(y)
    grads = {}
    step = tr.opt_d.step
    tr.opt_d.step = lambda *a, **k: (grads.update({n: p.grad.clone() for n, p in tr.D.named_parameters()}),
                                     step(*a, **k))[1]
    tr.step(x)
    # by hand: Caffe backpropagates loss_weight · ∂L for the real pass and the generated pass into one update
    logits = d0(torch.from_numpy(caffe_data(torch.cat([x, fake]))).float(), torch.cat([y, y]))
    logp = torch.log_softmax(logits, 1)
    l_real, l_fake = -logp[:4, 1].mean(), -logp[4:, 0].mean()
    want = torch.autograd.grad(100.0 * (l_real + l_fake), list(d0.parameters()))
    for (name, _), w in zip(d0.named_parameters(), want):
        # float32 vs float64 input rounding flips a few ReLUs near 0: a factor of 2 (mean over 2B) would be 50%
        assert (grads[name] - w).norm() <= 1e-2 * w.norm(), name


def test_paper_optimisers_init_and_lr_schedule(encoder):
    torch.manual_seed(0)
    tr = GANTrainer(encoder, GANConfig(**{**PAPER, "generator_overrides": SMALL_FC, "lr_steps": (1, 2)}))
    assert [g["weight_decay"] for g in tr.opt_d.param_groups] == [4e-4]
    assert [g["weight_decay"] for g in tr.opt_g.param_groups] == [0.0]
    assert [g["betas"] for g in tr.opt_g.param_groups + tr.opt_d.param_groups] == [(0.9, 0.999)] * 2
    in_opt = {id(p) for g in tr.opt_g.param_groups for p in g["params"]}
    deconvs = [m for m in tr.G.stack if isinstance(m, nn.ConvTranspose2d)]
    fcs = [m for m in tr.G.front if isinstance(m, nn.Linear)]
    assert all(id(m.bias) not in in_opt and id(m.weight) in in_opt for m in deconvs)  # lr_mult 0 on the biases
    assert all(id(m.bias) in in_opt for m in fcs)  # the FC biases learn (lr_mult 1)
    # D's msra fillers: Dconv1 coeff 0.1 (fan_in 3·7·7), Dconv2 1 (32·5·5)
    convs = [m for m in tr.D.image if isinstance(m, nn.Conv2d)]
    assert convs[1].weight.std().item() == pytest.approx((2 / (32 * 25)) ** 0.5, rel=0.05)
    assert convs[0].weight.std().item() == pytest.approx(0.1 * (2 / (3 * 49)) ** 0.5, rel=0.15)
    x = _images()
    bias_before = deconvs[0].bias.clone()
    lrs = []
    for _ in range(3):
        tr.step(x)
        lrs.append(tr.opt_g.param_groups[0]["lr"])
    assert lrs == pytest.approx([2e-4, 1e-4, 5e-5])  # ×0.5 from the 2nd update, ×0.25 from the 3rd
    assert torch.equal(deconvs[0].bias, bias_before) and deconvs[0].bias.abs().max() == 0


# --- the balance -----------------------------------------------------------------------------------------------

# (L_real, L_fake, L_adv) per step → (train_discr, train_gen) for the next step, by the reference's rule.
# The ratio is (L_real + L_fake) / L_adv, each L a batch mean: step 4's 0.6 resumes D; a mean over 2B (0.3) would not.
SCRIPT = [
    ((0.5, 0.5, 1.0), (True, True)),     # ratio 1
    ((0.02, 0.03, 1.0), (False, True)),  # 0.05 < 0.1: D stops
    ((0.15, 0.15, 1.0), (False, True)),  # 0.3: not above 0.5, D stays stopped (hysteresis)
    ((0.3, 0.3, 1.0), (True, True)),     # 0.6 > 0.5: D resumes
    ((1.0, 1.0, 0.1), (True, False)),    # 20 > 10: G stops
    ((0.5, 0.5, 0.2), (True, False)),    # 5: G stays stopped
    ((0.15, 0.15, 1.0), (True, False)),  # 0.3: still; a stopped G resumes only when D stops
    ((0.04, 0.04, 1.0), (False, True)),  # 0.08 < 0.1: D stops, G resumes
    ((1.0, 0.5, 0.1), (True, False)),    # 15: D resumes (> 0.5) and G stops (> 10) in the same step
    ((0.35, 0.35, 1.0), (True, False)),  # 0.7
]


def test_balance_rule_is_the_references_state_machine():
    state = (True, True)
    for (l_real, l_fake, l_adv), want in SCRIPT:
        ratio = (l_real + l_fake) / l_adv
        assert reference_switch(*state, ratio) == want
        state = balance_rule(*state, ratio, balance=10.0, d_resume=0.5)
        assert state == want, (l_real, l_fake, l_adv)


def test_trainer_follows_the_scripted_balance_and_pauses_the_nets(encoder):
    torch.manual_seed(0)
    cfg = GANConfig(w_adv=0.01, pause="update", warmup_steps=0, generator_overrides={"widths": (16, 8, 8, 8),
                                                                                      "fc": (64,)})
    tr = GANTrainer(encoder, cfg)
    script = iter([(r + f, a) for (r, f, a), _ in SCRIPT])
    tr.reduce = lambda values: list(next(script))  # the losses the balance is decided on: scripted
    x = _images()
    state = (True, True)
    for _, want in SCRIPT:
        g_before = [p.clone() for p in tr.G.parameters()]
        d_before = [p.clone() for p in tr.D.parameters()]
        out = tr.step(x)
        assert (out["d_trained"], out["g_trained"]) == (float(state[0]), float(state[1]))
        assert any(not torch.equal(a, b) for a, b in zip(d_before, tr.D.parameters())) == state[0]
        assert any(not torch.equal(a, b) for a, b in zip(g_before, tr.G.parameters())) == state[1]
        assert (tr.train_d, tr.train_g) == want
        state = want
    assert tr.d_updates == sum(s[0] for s in [(True, True)] + [w for _, w in SCRIPT[:-1]])


# --- the comparator's input convention --------------------------------------------------------------------------

def test_caffe_convention_alone_does_not_change_pool5(encoder):
    """The same E written for Caffe's input (255·x − Caffe's mean; conv1 rescaled by 1/(255·std), its bias
    shifted) computes the same pool5: the comparator's scale is E's weights', not the convention's."""
    net = dict(pads=(0, 2, 1, 1, 1), batchnorm=False)  # unpadded conv1 with a bias (as CaffeNet's): the fold is exact
    e = build_caffenet("small", **net)
    mean_c = tuple(v / 255 for v in (123.0, 117.0, 104.0))
    e_caffe = build_caffenet("small", **net, mean=mean_c, std=(1 / 255,) * 3)
    e_caffe.load_state_dict(e.state_dict())
    with torch.no_grad():
        s, m = torch.tensor(e.config.std).view(1, 3, 1, 1), torch.tensor(e.config.mean).view(1, 3, 1, 1)
        w = e.conv1.weight / s  # (x − m)/s · W  =  255(x − m_c) · W/(255 s)  +  W·(m_c − m)/s
        e_caffe.conv1.weight.copy_(w / 255)
        e_caffe.conv1.bias.copy_(e.conv1.bias + (w * (torch.tensor(mean_c).view(1, 3, 1, 1) - m)).sum((1, 2, 3)))
    assert input_convention(e) == "imagenet" and input_convention(e_caffe) == "caffe"
    x = _images()
    a, b = e.eval().blob(x, "pool5"), e_caffe.eval().blob(x, "pool5")
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * a.abs().max().item())
