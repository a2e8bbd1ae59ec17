"""The per-layer comparison figure: the same fc8 units rendered from each layer's best G, a row per layer."""

from __future__ import annotations

from pathlib import Path

import torch

from dgn.am.dgn_am import dgn_am
from dgn.nets.adapters import TargetNet
from dgn.nets.generator import Generator, GeneratorConfig
from dgn.quality import class_units
from dgn.sweep.evaluate import am_config
from dgn.sweep.trial import CHECKPOINT
from dgn.train.checkpoint import load_checkpoint, load_state


def render_layers(encoder, checkpoints: dict[str, str], *, num_classes: int, steps: int, lr: float,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """layer → (K, 3, S, S) DGN-AM images of fc8:0…K-1 from that layer's G (checkpoint directories)."""
    target = TargetNet.caffenet(encoder)
    out = {}
    for layer, d in checkpoints.items():
        ck = load_checkpoint(str(Path(d) / CHECKPOINT), "gan")
        g = Generator(GeneratorConfig.from_dict(ck["g_config"]))
        load_state(g, ck["generator"], what=f"generator of {layer} in {d!r}")
        res = dgn_am(g.eval(), target, class_units(num_classes), code_stats=ck["code_stats"],
                     config=am_config(steps=steps, lr=lr, seed=seed))
        out[layer] = res.images.cpu().float().clamp(0, 1)
    return out


def layer_figure(images: dict[str, torch.Tensor], *, class_names: list[str], scores: dict[str, float], path: Path,
                 cell: int = 64) -> Path:
    """A labelled grid: a row per layer (name and score on the left), a column per class unit."""
    from PIL import Image, ImageDraw

    layers = list(images)
    k = len(class_names)
    left, top, pad = 90, 16, 2
    W, H = left + k * (cell + pad), top + len(layers) * (cell + pad)
    fig = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(fig)
    for j, name in enumerate(class_names):
        draw.text((left + j * (cell + pad) + 2, 2), name[:10], fill="black")
    for i, layer in enumerate(layers):
        y = top + i * (cell + pad)
        draw.text((4, y + cell // 2 - 12), layer, fill="black")
        s = scores.get(layer)
        if s is not None:
            draw.text((4, y + cell // 2 + 2), f"score {s:.3f}", fill="black")
        for j in range(k):
            arr = (images[layer][j].permute(1, 2, 0).numpy() * 255).round().astype("uint8")  # (S, S, 3)
            fig.paste(Image.fromarray(arr).resize((cell, cell), Image.NEAREST), (left + j * (cell + pad), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.save(path)
    return path
