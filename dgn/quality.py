"""A generator's quality on its classifier's class units: the one evaluation the job, the sweep and benches share.

DGN-AM renders every fc8 unit from ``starts`` starts (start s of unit k is row s·K + k); the independent
judge then says which class each image shows (recognisability), the activation is compared with the best
real val image's (activation ratio), and the images' judge features with real ones' (realism). With
``val_labels`` the reconstructions G(E(x)) of the val images are scored too (dgn.metrics.reconstruction).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from dgn.am.dgn_am import AMConfig, dgn_am
from dgn.metrics import (
    activation_ratio,
    best_real_activations,
    judge_features,
    judge_predictions,
    realism_from_features,
    reconstruct,
    reconstruction_metrics,
)
from dgn.nets.adapters import TargetNet
from dgn.train.batches import tensor_batches


def class_units(num_classes: int) -> list[str]:
    return [f"fc8:{k}" for k in range(num_classes)]


@dataclass
class ClassUnitEval:
    """Scores generators of one E against fixed val images, a fixed judge and fixed AM settings."""

    encoder: torch.nn.Module
    judge: torch.nn.Module
    val: torch.Tensor  # uint8 (M, 3, S, S)
    val_labels: torch.Tensor  # int64 (M,)
    num_classes: int
    am: AMConfig
    starts: int
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        self.encoder.eval()
        self.judge.eval()
        self.val_float = self.val.float() / 255  # (M, 3, S, S) in [0, 1]
        self.target = TargetNet.caffenet(self.encoder)
        self.units = class_units(self.num_classes)
        self.intended = torch.arange(self.num_classes).repeat(self.starts)  # start s of unit k at s*K + k
        self.best_real = best_real_activations(self.target, self.units, tensor_batches(self.val, batch_size=256)
                                               ).repeat(self.starts)  # (starts*K,)
        self._real_feats = judge_features(self.judge, self.val_float)

    def __call__(self, generator, layer: str, code_stats: dict, *, reconstruction: bool = True
                 ) -> tuple[dict[str, float], torch.Tensor]:
        """(metrics, AM images (starts·K, 3, S, S) in [0, 1])."""
        was = generator.training
        generator.eval()
        t = time.time()
        rec = reconstruction_metrics(generator, self.encoder, layer, self.val_float, self.val_labels,
                                     judge=self.judge) if reconstruction else {}
        res = dgn_am(generator, self.target, self.units * self.starts, code_stats=code_stats, config=self.am,
                     device=self.device)
        images = res.images.cpu().float()
        labels, probs = judge_predictions(self.judge, images)
        hits = labels == self.intended
        feats = judge_features(self.judge, images)
        m = {
            **rec,
            "am_recognisability": hits.float().mean().item(),
            "am_units_recognised_any_start": hits.view(self.starts, self.num_classes).any(0).float().mean().item(),
            "am_median_activation_ratio": activation_ratio(res.activations.cpu().float(),
                                                           self.best_real).nanmedian().item(),
            **self.realism(feats),
            "am_mean_judge_prob": probs.mean().item(),
            "am_images": float(len(images)),
            "am_seconds": time.time() - t,
        }
        generator.train(was)
        return m, images


    def realism(self, feats) -> dict[str, float]:
        """FD, precision and recall of all the AM images against as many real val images, and the real-vs-real
        floor at that N from a disjoint set of as many others (dgn.metrics.realism; docs/metrics.md)."""
        n = min(len(feats), len(self._real_feats) // 2)
        if n <= REALISM_K + 1:
            return {f"am_realism_{k}": float("nan") for k in REALISM_KEYS}
        r = realism_from_features(feats, self._real_feats, n=n, k=REALISM_K)
        return {f"am_realism_{k}": float(r[k]) for k in REALISM_KEYS}


REALISM_K = 3  # k-NN radius of the precision/recall manifolds (Kynkäänniemi et al. 2019)
REALISM_KEYS = ("n", "fd", "precision", "recall", "floor_fd", "floor_precision", "floor_recall")


def save_montage(images: torch.Tensor, path: Path, nrow: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torchvision.utils.save_image(images.clamp(0, 1), str(path), nrow=nrow, padding=2, pad_value=1.0)


def write_montages(out_dir: Path, ev: ClassUnitEval, generator, layer: str, am_images: torch.Tensor) -> list[Path]:
    """montage-reconstructions.png (6 val images per class beside G(E(x))) and montage-dgn-am-fc8.png (a row per
    class unit, a column per start)."""
    yv, xvf, k = ev.val_labels, ev.val_float, ev.num_classes
    order = torch.cat([torch.nonzero(yv == c)[:6, 0] for c in range(k)])
    recs = reconstruct(generator, ev.encoder, layer, xvf[order])
    pairs = torch.stack([xvf[order], recs], 1).flatten(0, 1)  # real, reconstruction, …
    save_montage(pairs, out_dir / "montage-reconstructions.png", nrow=12)
    grid = am_images.view(ev.starts, k, *am_images.shape[1:]).transpose(0, 1).flatten(0, 1)
    save_montage(grid, out_dir / "montage-dgn-am-fc8.png", nrow=ev.starts)
    return [out_dir / "montage-dgn-am-fc8.png", out_dir / "montage-reconstructions.png"]
