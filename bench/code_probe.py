"""How much of the image does E's code keep? Linear probes of each code layer of a trained run.

    python bench/code_probe.py --run runs/default                 # a finished flows/train.py run
    python bench/code_probe.py --run runs/default --layers fc6,pool5 --n-train 2000
    python bench/code_probe.py --dry-run                          # a fresh tiny run, 8-px targets

For each layer, on the run's own data: ridge regression from the code (the
blob G inverts: post-ReLU where Caffe has a ReLU) to the image downsampled to
``--size`` px, fitted on train and scored on val as R² — on the colour image,
and on the "shape" image (grey, each image's mean removed, so colour and
brightness do not count) — plus a linear class probe (ridge to one-hot,
argmax) and the dead units (zero on every training image). The ridge strength
is picked per layer on a held-out part of train. A G can only draw what its
code keeps; this bounds what any recipe can reach.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from common import load_run, parse_args, tiny_run

from dgn.data import load_split
from dgn.train import tensor_batches

LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
HEADER = "| layer | code size | dead units | R² image | R² shape (grey, mean removed) | linear class probe acc |"


@torch.no_grad()
def codes(encoder, x_uint8: torch.Tensor, layer: str) -> torch.Tensor:
    out = []
    for xb in tensor_batches(x_uint8, batch_size=256):
        out.append(encoder.blob(xb, layer).flatten(1).double())  # Caffe's blob: post-ReLU where Caffe has one
    return torch.cat(out)


def ridge(x: torch.Tensor, y: torch.Tensor, lam: float):
    """(weights, bias) of ridge regression, features standardised by the caller; lam relative to the mean eigenvalue."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    if x.shape[1] <= x.shape[0]:
        gram = xc.T @ xc
        scale = gram.diagonal().mean().clamp_min(1e-12)
        w = torch.linalg.solve(gram + lam * scale * torch.eye(gram.shape[0], dtype=x.dtype), xc.T @ yc)
    else:  # dual form: fewer samples than features
        gram = xc @ xc.T
        scale = gram.diagonal().mean().clamp_min(1e-12)
        w = xc.T @ torch.linalg.solve(gram + lam * scale * torch.eye(gram.shape[0], dtype=x.dtype), yc)
    return w, ym - xm @ w


def r2(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())


def probe(xtr, ytr, xva, yva) -> tuple[float, float]:
    """(val R², chosen lambda): lambda picked on the last fifth of train."""
    k = int(len(xtr) * 0.8)

    def held_out(lam: float) -> float:
        w, b = ridge(xtr[:k], ytr[:k], lam)
        return r2(xtr[k:] @ w + b, ytr[k:])

    best = max(LAMBDAS, key=held_out)
    w, b = ridge(xtr, ytr, best)
    return r2(xva @ w + b, yva), best


def targets(x_uint8: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = F.interpolate(x_uint8.float() / 255, size=(size, size), mode="area")
    grey = x.mean(1)
    shape = grey - grey.flatten(1).mean(1).view(-1, 1, 1)
    return x.flatten(1).double(), shape.flatten(1).double()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/default", help="storage of a finished run (classifier/, data/)")
    p.add_argument("--layers", default="conv3,conv5,pool5,fc6,fc7,fc8")
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--size", type=int, default=16, help="side of the downsampled image the probe predicts")
    p.add_argument("--out", help="JSON results (default: <run>/code-probe.json)")
    a = parse_args(p, argv, run=lambda: tiny_run("dgn-bench-probe-"), size=8)
    r = load_run(a.run, judge=False, generator=False)
    encoder, xva, lva = r.encoder, r.val, r.val_labels
    xtr, ltr = load_split(r.data, "train", image_size=encoder.config.image_size, limit=a.n_train)
    ltr = torch.as_tensor(ltr)
    K = encoder.config.num_classes
    img_tr, shape_tr = targets(xtr, a.size)
    img_va, shape_va = targets(xva, a.size)
    print(f"E {r.classifier}; {len(xtr)} train / {len(xva)} val images; probes predict {a.size}×{a.size} px")
    print(f"\n{HEADER}\n|---|---|---|---|---|---|")
    results = {}
    for layer in [s for s in a.layers.split(",") if s]:
        ctr, cva = codes(encoder, xtr, layer), codes(encoder, xva, layer)
        dead = int((ctr.abs().amax(0) == 0).sum())
        ri, _ = probe(ctr, img_tr, cva, img_va)
        rs, _ = probe(ctr, shape_tr, cva, shape_va)
        onehot = F.one_hot(ltr.long(), K).double()
        w, b = ridge(ctr, onehot, 1e-2)
        acc = float(((cva @ w + b).argmax(1) == lva.long()).double().mean())
        results[layer] = {"size": ctr.shape[1], "dead": dead, "r2_image": ri, "r2_shape": rs, "class_probe_acc": acc}
        print(f"| {layer} | {ctr.shape[1]} | {dead} ({dead / ctr.shape[1]:.0%}) | {ri:.3f} | {rs:.3f} | {acc:.3f} |",
              flush=True)
    out = Path(a.out) if a.out else Path(a.run) / "code-probe.json"
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
