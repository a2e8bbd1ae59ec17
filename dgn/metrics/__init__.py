"""Quality metrics: activation ratio, recognisability, realism, reconstruction (docs/metrics.md)."""

from dgn.metrics.activation import activation_ratio, best_real_activations
from dgn.metrics.intervals import bootstrap_interval, fmt_interval, seed_spread
from dgn.metrics.judge import judge_features, judge_predictions, realism, realism_report, recognisability
from dgn.metrics.realism import (
                                 disjoint_subsets,
                                 fd_floor_table,
                                 frechet_distance,
                                 manifold_precision,
                                 precision_recall,
                                 realism_from_features,
)
from dgn.metrics.reconstruction import reconstruct, reconstruction_metrics

__all__ = [
    "activation_ratio", "best_real_activations", "bootstrap_interval", "disjoint_subsets", "fd_floor_table",
    "fmt_interval", "frechet_distance", "judge_features", "judge_predictions", "manifold_precision",
    "precision_recall", "realism", "realism_from_features", "realism_report", "recognisability", "reconstruct",
    "reconstruction_metrics", "seed_spread",
]
