"""Training G to invert E's code: image, feature and adversarial losses, D/G balance.

One process, one step at a time, so that the same :class:`GANTrainer` runs
unchanged inside a Ray Train worker (wrap G and D in DDP there).

Losses (weights in :class:`GANConfig`):

1. image loss ‖G(y) − x‖² (``image_loss="pixel"``, the reference's), or the squared error of the two images'
   colour-free contrast maps (``"contrast"``, :func:`contrast_map`);
2. feature loss ‖C(G(y)) − C(x)‖², C = E up to ``feature_layer`` (the comparator);
3. adversarial loss: D (which also sees y) must call G(y) real (softmax cross-entropy over
   D's two logits, Caffe's ``SoftmaxWithLoss``).

Two switches put them on the reference's scales (the ``PAPER`` preset sets both):

- ``scale="caffe"``: images are compared, and shown to D, in Caffe's convention — BGR,
  0–255, the mean (104, 117, 123) subtracted, as the reference's ``data`` blob (the mean
  cancels in a difference; the 255 does not: the image term is 255² times the unit-scale
  one). The comparator is E and takes the image in E's own input convention: an E whose
  normalisation is Caffe's (std 1/255, Caffe's mean) sees exactly the reference's input; any
  other E computes the same function whichever convention its input is written in (the
  conversion folds into conv1), so its pool5 is on its own activation scale — see
  docs/gan.md and :meth:`GANTrainer.describe`.
- ``reduction="caffe"``: Caffe's ``EuclideanLoss`` ½·Σ/N (N = batch) for the image and feature
  terms, and D's objective ``w_adv · (L_real + L_fake)`` — the reference runs one loss layer,
  weight 100, for D on real, D on generated, and G — where ``"mean"`` averages over elements
  and D minimises the mean over its 2B images.

Step order and balance are the reference's (``model_training/train.py``): D is updated on the
real and the generated batch, then the updated D scores the generated batch for G's
adversarial term, then G is updated; ``ratio = (L_real + L_fake) / L_adv`` then sets who trains
next step by :func:`balance_rule`: D stops below ``1/balance`` (0.1) and resumes only above
``d_resume`` (0.5), G stops above ``balance`` (10) and resumes only when D stops.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from dgn.errors import DGNError
from dgn.nets.caffenet import CaffeNet, CaffeNetConfig, check_layer
from dgn.nets.conventions import CAFFE_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD, rgb_to_caffe
from dgn.nets.discriminator import ARCHS as DISCRIMINATORS
from dgn.nets.discriminator import Discriminator, code_dim
from dgn.nets.generator import Generator, GeneratorConfig, generator_config
from dgn.train.checkpoint import load_checkpoint, load_state
from dgn.train.classifier import autocast

IMAGE_LOSSES = ("pixel", "contrast")
REDUCTIONS = ("mean", "caffe")
SCALES = ("unit", "caffe")
PAUSES = ("none", "update", "adversarial")
COMPARATORS = ("encoder", "independent")
COMPARATOR_SEED_OFFSET = 7919  # the independent comparator's seed: E's seed + this (never E's, never the judge's)
REMOVED = ("corr_weight",)  # fields of older configs that :meth:`GANConfig.from_dict` drops


def _product_g() -> dict:
    return {"widths": (128, 64, 32, 16)}


@dataclass
class GANConfig:
    """Defaults: the product's 64-px recipe, tuned on the development set only (``shapes``, seed 0;
    ``bench/quality_study.py``): the colour-free contrast image loss at weight 0.1 under a pool5 comparator at
    weight 1 (the feature term leads), no D. On data whose colours are random E's code keeps no colour, so a
    pixel loss can only pull G toward grey; the contrast map asks for the shape's outline whatever its colour.
    :data:`PAPER` holds the reference's settings (pixel loss, pool5, D) as overrides."""

    layer: str = "fc6"  # E's code layer that G inverts
    generator: str = "small"  # generator preset (small | paper)
    generator_overrides: dict | None = field(default_factory=_product_g)  # GeneratorConfig fields to change
    discriminator: str = "dgn"  # D's layout: dgn | paper (the reference's image branch, MSRA init)
    image_loss: str = "contrast"  # "contrast": MSE of colour-free contrast maps | "pixel": the reference's MSE
    reduction: str = "mean"  # "mean" over elements | "caffe": EuclideanLoss ½·Σ/N, D's objective w_adv·(L_r + L_f)
    scale: str = "unit"  # "unit": RGB [0, 1] | "caffe": image term and D on BGR 0–255 minus the mean
    w_image: float = 0.1
    w_feature: float = 1.0
    w_adv: float = 0.0  # 0: no D at all
    feature_layer: str = "pool5"  # the comparator's layer
    # the comparator C whose feature_layer the feature loss compares: "encoder" (E itself, the reference's) |
    # "independent" (a third classifier trained like E with another seed; the job trains it as its "comparator"
    # stage: no code layer is then also the comparator, and G cannot fit E's own idiosyncrasies)
    comparator: str = "encoder"
    warmup_steps: int = 100  # image loss alone for the first steps
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    lr_steps: tuple[int, ...] = ()  # multistep schedule: lr × lr_gamma after each (counted per network's updates)
    lr_gamma: float = 0.5
    weight_decay_g: float = 0.0  # Adam's (coupled, L2) weight decay, as Caffe's weight_decay × decay_mult
    weight_decay_d: float = 0.0
    freeze_g_conv_bias: bool = False  # G's (de)conv biases stay at 0 (the reference's lr_mult 0)
    balance: float = 10.0  # D stops below ratio 1/balance, G stops above balance; 0: neither ever stops
    d_resume: float = 0.5  # a stopped D resumes above this ratio (the reference's hysteresis)
    pause: str = "none"  # what a stopped G skips: "update" (all of it, the reference), "adversarial" (that term),
    #                      "none" (G never stops); needs w_adv > 0 unless "none"
    amp: bool = False  # bf16 autocast on CUDA

    def __post_init__(self) -> None:
        self.lr_steps = tuple(int(s) for s in (self.lr_steps or ()))
        if self.generator_overrides:
            self.generator_overrides = {k: tuple(v) if isinstance(v, list) else v
                                        for k, v in self.generator_overrides.items()}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GANConfig":
        """A config from ``to_dict`` output, also of older versions (fields in :data:`REMOVED` are dropped)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - set(REMOVED))
        if unknown:
            raise DGNError(f"unknown GAN setting {unknown[0]!r}; valid: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        check_layer(self.layer)
        check_layer(self.feature_layer)
        for name, val, valid in (("image_loss", self.image_loss, IMAGE_LOSSES),
                                 ("reduction", self.reduction, REDUCTIONS), ("scale", self.scale, SCALES),
                                 ("pause", self.pause, PAUSES), ("discriminator", self.discriminator, DISCRIMINATORS),
                                 ("comparator", self.comparator, COMPARATORS)):
            if val not in valid:
                raise DGNError(f"unknown {name} {val!r}; valid: {', '.join(valid)}")
        for name in ("w_image", "w_feature", "w_adv", "lr", "weight_decay_g", "weight_decay_d", "balance",
                     "d_resume", "lr_gamma", "warmup_steps"):
            if getattr(self, name) < 0:
                raise DGNError(f"{name} must be ≥ 0; got {getattr(self, name)}")
        if self.pause != "none" and self.w_adv == 0:
            raise DGNError(f"pause={self.pause!r} stops G against D, but w_adv is 0 (no adversarial term, no D): "
                           f"set pause='none' or w_adv > 0")
        if self.balance > 0 and not 1 / self.balance <= self.d_resume <= self.balance:
            raise DGNError(f"d_resume must lie between 1/balance and balance ({1 / self.balance:g} … "
                           f"{self.balance:g}); got {self.d_resume}")
        if list(self.lr_steps) != sorted(set(self.lr_steps)) or any(s <= 0 for s in self.lr_steps):
            raise DGNError(f"lr_steps must be increasing positive step counts; got {self.lr_steps}")


# The reference (DeePSiM training as DGN-AM used it; KamitaniLab/End2EndDeepImageReconstruction keeps the code):
# generator.prototxt recon_loss EuclideanLoss weight 2e-6, encoder.prototxt feat_recon_loss on pool5 weight 0.01,
# discriminator.prototxt discr_loss SoftmaxWithLoss weight 100; solver: Adam base_lr 2e-4, momentum 0.9 / 0.999,
# weight_decay 4e-4 (× decay_mult: 0 for every G parameter, 1 for D's), multistep γ 0.5 at 300k, 500k, … 1.1M;
# G's deconv biases lr_mult 0; msra fillers; train.py's step order and switching rule (0.1 / 0.5 / 10).
PAPER = dict(
    generator="paper", generator_overrides=None, discriminator="paper",
    image_loss="pixel", reduction="caffe", scale="caffe",
    w_image=2e-6, w_feature=0.01, w_adv=100.0, feature_layer="pool5", warmup_steps=0,
    lr=2e-4, beta1=0.9, beta2=0.999, lr_steps=(300_000, 500_000, 700_000, 900_000, 1_100_000), lr_gamma=0.5,
    weight_decay_g=0.0, weight_decay_d=4e-4, freeze_g_conv_bias=True,
    balance=10.0, d_resume=0.5, pause="update",
)


# losses: the Caffe layers the reference uses


def euclidean(a: torch.Tensor, b: torch.Tensor, reduction: str) -> torch.Tensor:
    """``"caffe"``: Caffe's EuclideanLoss, 1/(2N) Σ_n ‖a_n − b_n‖² (N = batch); ``"mean"``: mean squared error."""
    d = a - b
    if reduction == "caffe":
        return 0.5 * d.pow(2).flatten(1).sum(1).mean()
    return d.pow(2).mean()


