"""Training G to invert E's code: image, feature and adversarial losses, D/G balance.

One process, one step at a time, so that the same :class:`GANTrainer` runs
unchanged inside a Ray Train worker (wrap G and D in DDP there).

Losses (weights in :class:`GANConfig`):

1. image loss, G(y) against x. ``pixel`` is the paper's ‖G(y) − x‖².
   ``contrast`` is colour-invariant: the squared error between the two
   images' contrast maps ‖x − mean colour‖ plus a small per-channel
   correlation term — for codes that do not keep colour (CALIBRATION.md).
   ``pixel+contrast`` adds both.
2. feature loss ‖C(G(y)) − C(x)‖², C = E up to pool5 (the comparator).
3. adversarial loss: D (which also sees y) must call G(y) real.

``reduction="caffe"`` reproduces the reference scale (Caffe's EuclideanLoss:
½·sum per image on the 0–255 scale, batch mean), where the paper's weights
2e-6 / 0.01 / 100 apply; ``"mean"`` averages over elements (the small preset).

Balance (as in the reference code): D is paused for a step when its loss is
below G's adversarial loss / ``balance``; G's update is paused when its
adversarial loss is below D's loss / ``balance``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from dgn.errors import DGNError
from dgn.nets.caffenet import CaffeNet, CaffeNetConfig, check_layer
from dgn.nets.discriminator import Discriminator, code_dim
from dgn.nets.generator import Generator, GeneratorConfig, generator_config
from dgn.train.checkpoint import load_checkpoint, load_state
from dgn.train.classifier import autocast

IMAGE_LOSSES = ("pixel", "contrast", "pixel+contrast")
REDUCTIONS = ("mean", "caffe")
PAUSES = ("update", "adversarial")


@dataclass
class GANConfig:
    layer: str = "fc6"  # E's code layer that G inverts
    generator: str = "small"  # generator preset (small | paper)
    generator_overrides: dict | None = None  # GeneratorConfig fields to change
    image_loss: str = "pixel"
    reduction: str = "mean"
    w_image: float = 1.0
    w_feature: float = 0.1
    w_adv: float = 0.01
    feature_layer: str = "pool5"  # the comparator's layer
    warmup_steps: int = 0  # image loss alone for the first steps
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999
    balance: float = 10.0  # 0 disables pausing
    pause: str = "update"  # what a pause of G skips: its whole update (paper) or its adversarial term
    corr_weight: float = 0.1  # per-channel correlation term of the contrast loss
    amp: bool = False  # bf16 autocast on CUDA

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        check_layer(self.layer)
        check_layer(self.feature_layer)
        for name, val, valid in (("image_loss", self.image_loss, IMAGE_LOSSES),
                                 ("reduction", self.reduction, REDUCTIONS), ("pause", self.pause, PAUSES)):
            if val not in valid:
                raise DGNError(f"unknown {name} {val!r}; valid: {', '.join(valid)}")
        for name in ("w_image", "w_feature", "w_adv", "lr"):
            if getattr(self, name) < 0:
                raise DGNError(f"{name} must be ≥ 0; got {getattr(self, name)}")


PAPER = dict(generator="paper", image_loss="pixel", reduction="caffe", w_image=2e-6, w_feature=0.01, w_adv=100.0,
             lr=2e-4, balance=10.0, pause="update")


# helpers


def _sq(a: torch.Tensor, b: torch.Tensor, reduction: str, scale: float = 1.0) -> torch.Tensor:
    d = (a - b) * scale
    if reduction == "caffe":  # ½ Σ per sample, mean over the batch
        return 0.5 * d.pow(2).flatten(1).sum(1).mean()
    return d.pow(2).mean()


def contrast_map(x: torch.Tensor) -> torch.Tensor:
    """‖x − mean colour‖ per pixel: (B, 3, H, W) → (B, H, W); blind to the image's colour."""
    return (x - x.mean((2, 3), keepdim=True)).norm(dim=1)


def channel_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean Pearson correlation of each channel's pixels, (B, 3, H, W) pairs → scalar."""
    a = a.flatten(2) - a.flatten(2).mean(2, keepdim=True)
    b = b.flatten(2) - b.flatten(2).mean(2, keepdim=True)
    return ((a * b).sum(2) / (a.norm(dim=2) * b.norm(dim=2) + 1e-6)).mean()


def image_loss(fake: torch.Tensor, real: torch.Tensor, cfg: GANConfig) -> torch.Tensor:
    scale = 255.0 if cfg.reduction == "caffe" else 1.0
    loss = fake.new_zeros(())
    if "pixel" in cfg.image_loss:
        loss = loss + _sq(fake, real, cfg.reduction, scale)
    if "contrast" in cfg.image_loss:
        loss = loss + _sq(contrast_map(fake), contrast_map(real), cfg.reduction, scale)
        loss = loss + cfg.corr_weight * (1 - channel_correlation(fake, real))
    return loss


