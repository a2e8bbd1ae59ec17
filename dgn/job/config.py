"""The main job's settings: one dataclass whose defaults are the product's defaults, and the named presets.

A preset is a small table of overrides on top of those defaults (``PRESETS``)::

    default   the dataclass defaults: GANConfig() and AMConfig() as they are
    paper     the paper's own settings: dgn.train.gan.PAPER (G losses, weights, D/G balance) and
              dgn.am.dgn_am.AM_PAPER (act_max.py: lr 8 → 1e-10, last iterate, N(0, 1) start)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dgn.am.dgn_am import AM_PAPER, AMConfig
from dgn.atlas.config import AtlasConfig, unit_specs
from dgn.data.uri import absolute, check_writable
from dgn.errors import DGNError
from dgn.nets import check_layer
from dgn.train.classifier import LEARNED_FACTOR
from dgn.train.gan import PAPER, GANConfig

PRESETS: dict[str, dict[str, dict]] = {
    "default": {"gan": {}, "am": {}},
    "paper": {"gan": PAPER, "am": AM_PAPER},
}
BUDGETS = ("classifier", "judge", "gan")  # stages with a step budget and a checkpoint count


@dataclass
class PipelineConfig:
    data: str = ""  # dataset URI; empty: the embedded synthetic set, written under storage/data
    storage: str = "runs/default"
    preset: str = "default"  # a name in PRESETS (what preset_config applied; recorded with the run)
    image_size: int = 64
    classifier: str = "small"  # CaffeNet preset of E
    # Budgets are optimisation steps, whatever the dataset's size (a small dataset gets the E and G a large one
    # gets), each stage with a fixed number of evenly spaced checkpoints (the atlas's time axis for E). The whole
    # default job ≤ 10 min wall on a 2-core machine whose 2048² matmul reads 140 GFLOP/s, with ≥ 15% margin
    # (README "Set up and run"); on the embedded default (8000 images, batch 64) a checkpoint is one pass.
    classifier_steps: int = 375
    classifier_checkpoints: int = 3
    classifier_lr: float = 3e-3
    judge_steps: int = 250
    judge_checkpoints: int = 2
    judge_lr: float = 3e-3
    gan_steps: int = 500
    gan_checkpoints: int = 4
    batch_size: int = 64
    gan: GANConfig = field(default_factory=GANConfig)
    am: AMConfig = field(default_factory=AMConfig)
    am_starts: int = 5  # DGN-AM restarts per fc8 unit in the quality check
    # a classifier stage (E, judge) that ends at ≤ this × chance val accuracy, or whose loss has not fallen,
    # stops the job with one line before anything is trained on it; 0: no check (dry runs: too small to learn)
    learned_factor: float = LEARNED_FACTOR
    n_train: int = 8000  # embedded dataset size
    n_val: int = 1000
    seed: int = 0
    judge_seed: int = 1234
    device: str = "cpu"  # cpu | cuda (--gpu: CUDA, bf16 autocast, Ray GPU workers)
    # the training stages stream their input from Parquet, a window at a time (dgn.data.streaming), when the
    # decoded train split (N × 3 × S² bytes) is above this many MB; else each worker holds its shard decoded in
    # memory (faster on small data). 0: always stream. The job's log says which (a stage's "input:" line).
    stream_above_mb: float = 2048
    workers: int = 2  # Ray Train workers; the global batch_size is split between them (bench/ray_overhead.py)
    encoder_weights: str = ""  # E (and C) from a file: torchvision AlexNet state dict or a dgn classifier checkpoint
    run_name: str = ""  # MLflow run name and Ray Train run name; default: the storage folder's name
    experiment: str = "dgn-train"  # MLflow experiment
    max_failures: int = 2  # worker-group restarts from the last checkpoint before the job fails
    num_cpus: int = 0  # CPUs of the local Ray started when no RAY_ADDRESS is set; 0: all of this machine's
    # the atlas stage: every classifier checkpoint × these units (dgn.atlas unit specs); "none" skips it.
    # Default: every class unit and 2 units of each hidden layer (3 checkpoints × 16 units, ~40 s on 2 cores);
    # the whole of every layer is a job for flows/atlas.py.
    atlas_units: str = "fc8=all;fc7=0-1;fc6=0-1;conv5=0-1"
    atlas_actors: int = 2

    def __post_init__(self) -> None:
        self.data, self.storage, self.encoder_weights = map(absolute, (self.data, self.storage, self.encoder_weights))
        if isinstance(self.gan, dict):
            self.gan = GANConfig(**self.gan)
        if isinstance(self.am, dict):
            self.am = AMConfig(**self.am)

    def to_dict(self) -> dict:
        return asdict(self)

    def atlas_config(self) -> AtlasConfig:
        """What the atlas stage renders: units of ``atlas_units`` at every classifier checkpoint, with this run's AM."""
        layers = tuple(unit_specs(self.atlas_units)) if "=" in self.atlas_units else None
        return AtlasConfig(storage=self.storage, layers=layers, units=self.atlas_units, actors=self.atlas_actors,
                           am=self.am.to_dict(), device=self.device)

    def validate(self) -> None:
        check_writable(self.storage, "storage")
        check_layer(self.gan.layer)
        self.gan.validate()
        for stage in BUDGETS:
            steps, n = getattr(self, f"{stage}_steps"), getattr(self, f"{stage}_checkpoints")
            if steps < 0 or n < 1 or n > max(steps, 1):
                raise DGNError(f"{stage}-steps must be ≥ 0 and {stage}-checkpoints between 1 and the steps; got "
                               f"{steps} steps and {n} checkpoints")
        if self.batch_size < 1:
            raise DGNError(f"batch-size must be ≥ 1; got {self.batch_size}")
        if self.workers < 1:
            raise DGNError(f"workers must be ≥ 1; got {self.workers}")
        if self.batch_size % self.workers:
            raise DGNError(f"batch-size {self.batch_size} must be a multiple of workers {self.workers}: the global "
                           "batch is split evenly between workers")
        if self.stream_above_mb < 0:
            raise DGNError(f"stream-above-mb must be ≥ 0 (0: always stream the training input); got {self.stream_above_mb}")
        if self.max_failures < 0 or self.num_cpus < 0:
            raise DGNError(f"max-failures and num-cpus must be ≥ 0; got {self.max_failures} and {self.num_cpus}")
        if self.device not in ("cpu", "cuda"):
            raise DGNError(f"unknown device {self.device!r}; valid: cpu, cuda")
        if self.preset not in PRESETS:
            raise DGNError(f"unknown preset {self.preset!r}; valid presets: {', '.join(PRESETS)}")
        if self.atlas_units != "none":
            self.atlas_config().validate()


def preset_config(preset: str = "default", **overrides) -> PipelineConfig:
    """A PipelineConfig with the preset's GAN and AM overrides, then ``overrides`` (``gan``/``am``: dicts)."""
    if preset not in PRESETS:
        raise DGNError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    table = PRESETS[preset]
    gan = {**table["gan"], **(overrides.pop("gan", None) or {})}
    am = {**table["am"], **(overrides.pop("am", None) or {})}
    return PipelineConfig(preset=preset, gan=GANConfig(**gan), am=AMConfig(**am), **overrides)
