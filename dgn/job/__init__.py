"""The main job (flows/train.py): its config and presets, its stages, and the driver that runs them on Ray Train."""

from dgn.job.config import PRESETS, PipelineConfig, preset_config
from dgn.job.run import run_training

__all__ = ["PRESETS", "PipelineConfig", "preset_config", "run_training"]