class GANTrainer:
    """G and D with their optimisers, around a frozen encoder E (= comparator C up to pool5)."""

    def __init__(self, encoder: CaffeNet, cfg: GANConfig, *, code_stats: dict | None = None, device="cpu", seed: int = 0):
        cfg.validate()
        self.cfg, self.device = cfg, torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        code_shape = encoder.code_shape(cfg.layer)
        torch.manual_seed(seed)
        self.g_config = generator_config(cfg.generator, code_shape, encoder.config.image_size,
                                         **(cfg.generator_overrides or {}))
        self.G = Generator(self.g_config).to(self.device)
        self.D = Discriminator(image_size=encoder.config.image_size, code_dim=code_dim(code_shape)).to(self.device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        self.code_stats = code_stats
        self.step_count = 0
        self.train_d = self.train_g = True
        self.last = {"d_loss": 0.0, "g_adv": 0.0}
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

    @torch.no_grad()
    def code(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.blob(x, self.cfg.layer)  # (B, *code_shape)

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One G (and D) update on a batch of real images in [0, 1]; returns the losses."""
        cfg = self.cfg
        x = x.to(self.device)
        adversarial = self.step_count >= cfg.warmup_steps and cfg.w_adv > 0
        feature = self.step_count >= cfg.warmup_steps and cfg.w_feature > 0
        with torch.no_grad():  # the code and the comparator's view of the real images, in one pass of E
            real = self.encoder.blobs(x, (cfg.layer, cfg.feature_layer) if feature else (cfg.layer,))
        y = real[cfg.layer]
        with autocast(self.device, cfg.amp):
            fake = self.G(y)  # (B, 3, S, S)
            l_img = image_loss(fake.float(), x, cfg)
            l_feat = fake.new_zeros(())
            if feature:
                c_real = real[cfg.feature_layer]
                c_fake = self.encoder.blob(fake, cfg.feature_layer)
                l_feat = _sq(c_fake.float(), c_real.float(), cfg.reduction)
            l_adv = fake.new_zeros(())
            d_loss = torch.zeros((), device=self.device)
            d_acc = float("nan")
            if adversarial:
                ones = torch.ones(len(x), dtype=torch.long, device=self.device)
                l_adv = F.cross_entropy(self.D(fake, y).float(), ones)  # G wants "real" (1)
            g_loss = cfg.w_image * l_img + cfg.w_feature * l_feat + cfg.w_adv * l_adv

        pause_g_adv = adversarial and not self.train_g and cfg.pause == "adversarial"
        if pause_g_adv:
            g_loss = g_loss - cfg.w_adv * l_adv
        skip_g = adversarial and not self.train_g and cfg.pause == "update"
        if not skip_g:
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()

        if adversarial:
            with autocast(self.device, cfg.amp):
                logits = self.D(torch.cat([fake.detach(), x]), torch.cat([y, y]))  # (2B, 2)
                labels = torch.cat([torch.zeros(len(x)), torch.ones(len(x))]).long().to(self.device)
                d_loss = F.cross_entropy(logits.float(), labels)
            d_acc = (logits.argmax(1) == labels).float().mean().item()
            if self.train_d:
                self.opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                self.opt_d.step()
            self._balance(*self.reduce([d_loss.item(), l_adv.item()]))

        self.step_count += 1
        if not torch.isfinite(g_loss.detach()):
            raise DGNError(f"training diverged at step {self.step_count}: G's loss is {g_loss.item()}")
        return {
            "g_loss": g_loss.item(), "image": l_img.item(), "feature": l_feat.item(), "adversarial": l_adv.item(),
            "d_loss": d_loss.item(), "d_acc": d_acc, "d_trained": float(self.train_d), "g_trained": float(not skip_g),
        }

    def _balance(self, d_loss: float, g_adv: float) -> None:
        b = self.cfg.balance
        if b <= 0:
            self.train_d = self.train_g = True
            return
        self.train_d = not d_loss * b < g_adv
        self.train_g = not g_adv * b < d_loss

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
            "code_stats": self.code_stats,
            "encoder_config": self.encoder.config.to_dict(),
            "encoder_ref": encoder_ref,
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        }

    def load(self, ck: dict, *, where: str = "checkpoint") -> None:
        if ck.get("kind") != "gan":
            raise DGNError(f"{where} holds a {ck.get('kind')} but a gan checkpoint is needed")
        if ck["config"].get("layer") != self.cfg.layer or GeneratorConfig.from_dict(ck["g_config"]) != self.g_config:
            raise DGNError(f"{where} holds a generator for code {tuple(ck['g_config']['code_shape'])} "
                           f"({ck['config'].get('layer')}), not the one configured for {self.cfg.layer}")
        load_state(self.generator, ck["generator"], what=f"generator in {where}")
        load_state(self.discriminator, ck["discriminator"], what=f"discriminator in {where}")
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.step_count = int(ck.get("step", 0))
        self.code_stats = ck.get("code_stats")


def load_generator(uri: str) -> tuple[Generator, dict]:
    """(G in eval mode, checkpoint) from a gan checkpoint; the checkpoint holds the code stats."""
    ck = load_checkpoint(uri, "gan")
    g = Generator(GeneratorConfig.from_dict(ck["g_config"]))
    load_state(g, ck["generator"], what=f"generator in checkpoint {uri!r}")
    return g.eval(), ck


def encoder_from(ck: dict) -> CaffeNet:
    return CaffeNet(CaffeNetConfig.from_dict(ck["encoder_config"]))
