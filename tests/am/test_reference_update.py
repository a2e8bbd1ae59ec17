"""dgn_am against act_max.py (Evolving-AI-Lab/synthesizing), transcribed line by line.

``reference_act_max`` below follows the reference's ``activation_maximization``,
``make_step_net`` and ``make_step_generator`` statement by statement, in numpy,
with Caffe's forward/backward passes done by autograd on the same tiny
networks: G's raw (uncropped) Caffe-convention image is cropped for the net, the
net's gradient is normalised *in pixel space* and steps the image, the image
change is back-propagated through G and normalised again, the code is clipped
to [0, bound] (bound read from an ``act_range``-format file with the reference's
``np.loadtxt``), multiplied by L2 = 0.99, and the last iteration's image is
returned. dgn does one normalised code-gradient step instead (the two
normalisations differ by a positive scalar), batched; both must agree to 1e-6.
"""

import numpy as np
import pytest
import torch
from torch import nn

from dgn.am import AM_PAPER, AMConfig, TargetNet, dgn_am
from dgn.nets.deepsim import load_bounds, save_bounds
from dgn.nets.generator import Generator, GeneratorConfig

D = 16  # code size
CAFFE_MEAN_BGR = np.array([104.0, 117.0, 123.0])


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    torch.manual_seed(0)
    # a tiny DeePSiM-like G: Caffe's image (BGR, 0-255, mean subtracted), 16 px raw, centre-cropped to 14
    # (the reference's 256 → 227)
    g = Generator(GeneratorConfig(code_shape=(D,), image_size=14, arch="deconv", fc=(32,), widths=(8, 3),
                                  extra_widths=(0, 0), norm="none", output="caffe", base_channels=8)).double().eval()
    assert g.out_size == 16
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(8.0)  # images of a few tens of grey levels (none clipped), as a real G gives
    t = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU(), nn.Flatten(),
                      nn.Linear(5 * 10 * 10, 6)).double().eval()
    with torch.no_grad():
        t[5].weight[0].zero_()  # unit 5:0 has no gradient: the reference stops at once
    # bounds exactly representable in text, float32 and float64
    upper = torch.randint(2, 12, (D,)).double() / 16
    bound_file = save_bounds(upper, tmp_path_factory.mktemp("act_range") / "fc6.txt")
    return g, t, bound_file


# --- act_max.py, transcribed (Python 3: `/` on the ints of `topleft` is `//`) -------------------------------------

def _caffe_net(t):
    """The net being visualised, as the reference's caffe.Classifier sees it: Caffe's image in, blobs out."""

    def forward(data):  # data: BGR, 0-255, mean subtracted
        rgb = (data + torch.tensor(CAFFE_MEAN_BGR, dtype=data.dtype).view(1, 3, 1, 1)).flip(1) / 255.0
        blobs, h = {}, rgb
        for name, m in t.named_children():
            h = m(h)
            blobs[name] = h
        return blobs

    return forward


def make_step_net(net, end, unit, image, xy=0, step_size=1, conv=False):
    data = torch.from_numpy(image.copy()).requires_grad_(True)
    acts = net(data)  # acts = net.forward(data=image, end=end)
    one_hot = torch.zeros_like(acts[end])
    if not conv:
        one_hot.view(-1)[unit] = 1.0  # one_hot.flat[unit] = 1.
    else:
        one_hot[:, unit, xy, xy] = 1.0  # one_hot[:, unit, xy, xy] = 1.
    (g,) = torch.autograd.grad(acts[end], data, grad_outputs=one_hot)  # net.backward(start=end, diffs=['data'])
    g = g.numpy()[0]  # g = diffs['data'][0]
    grad_norm = np.linalg.norm(g)
    obj_act = 0
    src = image.copy()
    if np.isnan(grad_norm):
        return 1e-12, src, obj_act
    elif grad_norm == 0:
        return 0, src, obj_act
    fc = acts[end].detach().numpy()[0] if not conv else acts[end].detach().numpy()[0, :, xy, xy]
    obj_act = fc[unit]
    src += step_size / np.abs(g).mean() * g  # src.data[:] += step_size/np.abs(g).mean() * g
    return grad_norm, src, obj_act


def make_step_generator(generator, code, x, x0, step_size=1):
    feat = torch.from_numpy(code.copy()).requires_grad_(True)
    out = generator.native(feat, crop=False)  # blob deconv0
    (g,) = torch.autograd.grad(out, feat, grad_outputs=torch.from_numpy(x - x0))  # diff = (x - x0); backward
    g = g.numpy().copy()
    grad_norm = np.linalg.norm(g)
    src = code.copy()
    if np.isnan(grad_norm):
        return 1e-12, src
    elif grad_norm == 0:
        return 0, src
    src += step_size / np.abs(g).mean() * g
    return grad_norm, src