def contrast_map(x: torch.Tensor, eps: float = 0.02) -> torch.Tensor:
    """Where an image differs from its own mean colour, and how much, relative to the image's overall contrast:
    ‖x(p) − mean colour‖ per pixel p, divided by its root mean square over the image (+ ``eps``). (B, H, W).

    The same for a shape in any colour, lighter or darker than its background, at any contrast: what an E
    whose code keeps no colour (a dataset whose colours are random) still lets G recover."""
    d = x - x.mean((2, 3), keepdim=True)
    m = d.pow(2).sum(1).add(1e-8).sqrt()
    return m / (m.pow(2).mean((1, 2), keepdim=True).sqrt() + eps)


def image_loss(fake: torch.Tensor, real: torch.Tensor, cfg: GANConfig) -> torch.Tensor:
    """``pixel``: ‖G(y) − x‖² of RGB [0, 1] images, on Caffe's BGR 0–255 mean-subtracted scale if
    ``cfg.scale == "caffe"``; ``contrast``: the squared error of the two images' :func:`contrast_map`."""
    if cfg.image_loss == "contrast":
        return euclidean(contrast_map(fake), contrast_map(real), cfg.reduction)
    if cfg.scale == "caffe":
        fake, real = rgb_to_caffe(fake), rgb_to_caffe(real)
    return euclidean(fake, real, cfg.reduction)


