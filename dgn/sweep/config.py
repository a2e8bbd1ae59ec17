"""The sweep's settings, its presets, and the grid of loss weights.

Presets: ``default`` (7 layers × 2 weight sets at 32 px, ASHA), ``quick`` (its tiny form for tests), ``fair`` (the
protocol the layer verdict rests on: 64 px, 3 G seeds, a comparator that is no layer's code, G's parameters matched
across layers, equal step budgets; docs/sweep.md) and ``quick-fair`` (its tiny form).

Grid: every layer in ``layers`` × ``samples`` loss-weight sets. Set 0 is the
reference (the paper's balance at the "mean" reduction: image 1,
feature 0.1, adversarial 0.01, on the product's G recipe); the others are drawn
log-uniformly within ×/÷ ``spread`` of it by a seeded generator. The same
weight sets are used for every layer, so layers are compared pairwise, weight
set by weight set, not against luck of the draw.

Why 32 px: a G step at 64 px costs 1.5–2.3 s on one CPU core against 0.2 s at
32 px (measured side by side), and the default grid must finish on 2 cores in
30 minutes. The sweep trains its own E and judge on the embedded set at that
size, unless ``run`` names a finished ``flows/train.py`` storage.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace

from dgn.am.dgn_am import AMConfig
from dgn.data.uri import absolute, check_writable
from dgn.errors import DGNError
from dgn.nets.caffenet import check_layer
from dgn.train.gan import COMPARATORS, GANConfig

LAYERS = ("conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8")
REFERENCE_WEIGHTS = {"w_image": 1.0, "w_feature": 0.1, "w_adv": 0.01}
SCHEDULERS = ("asha", "fifo")
WEIGHT_BASES = ("reference", "product")


@dataclass
class SweepConfig:
    storage: str = "runs/sweep"  # data/, classifier/, judge/ (when trained here), tune/, table, figure
    name: str = "sweep-layers"  # the Tune experiment (and MLflow parent run) name; resume = same name
    data: str = ""  # dataset URI; empty: the embedded synthetic set under storage/data
    run: str = ""  # a finished flows/train.py storage: take E (last classifier epoch) and the judge from it
    layers: tuple[str, ...] = LAYERS
    samples: int = 2  # loss-weight sets per layer (set 0 = the reference)
    spread: float = 3.0  # weights drawn within ×/÷ spread of the reference
    weight_seed: int = 0
    # shared E and judge (trained once, unless `run` is given)
    image_size: int = 32
    n_train: int = 6000
    n_val: int = 500
    classifier_steps: int = 375  # the main job's classifier stage, at this size (≈ 4 passes over 6000 images)
    judge_steps: int = 375
    classifier_lr: float = 3e-3
    # each trial
    epochs: int = 4  # ASHA's max_t; a trial reports (and checkpoints) after each
    steps_per_epoch: int = 200
    batch_size: int = 64
    warmup_steps: int = 50  # image loss alone first (the embedded recipe's warm-up)
    lr: float = 1e-3
    am_starts: int = 2  # DGN-AM starts per fc8 unit in each epoch's evaluation
    am_steps: int = 100
    am_lr: float = 0.25
    # Tune
    grace_period: int = 1  # ASHA: epochs before a trial may be stopped
    reduction_factor: int = 2
    cpus_per_trial: float = 1.0
    max_concurrent_trials: int = 2
    num_cpus: int = 2  # for the local Ray instance the flow starts (ignored on a cluster)
    seed: int = 0  # the dataset's, E's and (unless `seeds` is set) every trial's
    # the fair protocol (preset "fair", docs/sweep.md): what makes layers comparable
    seeds: tuple[int, ...] = ()  # G seeds, a grid dimension (G's init, batch order, AM starts); empty: (seed,)
    comparator: str = "encoder"  # the feature loss's network: "encoder" (E, the reference's) | "independent"
    #                              (a third classifier, trained like E with another seed: never the code layer)
    g_params: int = 0  # > 0: every layer's G gets this many parameters (dgn.sweep.capacity); 0: the product G as is
    scheduler: str = "asha"  # "asha" (stop weak trials) | "fifo" (every trial runs all epochs: equal budgets)
    weights: str = "reference"  # weight set 0: "reference" (image 1, feature 0.1, adversarial 0.01) | "product"
    #                             (GANConfig's defaults: the job's own recipe)
    experiment: str = "dgn-sweep"  # MLflow experiment
    tracking: bool = True  # log to MLflow (driver only)

    def __post_init__(self) -> None:
        self.storage, self.data, self.run = map(absolute, (self.storage, self.data, self.run))

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        check_writable(self.storage, "storage")
        if not self.layers:
            raise DGNError("the sweep needs at least one layer; valid: " + ", ".join(LAYERS))
        for layer in self.layers:
            if layer not in LAYERS:
                check_layer(layer)  # names the valid CaffeNet layers
                raise DGNError(f"layer {layer!r} cannot be swept; valid: {', '.join(LAYERS)}")
        for name in ("samples", "epochs", "steps_per_epoch", "batch_size", "am_starts", "am_steps", "grace_period",
                     "max_concurrent_trials", "num_cpus", "n_train", "n_val", "classifier_steps", "judge_steps"):
            if getattr(self, name) < 1:
                raise DGNError(f"{name.replace('_', '-')} must be ≥ 1; got {getattr(self, name)}")
        if self.reduction_factor < 2:
            raise DGNError(f"reduction-factor must be ≥ 2; got {self.reduction_factor}")
        if self.spread < 1:
            raise DGNError(f"spread must be ≥ 1; got {self.spread}")
        if self.cpus_per_trial <= 0 or self.cpus_per_trial > self.num_cpus:
            raise DGNError(f"cpus-per-trial must be in (0, {self.num_cpus}] (num-cpus); got {self.cpus_per_trial}")
        if self.image_size < 16:
            raise DGNError(f"image-size must be ≥ 16; got {self.image_size}")
        for name, valid in (("comparator", COMPARATORS), ("scheduler", SCHEDULERS), ("weights", WEIGHT_BASES)):
            if getattr(self, name) not in valid:
                raise DGNError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        if self.g_params < 0:
            raise DGNError(f"g-params must be ≥ 0 (0: the product G as is); got {self.g_params}")
        if len(set(self.seeds)) != len(self.seeds):
            raise DGNError(f"seeds must be distinct; got {', '.join(map(str, self.seeds))}")
        if not self.name or "/" in self.name:
            raise DGNError(f"sweep name {self.name!r} must be non-empty and hold no '/'")

    @property
    def trial_seeds(self) -> tuple[int, ...]:
        return tuple(self.seeds) or (self.seed,)

    @property
    def trials(self) -> int:
        return len(self.layers) * self.samples * len(self.trial_seeds)


# Tests run the whole sweep in this: 32-px nets, a few steps, 7 layers × 1 weight set.
QUICK = dict(n_train=400, n_val=200, classifier_steps=24, judge_steps=24, epochs=3, steps_per_epoch=4, batch_size=32,
             warmup_steps=2, samples=1, am_starts=1, am_steps=10)
# The fair layer comparison (issue "the layer verdict"; docs/sweep.md): 64 px, 3 G seeds per layer, one weight set (the
# job's own recipe), a comparator that is no layer's code (a third classifier), G's parameters matched across layers,
# no early stopping (every trial gets the same G steps). Scored with and without the reconstruction term.
FAIR = dict(storage="runs/sweep-fair", name="sweep-fair", image_size=64, n_train=8000, n_val=500, seeds=(0, 1, 2),
            comparator="independent", g_params=2_000_000,
            scheduler="fifo", weights="product", samples=1, epochs=1, steps_per_epoch=300, batch_size=32,
            warmup_steps=100, am_starts=2, am_steps=AMConfig().steps, am_lr=AMConfig().lr)
# Tests run the fair protocol's machinery in this: 2 layers × 2 seeds, a few steps.
QUICK_FAIR = {**FAIR, **QUICK, "image_size": 32, "layers": ("conv3", "fc6"), "seeds": (0, 1), "g_params": 300_000,
              "epochs": 1, "warmup_steps": 2}
PRESETS = {"default": {}, "quick": QUICK, "fair": FAIR, "quick-fair": QUICK_FAIR}


def sweep_config(preset: str = "default", **overrides) -> SweepConfig:
    if preset not in PRESETS:
        raise DGNError(f"unknown sweep preset {preset!r}; valid: {', '.join(PRESETS)}")
    cfg = replace(SweepConfig(), **{**PRESETS[preset], **overrides})
    cfg.layers, cfg.seeds = tuple(cfg.layers), tuple(cfg.seeds)
    cfg.validate()
    return cfg


def product_weights() -> dict[str, float]:
    """The job's own loss weights (GANConfig's defaults)."""
    g = GANConfig()
    return {"w_image": g.w_image, "w_feature": g.w_feature, "w_adv": g.w_adv}


def weight_sets(cfg: SweepConfig) -> list[dict[str, float]]:
    """``cfg.samples`` loss-weight sets: the reference, then log-uniform draws within ×/÷ spread (seeded)."""
    rng = random.Random(cfg.weight_seed)
    ref = dict(REFERENCE_WEIGHTS) if cfg.weights == "reference" else product_weights()
    out = [ref]
    half = math.log(cfg.spread)
    for _ in range(cfg.samples - 1):
        out.append({k: float(f"{v * math.exp(rng.uniform(-half, half)):.4g}") for k, v in ref.items()})
    return out