def reference_act_max(generator, t, start_code, upper_bound, lower_bound, *, end, unit, xy=0, conv=False,
                      iter_n, start_lr, end_lr, L2, order="clip-then-L2"):
    """activation_maximization(); also returns the code behind best_xx (the reference keeps it in src.data)."""
    net = _caffe_net(t)
    image_size, output_size = (generator.config.image_size,) * 2, (generator.out_size,) * 2
    topleft = ((output_size[0] - image_size[0]) // 2, (output_size[1] - image_size[1]) // 2)
    crop = (slice(None), slice(None), slice(topleft[0], topleft[0] + image_size[0]),
            slice(topleft[1], topleft[1] + image_size[1]))
    src = start_code.copy()  # src.data[:] = start_code.copy()[:]
    acts = []
    for i in range(iter_n):
        step_size = start_lr + ((end_lr - start_lr) * i) / iter_n
        with torch.no_grad():
            x0 = generator.native(torch.from_numpy(src), crop=False).numpy()  # generator.forward(feat=src.data)
        cropped_x0 = x0.copy()[crop]
        grad_norm_net, x, act = make_step_net(net, end, unit, cropped_x0, xy, step_size, conv)
        best_xx = cropped_x0.copy()[:, ::-1, :, :]  # BGR → RGB; the last iteration's, not the best
        best_act, best_code = act, src.copy()
        acts.append(act)
        updated_x0 = x0.copy()
        updated_x0[crop] = x.copy()
        grad_norm_generator, updated_code = make_step_generator(generator, src, updated_x0, x0, step_size)
        if order == "clip-then-L2":
            updated_code = np.maximum(updated_code, lower_bound)
            updated_code = np.minimum(updated_code, upper_bound)
            if L2 > 0 and L2 < 1:
                updated_code[:] *= L2
        else:  # the order dgn used before: L2, then clip (only to show this test tells them apart)
            if L2 > 0 and L2 < 1:
                updated_code[:] *= L2
            updated_code = np.minimum(np.maximum(updated_code, lower_bound), upper_bound)
        src = updated_code  # src.data[:] = updated_code
        if grad_norm_generator == 0:  # noqa: SIM114 (the reference's two branches)
            break
        elif grad_norm_net == 0:
            break
    return best_xx, best_act, best_code, acts


def reference_main(bound_file, shape, seed):
    """main(): the seeded start code and the bounds."""
    np.random.seed(seed)
    start_code = np.random.normal(0, 1, shape)
    n_units = shape[1]
    upper_bound = np.loadtxt(bound_file, delimiter=' ', usecols=np.arange(0, n_units), unpack=True)
    upper_bound = upper_bound.reshape(start_code.shape)
    lower_bound = np.zeros(start_code.shape)  # "Lower bound of 0 due to ReLU"
    return start_code, upper_bound, lower_bound


def reference_image_rgb01(best_xx):
    """The reference's image (RGB, mean subtracted) in dgn's convention: + mean, / 255, clipped to [0, 1]."""
    return np.clip((best_xx + CAFFE_MEAN_BGR[::-1].reshape(1, 3, 1, 1)) / 255.0, 0, 1)


# units: (dgn objective, reference --act_layer/--unit/--xy); the conv map is 10×10, so dgn's default centre
# position is the reference's --xy 5 (as conv5's 13×13 centre is 2_activate_hidden.sh's xy=6)
UNITS = [("5:3", {"end": "5", "unit": 3}), ("2:1", {"end": "2", "unit": 1, "xy": 5, "conv": True}),
         ("5:0", {"end": "5", "unit": 0})]


def _stats(bound_file):
    return {"mean": torch.zeros(D), "std": torch.ones(D), "upper": load_bounds(bound_file, (D,))}


@pytest.mark.parametrize("steps", [2, 3])
def test_am_paper_is_act_max_py(nets, steps):
    g, t, bound_file = nets
    cfg = AMConfig(**{**AM_PAPER, "steps": steps})
    res = dgn_am(g, TargetNet(t), [u for u, _ in UNITS], code_stats=_stats(bound_file), config=cfg)
    start, upper, lower = reference_main(bound_file, (1, D), seed=cfg.seed)
    for k, (_, ref_unit) in enumerate(UNITS):
        xx, act, code, acts = reference_act_max(g, t, start, upper, lower, iter_n=steps, start_lr=8.0, end_lr=1e-10,
                                                L2=0.99, **ref_unit)
        assert np.allclose(res.codes[k].numpy(), code[0], rtol=0, atol=1e-6)
        assert np.allclose(res.images[k].numpy(), reference_image_rgb01(xx)[0], rtol=0, atol=1e-6)
        if k < 2:  # live units: every iteration ran; their last activation and each step's agree
            assert len(acts) == steps
            assert np.allclose(res.objective[k].item(), act, atol=1e-6)
            assert np.allclose(res.trace[k].numpy(), acts, atol=1e-6)
            swapped = reference_act_max(g, t, start, upper, lower, iter_n=steps, start_lr=8.0, end_lr=1e-10,
                                        L2=0.99, order="L2-then-clip", **ref_unit)[2]
            assert np.abs(swapped - code).max() > 1e-3, "the test must tell clip-then-decay from decay-then-clip"
        else:  # no gradient: the reference breaks after its first iteration; the result is the raw start
            assert len(acts) == 1
            assert np.allclose(res.codes[k].numpy(), start[0], atol=1e-12)
    assert (res.codes[2] < 0).any(), "the start code is not clipped before the first step"


def test_product_default_is_act_max_py_but_step_size_and_start(nets):
    """AMConfig()'s update is the reference's; only lr (0.1, not 8) and the start (noise around the mean) differ."""
    g, t, bound_file = nets
    cfg = AMConfig(steps=3)
    start = torch.from_numpy(np.random.RandomState(7).normal(0, 1, (1, D)))  # any start, given as codes
    res = dgn_am(g, TargetNet(t), [u for u, _ in UNITS[:2]], code_stats=_stats(bound_file),
                 config=AMConfig(**{**cfg.to_dict(), "init": "codes"}), codes=start.expand(2, D))
    _, upper, lower = reference_main(bound_file, (1, D), seed=0)
    for k, (_, ref_unit) in enumerate(UNITS[:2]):
        xx, _, code, acts = reference_act_max(g, t, start.numpy(), upper, lower, iter_n=3, start_lr=cfg.lr,
                                                end_lr=cfg.lr_end, L2=1 - cfg.decay, **ref_unit)
        assert np.allclose(res.codes[k].numpy(), code[0], rtol=0, atol=1e-6)
        assert np.allclose(res.images[k].numpy(), reference_image_rgb01(xx)[0], rtol=0, atol=1e-6)
        assert np.allclose(res.trace[k].numpy(), acts, atol=1e-6)


def test_clip_start_clips_the_first_image_only(nets):
    g, t, bound_file = nets
    stats = _stats(bound_file)
    raw = dgn_am(g, TargetNet(t), ["5:3"], code_stats=stats, config=AMConfig(**{**AM_PAPER, "steps": 0}))
    clipped = dgn_am(g, TargetNet(t), ["5:3"], code_stats=stats,
                     config=AMConfig(**{**AM_PAPER, "steps": 0, "clip_start": True}))
    assert torch.equal(clipped.codes, torch.minimum(raw.codes.clamp_min(0), stats["upper"].double()))
    assert not torch.equal(clipped.codes, raw.codes)


def test_randn_init_is_the_reference_draw_for_every_unit(nets):
    g, t, bound_file = nets
    res = dgn_am(g, TargetNet(t), ["5:3", "5:1"], code_stats=_stats(bound_file),
                 config=AMConfig(**{**AM_PAPER, "steps": 0, "seed": 5}))
    np.random.seed(5)
    start = np.random.normal(0, 1, (1, D))
    assert np.array_equal(res.codes.numpy(), np.repeat(start, 2, 0))


def test_keep_best_is_off_and_only_an_option(nets):
    g, t, bound_file = nets
    stats = _stats(bound_file)
    cfg = {**AM_PAPER, "steps": 6}
    last = dgn_am(g, TargetNet(t), ["5:3", "2:1"], code_stats=stats, config=AMConfig(**cfg))
    best = dgn_am(g, TargetNet(t), ["5:3", "2:1"], code_stats=stats, config=AMConfig(**{**cfg, "keep_best": True}))
    assert torch.allclose(last.objective, last.trace[:, -1])  # the last step, whatever its value
    assert torch.allclose(best.objective, best.trace.max(1).values)  # the best step (no jitter: same values)
    assert torch.equal(last.trace, best.trace)
