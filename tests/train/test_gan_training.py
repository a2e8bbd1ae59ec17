import pytest
import torch

from dgn.errors import DGNError
from dgn.nets import build_caffenet
from dgn.train import GANConfig, GANTrainer, code_stats, load_checkpoint, load_generator, save_checkpoint, tensor_batches
from dgn.train.gan import PAPER, image_loss

TINY_G = {"widths": (16, 8, 8, 8), "fc": (64,)}


@pytest.fixture()
def encoder():
    torch.manual_seed(0)
    return build_caffenet("small").eval()


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 64, 64, generator=g)


def test_code_stats_bounds(encoder):
    x = _images(32)
    st = code_stats(encoder, "fc6", tensor_batches((x * 255).byte(), batch_size=8))
    y = encoder.blob((x * 255).byte().float() / 255, "fc6")
    assert torch.allclose(st["mean"], y.mean(0), atol=1e-5)
    assert torch.allclose(st["std"], y.std(0, unbiased=False), atol=1e-4)
    assert torch.allclose(st["upper"], st["mean"] + 3 * st["std"])
    assert int(st["n"]) == 32


def test_gan_step_trains_all_losses_and_image_loss_falls(encoder):
    torch.manual_seed(0)
    cfg = GANConfig(layer="fc6", w_feature=0.1, w_adv=0.01, lr=1e-3, warmup_steps=0, generator_overrides=TINY_G)
    tr = GANTrainer(encoder, cfg)
    x = _images(16)
    first = tr.step(x)
    for _ in range(25):
        last = tr.step(x)
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    assert first["adversarial"] > 0 and first["feature"] > 0 and first["d_loss"] > 0
    assert last["image"] < first["image"]


def test_warmup_trains_image_loss_alone(encoder):
    cfg = GANConfig(warmup_steps=2, w_adv=0.01, feature_layer="pool5", generator_overrides=TINY_G)
    tr = GANTrainer(encoder, cfg)
    a, b, c = (tr.step(_images(4)) for _ in range(3))
    assert a["feature"] == a["adversarial"] == a["d_loss"] == 0 and b["adversarial"] == 0
    assert c["adversarial"] > 0 and c["feature"] > 0


def test_balance_rule_pauses_the_stronger_side(encoder):
    tr = GANTrainer(encoder, GANConfig(balance=10.0, w_adv=0.01, pause="update", generator_overrides=TINY_G))
    tr._balance(d_loss=0.01, g_adv=1.0)  # D far ahead: pause D
    assert (tr.train_d, tr.train_g) == (False, True)
    tr._balance(d_loss=2.0, g_adv=0.1)  # G far ahead: D resumes, G pauses
    assert (tr.train_d, tr.train_g) == (True, False)
    tr._balance(d_loss=0.7, g_adv=0.7)  # a paused G resumes only once D is paused again (the reference's rule)
    assert (tr.train_d, tr.train_g) == (True, False)
    # a paused G skips its update (the paper's rule)
    tr = GANTrainer(encoder, GANConfig(balance=10.0, w_adv=0.01, pause="update", warmup_steps=0,
                                       generator_overrides=TINY_G))
    tr.train_g = False
    before = [p.clone() for p in tr.G.parameters()]
    out = tr.step(_images(4))
    assert out["g_trained"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, tr.G.parameters()))


def test_defaults_are_the_product_recipe_and_paper_overrides_them():
    cfg = GANConfig()
    assert (cfg.image_loss, cfg.w_image, cfg.w_feature, cfg.w_adv, cfg.feature_layer, cfg.warmup_steps, cfg.lr,
            cfg.pause, cfg.generator_overrides) == ("contrast", 0.1, 1.0, 0.0, "pool5", 100, 1e-3, "none",
                                                    {"widths": (128, 64, 32, 16)})
    cfg.validate()
    paper = GANConfig(**PAPER)
    paper.validate()
    assert (paper.generator, paper.generator_overrides, paper.feature_layer, paper.warmup_steps) == (
        "paper", None, "pool5", 0)
    assert GANConfig.from_dict(paper.to_dict()) == paper
    assert GANConfig.from_dict({**cfg.to_dict(), "corr_weight": 0.1}) == cfg  # an older config still reads


