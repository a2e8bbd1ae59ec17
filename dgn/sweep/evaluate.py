"""One generator's quality, as the sweep scores it: DGN-AM on the fc8 units, and reconstruction."""

from __future__ import annotations

import torch

from dgn.am.dgn_am import AMConfig, TargetNet, dgn_am
from dgn.metrics import activation_ratio, best_real_activations, realism, reconstruction_metrics
from dgn.metrics.judge import judge_predictions
from dgn.sweep.score import score, score_terms
from dgn.train.batches import tensor_batches


def fc8_units(num_classes: int) -> list[str]:
    return [f"fc8:{k}" for k in range(num_classes)]


def am_config(*, steps: int, lr: float, seed: int = 0) -> AMConfig:
    return AMConfig(steps=steps, lr=lr, lr_end=1e-10, init="noise", noise_std=1.0, seed=seed)


class Evaluator:
    """Scores generators of one E against fixed val images, a fixed judge and fixed AM settings."""

    def __init__(self, *, encoder, judge, val: torch.Tensor, val_labels: torch.Tensor, num_classes: int,
                 am: AMConfig, starts: int):
        self.encoder, self.judge, self.am, self.starts = encoder.eval(), judge.eval(), am, starts
        self.val = val.float() / 255  # (M, 3, S, S) in [0, 1]
        self.val_labels = val_labels
        self.target = TargetNet.caffenet(encoder)
        self.units = fc8_units(num_classes)
        self.intended = torch.arange(num_classes).repeat(starts)  # start s of unit k at s*K + k
        self.best_real = best_real_activations(self.target, self.units,
                                               tensor_batches(val, batch_size=256)).repeat(starts)  # (starts*K,)

    def __call__(self, generator, layer: str, code_stats: dict) -> tuple[dict[str, float], torch.Tensor]:
        """(metrics with "score", AM images (starts*K, 3, S, S))."""
        generator.eval()
        rec = reconstruction_metrics(generator, self.encoder, layer, self.val, self.val_labels, judge=self.judge)
        res = dgn_am(generator, self.target, self.units * self.starts, code_stats=code_stats, config=self.am)
        images = res.images.cpu().float()
        labels, probs = judge_predictions(self.judge, images)
        m = {
            **rec,
            "am_recognisability": (labels == self.intended).float().mean().item(),
            "am_median_activation_ratio": activation_ratio(res.activations.cpu().float(), self.best_real).nanmedian().item(),
            "am_realism_fd": realism(self.judge, images, self.val),
            "am_mean_judge_prob": probs.mean().item(),
        }
        m.update({f"term_{k}": v for k, v in score_terms(m).items()})
        m["score"] = score(m)
        generator.train()
        return m, images
