"""Activation maximisation: DGN-AM (code space) and, beside it, pixel-space baselines."""

from dgn.am.dgn_am import AMConfig, AMResult, TargetNet, dgn_am
from dgn.am.objectives import Objective, as_objective, evaluate, unit
from dgn.am.pixel import METHODS as PIXEL_METHODS, PixelAMConfig, pixel_am

__all__ = ["AMConfig", "AMResult", "TargetNet", "dgn_am", "Objective", "as_objective", "evaluate", "unit", "PIXEL_METHODS",
           "PixelAMConfig", "pixel_am"]