def test_caffe_reduction_is_half_sum_and_caffe_scale_is_255():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 1 / 255)
    px = {"image_loss": "pixel"}
    assert image_loss(a, b, GANConfig(reduction="caffe", scale="caffe", **px)).item() == pytest.approx(0.5 * 48)
    assert image_loss(a, b, GANConfig(reduction="caffe", **px)).item() == pytest.approx(0.5 * 48 / 255**2)
    assert image_loss(a, b, GANConfig(scale="caffe", **px)).item() == pytest.approx(1.0)


def test_gan_checkpoint_round_trip_and_errors(encoder, tmp_path):
    cfg = GANConfig(generator_overrides=TINY_G, w_adv=0.01, pause="update", warmup_steps=0)
    st = code_stats(encoder, "fc6", [_images(8)])
    tr = GANTrainer(encoder, cfg, code_stats=st)
    tr.step(_images(4))
    tr.train_d = False  # the balance state and each network's update count travel with the checkpoint
    uri = save_checkpoint(tr.state(epoch=3), str(tmp_path / "g" / "epoch=0003.pt"))
    assert not [p for p in (tmp_path / "g").iterdir() if p.name.endswith(".tmp")]
    g, ck = load_generator(uri)
    assert ck["epoch"] == 3 and torch.equal(ck["code_stats"]["upper"], st["upper"])
    z = torch.rand(2, 512)
    tr.G.eval()
    assert torch.allclose(g(z), tr.G(z))
    tr2 = GANTrainer(encoder, cfg)
    tr2.load(ck)
    assert tr2.step_count == tr.step_count
    assert (tr2.train_d, tr2.train_g, tr2.g_updates, tr2.d_updates) == (False, True, 1, 1)
    assert "G for code (512,)" in ck["description"]
    with pytest.raises(DGNError, match="another generator architecture than the one configured"):
        GANTrainer(encoder, GANConfig(generator_overrides={**TINY_G, "fc": (32,)})).load(ck)
    # a generator for another code layer does not load
    with pytest.raises(DGNError, match="not the one configured for fc7"):
        GANTrainer(encoder, GANConfig(layer="fc7", generator_overrides=TINY_G)).load(ck)
    with pytest.raises(DGNError, match="holds a gan but a classifier checkpoint is needed"):
        load_checkpoint(uri, "classifier")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(DGNError, match="corrupt or not a dgn checkpoint"):
        load_checkpoint(str(bad))
    with pytest.raises(DGNError, match="does not exist"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_bad_gan_config_is_a_clear_error(encoder):
    with pytest.raises(DGNError, match="unknown layer 'fc9'"):
        GANTrainer(encoder, GANConfig(layer="fc9"))
    with pytest.raises(DGNError, match="unknown image_loss 'l1'"):
        GANTrainer(encoder, GANConfig(image_loss="l1"))
    with pytest.raises(DGNError, match="w_adv must be ≥ 0"):
        GANTrainer(encoder, GANConfig(w_adv=-1))
    with pytest.raises(DGNError, match="unknown image_loss 'perceptual'; valid: pixel, contrast"):
        GANConfig(image_loss="perceptual").validate()
    with pytest.raises(DGNError, match="pause='adversarial' stops G against D, but w_adv is 0"):
        GANConfig(pause="adversarial").validate()
    with pytest.raises(DGNError, match="d_resume must lie between"):
        GANConfig(w_adv=1.0, d_resume=20.0).validate()


@pytest.mark.parametrize("layer", ["pool5", "conv5", "fc8"])
def test_gan_trains_on_other_code_layers(encoder, layer):
    tr = GANTrainer(encoder, GANConfig(layer=layer, warmup_steps=0, w_adv=0.01, generator_overrides=TINY_G))
    out = tr.step(_images(4))
    assert out["adversarial"] > 0
