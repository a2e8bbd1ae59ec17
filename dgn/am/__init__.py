"""Activation maximisation: DGN-AM (code space) and, beside it, pixel-space baselines."""

from dgn.am.dgn_am import AM_PAPER, AMConfig, AMResult, dgn_am
from dgn.am.pixel import METHODS as PIXEL_METHODS
from dgn.am.pixel import PixelAMConfig, pixel_am
from dgn.nets.adapters import TargetNet
from dgn.nets.objectives import Objective, as_objective, evaluate, unit

__all__ = ["AM_PAPER", "AMConfig", "AMResult", "TargetNet", "dgn_am", "Objective", "as_objective", "evaluate", "unit", "PIXEL_METHODS",
           "PixelAMConfig", "pixel_am"]