REAL, GENERATED = 1, 0  # D's logit columns (the reference labels real 0 and generated 1; only the names differ)


def discriminator_losses(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_real, L_fake): SoftmaxWithLoss, each a mean over its own batch, as the reference's two D passes."""
    real = torch.full((len(logits_real),), REAL, dtype=torch.long, device=logits_real.device)
    fake = torch.full((len(logits_fake),), GENERATED, dtype=torch.long, device=logits_fake.device)
    return F.cross_entropy(logits_real, real), F.cross_entropy(logits_fake, fake)


def adversarial_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """L_adv: the generated batch scored with the label "real" (the reference's third D pass, for G)."""
    real = torch.full((len(logits_fake),), REAL, dtype=torch.long, device=logits_fake.device)
    return F.cross_entropy(logits_fake, real)


def d_objective(l_real: torch.Tensor, l_fake: torch.Tensor, cfg: GANConfig) -> torch.Tensor:
    """What D minimises: ``caffe``: w_adv·(L_real + L_fake) (one loss layer of weight 100 backpropagated for both
    passes); ``mean``: the mean over all 2B images."""
    if cfg.reduction == "caffe":
        return cfg.w_adv * (l_real + l_fake)
    return (l_real + l_fake) / 2


def balance_ratio(d_loss: float, g_adv: float) -> float:
    """The reference's ``discr_loss_ratio = (discr_real_loss + discr_fake_loss) / discr_fake_for_generator_loss``."""
    if g_adv > 0:
        return d_loss / g_adv
    return math.inf if d_loss > 0 else math.nan


def balance_rule(train_d: bool, train_g: bool, ratio: float, *, balance: float = 10.0,
                 d_resume: float = 0.5) -> tuple[bool, bool]:
    """The reference's three switches, in its order, on one step's ratio → (train_d, train_g) for the next step."""
    if balance <= 0:
        return True, True
    if ratio < 1 / balance and train_d:  # D far ahead: stop D (G trains)
        train_d, train_g = False, True
    if ratio > d_resume and not train_d:  # D caught up again: both train
        train_d, train_g = True, True
    if ratio > balance and train_g:  # G far ahead: stop G (D trains)
        train_d, train_g = True, False
    return train_d, train_g


