"""The Ray Tune sweep: which of E's layers should G invert, and with which loss weights?

``config`` holds the sweep's settings and its grid, ``score`` the fixed rule
that ranks trials, ``base`` trains (or loads) the shared E and judge once,
``trial`` is the Tune function trainable, ``tuner`` builds, restores and runs
the Tuner, ``report`` turns the results into the table, the per-layer figure
and the verdict.
"""

from dgn.sweep.config import LAYERS, SweepConfig, sweep_config, weight_sets
from dgn.sweep.score import score

__all__ = ["LAYERS", "SweepConfig", "score", "sweep_config", "weight_sets"]
