"""Reconstruction: how well G(E(x)) gives x back, by pixels, by comparator features, by the judge."""

from __future__ import annotations

import torch
from torch import nn

from dgn.metrics.judge import judge_predictions
from dgn.nets.caffenet import CaffeNet


@torch.no_grad()
def reconstruct(generator: nn.Module, encoder: CaffeNet, layer: str, images: torch.Tensor, *, batch_size: int = 128) -> torch.Tensor:
    was_g, was_e = generator.training, encoder.training
    generator.eval(), encoder.eval()
    out = torch.cat([generator(encoder.blob(images[i:i + batch_size], layer)).clamp(0, 1)
                     for i in range(0, len(images), batch_size)])
    generator.train(was_g), encoder.train(was_e)
    return out


@torch.no_grad()
def reconstruction_metrics(generator, encoder: CaffeNet, layer: str, images: torch.Tensor, labels: torch.Tensor,
                           *, judge: nn.Module | None = None, comparator_layer: str = "pool5") -> dict[str, float]:
    """Image MSE (on [0,1]), comparator-feature MSE, E's own accuracy on G(E(x)) (``recon_encoder_acc``: does G
    give E its class back?) and, with a judge, the judge's (``recon_judge_acc``: does a second net read it?).

    Side by side the two accuracies tell apart a G that does not invert E's code (both low) from a code that
    keeps what E needs but not what the judge reads (E high, the judge low; docs/quality.md)."""
    rec = reconstruct(generator, encoder, layer, images)
    was = encoder.training
    encoder.eval()
    on_rec = encoder.blobs(rec, (comparator_layer, "fc8"))  # the comparator's view and E's logits: one pass
    feat = (on_rec[comparator_layer] - encoder.blob(images, comparator_layer)).pow(2).mean().item()
    e_lab = on_rec["fc8"].argmax(1)
    encoder.train(was)
    out = {"recon_image_mse": (rec - images).pow(2).mean().item(), "recon_feature_mse": feat,
           "recon_encoder_acc": (e_lab.cpu() == labels.cpu()).float().mean().item()}
    if judge is not None:
        lab, _ = judge_predictions(judge, rec)
        out["recon_judge_acc"] = (lab == labels.to(lab.device)).float().mean().item()
        lab_real, _ = judge_predictions(judge, images)
        out["real_judge_acc"] = (lab_real == labels.to(lab_real.device)).float().mean().item()
    return out