def input_convention(encoder: CaffeNet) -> str:
    """How E normalises its RGB [0, 1] input: "caffe" (×255 minus Caffe's mean), "imagenet" (mean/std) or
    "custom"."""
    mean, std = encoder.config.mean, encoder.config.std
    if all(abs(s - 1 / 255) < 1e-6 for s in std) and all(abs(m * 255 - c) < 1.5
                                                          for m, c in zip(mean, CAFFE_MEAN_BGR[::-1])):
        return "caffe"
    if all(abs(a - b) < 1e-3 for a, b in zip((*mean, *std), (*IMAGENET_MEAN, *IMAGENET_STD))):
        return "imagenet"
    return "custom"


class GANTrainer:
    """G and D with their optimisers, around a frozen encoder E (= comparator C up to ``feature_layer``).

    ``comparator``: another frozen network whose ``feature_layer`` blob the feature loss compares instead of E's
    (the fair layer sweep's: a classifier trained independently of E, so that no code layer is also the comparator
    and gets a code-cycle loss the others do not); None: E itself, the reference's choice."""

    def __init__(self, encoder: CaffeNet, cfg: GANConfig, *, code_stats: dict | None = None, device="cpu", seed: int = 0,
                 comparator: CaffeNet | None = None):
        cfg.validate()
        self.cfg, self.device = cfg, torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        if (comparator is None) != (cfg.comparator == "encoder"):
            raise DGNError(f"comparator {cfg.comparator!r} needs " + ("the independent comparator network"
                           if comparator is None else "no comparator network (E is the comparator)"))
        self.comparator = None if comparator is None else comparator.to(self.device).eval()
        if self.comparator is not None:
            for p in self.comparator.parameters():
                p.requires_grad_(False)
        code_shape = encoder.code_shape(cfg.layer)
        torch.manual_seed(seed)
        self.g_config = generator_config(cfg.generator, code_shape, encoder.config.image_size,
                                         **(cfg.generator_overrides or {}))
        self.G = Generator(self.g_config).to(self.device)
        self.D = Discriminator(image_size=encoder.config.image_size, code_dim=code_dim(code_shape),
                               arch=cfg.discriminator).to(self.device)
        if cfg.freeze_g_conv_bias:
            for m in self.G.stack:
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                    m.bias.requires_grad_(False)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam([p for p in self.G.parameters() if p.requires_grad], lr=cfg.lr, betas=betas,
                                      weight_decay=cfg.weight_decay_g)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay_d)
        self.code_stats = code_stats
        self.step_count = 0
        self.g_updates = self.d_updates = 0  # each network's own update count (the lr schedule's clock, as Caffe's)
        self.train_d = self.train_g = True
        # [d_loss, g_adv] → the values the D/G balance is decided on; data-parallel workers set it to the
        # mean over workers so that every worker pauses the same network (else DDP would deadlock)
        self.reduce = lambda values: values

    @property
    def generator(self) -> nn.Module:
        """G itself, also when it was wrapped (DDP keeps it in ``.module``)."""
        return getattr(self.G, "module", self.G)

    @property
    def discriminator(self) -> nn.Module:
        return getattr(self.D, "module", self.D)

    def describe(self) -> str:
        """What is trained and how, in a few lines (G's cut layers, D, each loss's scale, the balance)."""
        cfg = self.cfg
        conv = input_convention(self.encoder)
        img = "Caffe's BGR 0–255 minus the mean" if cfg.scale == "caffe" else "RGB [0, 1]"
        red = "½·Σ/N (Caffe's EuclideanLoss)" if cfg.reduction == "caffe" else "mean over elements"
        on = "the images' contrast maps (colour-free)" if cfg.image_loss == "contrast" else img
        lines = [self.generator.describe(), self.discriminator.describe(),
                 f"image loss: {red} on {on}, weight {cfg.w_image:g}.",
                 f"feature loss: {red} of {'E' if self.comparator is None else 'an independent comparator'}'s "
                 f"{cfg.feature_layer} blob, weight {cfg.w_feature:g}; E takes {conv} "
                 f"input" + ("." if conv == "caffe" or cfg.scale != "caffe" else
                             " (not Caffe's: the blob is on E's own activation scale, not BVLC CaffeNet's, for "
                             "which the reference set its weight; see docs/gan.md).")]
        if cfg.w_adv > 0:
            d_obj = "w_adv·(L_real + L_fake)" if cfg.reduction == "caffe" else "(L_real + L_fake)/2"
            stop = {"update": "skips its update", "adversarial": "drops its adversarial term",
                    "none": "never stops"}[cfg.pause]
            rule = (f"ratio (L_real + L_fake)/L_adv: D stops below {1 / cfg.balance:g}, resumes above "
                    f"{cfg.d_resume:g}; G stops above {cfg.balance:g} (a stopped G {stop})" if cfg.balance > 0
                    else "no balance (both always train)")
            lines.append(f"adversarial: softmax cross-entropy, weight {cfg.w_adv:g}; D minimises {d_obj} on {img}; "
                         f"{rule}.")
        else:
            lines.append("adversarial: none (w_adv = 0, no D training).")
        lines.append(f"Adam lr {cfg.lr:g} β ({cfg.beta1:g}, {cfg.beta2:g}), weight decay G {cfg.weight_decay_g:g} / "
                     f"D {cfg.weight_decay_d:g}" + (f", lr × {cfg.lr_gamma:g} after {', '.join(map(str, cfg.lr_steps))}"
                                                     f" updates" if cfg.lr_steps else "")
                     + ("; G's (de)conv biases frozen at 0" if cfg.freeze_g_conv_bias else "") + ".")
        return "\n".join(lines)

    @torch.no_grad()
    def code(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.blob(x, self.cfg.layer)  # (B, *code_shape)

    def _d_view(self, images: torch.Tensor) -> torch.Tensor:
        """The images as D takes them: Caffe's convention at ``scale="caffe"``, else RGB [0, 1]."""
        return rgb_to_caffe(images) if self.cfg.scale == "caffe" else images

    def _set_lr(self, opt: torch.optim.Optimizer, updates: int) -> None:
        cfg = self.cfg
        lr = cfg.lr * cfg.lr_gamma ** sum(updates >= s for s in cfg.lr_steps)
        for group in opt.param_groups:
            group["lr"] = lr

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One D and one G update on a batch of real images in [0, 1] (the reference's order); returns the losses."""
        cfg = self.cfg
        x = x.to(self.device)
        warm = self.step_count >= cfg.warmup_steps
        adversarial = warm and cfg.w_adv > 0
        feature = warm and cfg.w_feature > 0
        skip_g = adversarial and not self.train_g and cfg.pause == "update"
        drop_adv = adversarial and not self.train_g and cfg.pause == "adversarial"
        with torch.no_grad():  # the code and the comparator's view of the real images, in one pass of E
            if self.comparator is None:
                real = self.encoder.blobs(x, (cfg.layer, cfg.feature_layer) if feature else (cfg.layer,))
            else:
                real = self.encoder.blobs(x, (cfg.layer,))
                if feature:
                    real[cfg.feature_layer + "@comparator"] = self.comparator.blob(x, cfg.feature_layer)
        y = real[cfg.layer]
        with torch.set_grad_enabled(not skip_g), autocast(self.device, cfg.amp):
            fake = self.G(y)  # (B, 3, S, S), RGB [0, 1]

        # D: the real and the generated batch (two SoftmaxWithLoss passes in the reference), then its update
        zero = torch.zeros((), device=self.device)
        l_real = l_fake = l_adv = zero
        d_acc, d_trained = float("nan"), False
        if adversarial:
            n = len(x)
            with torch.set_grad_enabled(self.train_d), autocast(self.device, cfg.amp):
                logits = self.D(self._d_view(torch.cat([x, fake.detach()])), torch.cat([y, y])).float()  # (2B, 2)
            l_real, l_fake = discriminator_losses(logits[:n], logits[n:])
            d_acc = ((logits[:n].argmax(1) == REAL).sum() + (logits[n:].argmax(1) == GENERATED).sum()).item() / (2 * n)
            if self.train_d:
                self._set_lr(self.opt_d, self.d_updates)
                self.opt_d.zero_grad(set_to_none=True)
                d_objective(l_real, l_fake, cfg).backward()
                self.opt_d.step()
                self.d_updates += 1
                d_trained = True

        # G: image + feature + adversarial (scored by the updated D), then its update
        with torch.set_grad_enabled(not skip_g), autocast(self.device, cfg.amp):
            l_img = image_loss(fake.float(), x, cfg)
            l_feat = zero
            if feature:
                c, key = ((self.encoder, cfg.feature_layer) if self.comparator is None
                          else (self.comparator, cfg.feature_layer + "@comparator"))
                l_feat = euclidean(c.blob(fake, cfg.feature_layer).float(), real[key].float(), cfg.reduction)
            if adversarial:
                with torch.set_grad_enabled(not (skip_g or drop_adv)):
                    l_adv = adversarial_loss(self.D(self._d_view(fake), y).float())
            g_loss = cfg.w_image * l_img + cfg.w_feature * l_feat + cfg.w_adv * l_adv
        if not torch.isfinite(g_loss.detach()):
            raise DGNError(f"training diverged at step {self.step_count + 1}: G's loss is {g_loss.item()}")
        if not skip_g:
            self._set_lr(self.opt_g, self.g_updates)
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            self.g_updates += 1

        ratio = float("nan")
        if adversarial:
            d_loss, g_adv = self.reduce([(l_real + l_fake).item(), l_adv.item()])
            ratio = balance_ratio(d_loss, g_adv)
            self.train_d, self.train_g = balance_rule(self.train_d, self.train_g, ratio, balance=cfg.balance,
                                                      d_resume=cfg.d_resume)
        self.step_count += 1
        return {
            "g_loss": g_loss.item(), "image": l_img.item(), "feature": l_feat.item(), "adversarial": l_adv.item(),
            "d_loss": (l_real + l_fake).item(), "d_real": l_real.item(), "d_fake": l_fake.item(), "d_acc": d_acc,
            "ratio": ratio, "d_trained": float(d_trained), "g_trained": float(not skip_g),
        }

    def _balance(self, d_loss: float, g_adv: float) -> None:
        """Apply the balance rule to one step's (reduced) D loss L_real + L_fake and G's L_adv."""
        self.train_d, self.train_g = balance_rule(self.train_d, self.train_g, balance_ratio(d_loss, g_adv),
                                                  balance=self.cfg.balance, d_resume=self.cfg.d_resume)

    # checkpoints

    def state(self, *, epoch: int, metrics: dict | None = None, encoder_ref: str = "") -> dict:
        return {
            "kind": "gan",
            "config": self.cfg.to_dict(),
            "g_config": self.g_config.to_dict(),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "epoch": int(epoch),
            "step": int(self.step_count),
            "updates": {"g": int(self.g_updates), "d": int(self.d_updates)},
            "balance": {"train_d": bool(self.train_d), "train_g": bool(self.train_g)},
            "description": self.describe(),
            "code_stats": self.code_stats,
            "encoder_config": self.encoder.config.to_dict(),
            "encoder_ref": encoder_ref,
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        }

    def load(self, ck: dict, *, where: str = "checkpoint") -> None:
        if ck.get("kind") != "gan":
            raise DGNError(f"{where} holds a {ck.get('kind')} but a gan checkpoint is needed")
        theirs = GeneratorConfig.from_dict(ck["g_config"])
        if ck["config"].get("layer") != self.cfg.layer or theirs.code_shape != self.g_config.code_shape:
            raise DGNError(f"{where} holds a generator for code {tuple(ck['g_config']['code_shape'])} "
                           f"({ck['config'].get('layer')}), not the one configured for {self.cfg.layer}")
        if theirs != self.g_config:
            diff = next(f.name for f in fields(GeneratorConfig)
                        if getattr(theirs, f.name) != getattr(self.g_config, f.name))
            raise DGNError(f"{where} holds another generator architecture than the one configured ({diff} "
                           f"{getattr(theirs, diff)!r}, configured {getattr(self.g_config, diff)!r})")
        load_state(self.generator, ck["generator"], what=f"generator in {where}")
        load_state(self.discriminator, ck["discriminator"], what=f"discriminator in {where}")
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.step_count = int(ck.get("step", 0))
        updates = ck.get("updates", {})
        self.g_updates, self.d_updates = int(updates.get("g", self.step_count)), int(updates.get("d", self.step_count))
        bal = ck.get("balance", {})
        self.train_d, self.train_g = bool(bal.get("train_d", True)), bool(bal.get("train_g", True))
        self.code_stats = ck.get("code_stats")


def load_generator(uri: str) -> tuple[Generator, dict]:
    """(G in eval mode, checkpoint) from a gan checkpoint; the checkpoint holds the code stats."""
    ck = load_checkpoint(uri, "gan")
    g = Generator(GeneratorConfig.from_dict(ck["g_config"]))
    load_state(g, ck["generator"], what=f"generator in checkpoint {uri!r}")
    return g.eval(), ck


def encoder_from(ck: dict) -> CaffeNet:
    return CaffeNet(CaffeNetConfig.from_dict(ck["encoder_config"]))
