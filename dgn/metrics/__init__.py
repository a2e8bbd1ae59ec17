"""Quality metrics: activation ratio, recognisability, realism, reconstruction (DESIGN.md)."""

from dgn.metrics.activation import activation_ratio, best_real_activations
from dgn.metrics.judge import (frechet_distance, judge_features, judge_predictions, manifold_precision, realism,
                               recognisability)
from dgn.metrics.reconstruction import reconstruct, reconstruction_metrics

__all__ = [
    "activation_ratio", "best_real_activations", "frechet_distance", "judge_features", "judge_predictions",
    "manifold_precision", "realism", "recognisability", "reconstruct", "reconstruction_metrics",
]
