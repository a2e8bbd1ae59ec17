"""One atlas worker: loads G and the judge once, keeps the last target loaded, renders items.

The pool runs it as a Ray actor; tests and benches may call it in-process.
It returns arrays and numbers only (the driver writes files and MLflow).
"""

from __future__ import annotations

import os
import time
import zlib

import numpy as np
import torch

from dgn.am.dgn_am import AMConfig, dgn_am
from dgn.atlas.config import COMBINE
from dgn.atlas.plan import Item, Source
from dgn.data import load_split
from dgn.metrics import activation_ratio, best_real_activations, judge_predictions
from dgn.nets.adapters import TargetNet, load_target
from dgn.nets.conventions import crop_size, display_uint8
from dgn.nets.deepsim import is_deepsim, load_deepsim, parse_spec, reference_stats
from dgn.nets.objectives import as_objective
from dgn.train import load_classifier, load_generator, load_judge


def open_target(src: Source, weights: str = "") -> TargetNet:
    if src.run_target:
        net, _ = load_classifier(src.target)
        return TargetNet.caffenet(net, name=f"classifier {src.key}")
    return load_target(src.target, weights=weights or None)


def start_codes(objectives: list[str], starts: int, stats: dict, cfg: AMConfig, seed: int) -> torch.Tensor:
    """Noise start codes per (objective, start): the same unit starts alike whatever batch it is in.

    Returns (starts·K, *code_shape), start s of objective k at row s·K + k.
    """
    mean, std = stats["mean"].float(), stats["std"].float()
    rows = []
    for s in range(starts):
        for o in objectives:
            g = torch.Generator().manual_seed((seed * 1_000_003 + s * 7919 + zlib.crc32(o.encode())) % 2**63)
            rows.append(mean + cfg.noise_std * std * torch.randn(mean.shape, generator=g))
    return torch.stack(rows)


class AtlasWorker:
    def __init__(self, *, judge: str, data: str, am: dict, starts: int = 1, seed: int = 0, n_real: int = 1000,
                 device: str = "cpu", threads: int = 0, target_weights: str = "", bounds: torch.Tensor | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.am = AMConfig(**am)
        self.starts, self.seed, self.n_real = starts, seed, n_real
        self.data_uri, self.target_weights = data, target_weights
        self.bounds = bounds  # upper code bounds of a deepsim G (dgn.nets.deepsim)
        self.judge = load_judge(judge).to(self.device) if judge else None
        self._g_uri = self._t_key = None
        self.G = self.stats = self.T = None
        self._real: torch.Tensor | None = None
        self._best: dict[str, torch.Tensor] = {}
        self.loads = {"target": 0, "generator": 0}

    # helpers

    def _load(self, src: Source) -> tuple[bool, bool]:
        t_new = (src.target, src.run_target) != self._t_key
        if t_new:
            self.T = open_target(src, self.target_weights)
            self.T.model.to(self.device)
            self._t_key = (src.target, src.run_target)
            self._best = {}
            self.loads["target"] += 1
        g_key = src.generator
        if is_deepsim(src.generator):  # its 256 px are centre-cropped to the target's input size
            g_key = (src.generator, crop_size(self.T.input_size))
        g_new = g_key != self._g_uri
        if g_new:
            if is_deepsim(src.generator):
                layer, path = parse_spec(src.generator)
                g, stats = load_deepsim(path, layer, image_size=g_key[1]), reference_stats(self.bounds)
            else:
                g, ck = load_generator(src.generator)
                stats = ck["code_stats"]
            self.G, self.stats = g.to(self.device), stats
            self._g_uri = g_key
            self.loads["generator"] += 1
        return t_new, g_new

    def real_images(self) -> torch.Tensor:
        """(N, 3, S, S) float validation images at G's resolution, loaded once."""
        if self._real is None:
            x, _ = load_split(self.data_uri, "val", image_size=self.G.config.image_size, limit=self.n_real)
            self._real = x.float() / 255
        return self._real

    @torch.no_grad()
    def _layer_best(self, layer: str) -> torch.Tensor:
        """Highest reported value of every channel (centre position for conv layers) over real images: (C,);
        NaN without real images (a published prior with no --data)."""
        if layer not in self._best and not self.data_uri:
            shape = self.T.layer_shapes([layer], self.G.config.image_size, self.device)[layer]
            self._best[layer] = torch.full((shape[0],), float("nan"))
        if layer not in self._best:
            x, best = self.real_images(), None
            for i in range(0, len(x), 256):
                a = self.T.report(layer, self.T.activations(x[i:i + 256].to(self.device), [layer])[layer])
                if a.dim() == 4:
                    a = a[:, :, a.shape[2] // 2, a.shape[3] // 2]  # (B, C) at the centre
                v = a.flatten(1).amax(0).float().cpu()
                best = v if best is None else torch.maximum(best, v)
            self._best[layer] = best
        return self._best[layer]

    def _grad_norms(self, objs: list[str], codes: torch.Tensor) -> torch.Tensor:
        """|∂objective/∂code| at the start codes, per row: (R,)."""
        with torch.enable_grad():
            code = torch.minimum(codes.clamp_min(0), self.stats["upper"].to(codes)).requires_grad_(True)
            obj, _ = self.T.values(self.G(code), [as_objective(o) for o in objs])
            (grad,) = torch.autograd.grad(obj.sum(), code)
        return grad.flatten(1).abs().amax(1).cpu()

    # the work

    def render(self, item: Item) -> dict:
        t0 = time.time()
        t_new, g_new = self._load(item.source)
        self.G.eval()
        objs = item.objectives
        K, S = len(objs), self.starts
        all_objs = objs * S
        cfg = self.am
        codes = None
        if cfg.init == "noise":
            codes = start_codes(objs, S, self.stats, cfg, self.seed).to(self.device)
            cfg = AMConfig(**{**cfg.to_dict(), "init": "codes"})
        grads = self._grad_norms(all_objs, codes if codes is not None else
                                 torch.zeros(len(all_objs), *self.G.config.code_shape, device=self.device))
        res = dgn_am(self.G, self.T, all_objs, code_stats=self.stats, config=cfg, codes=codes, device=self.device)
        obj = res.objective.view(S, K).cpu().float()
        pick = obj.argmax(0)  # best start per unit: (K,)
        rows = pick * K + torch.arange(K)
        images = res.images[rows].cpu().float()  # (K, 3, H, W)
        act = res.activations.cpu().float()[rows]
        if item.layer == COMBINE and not self.data_uri:
            best = torch.full((K,), float("nan"))
        elif item.layer == COMBINE:
            real = self.real_images()
            best = best_real_activations(self.T, objs, [real[i:i + 256].to(self.device) for i in range(0, len(real), 256)])
            best = best.cpu().float()
        else:
            best = self._layer_best(item.layer)[list(item.units)]
        ratio = activation_ratio(act, best)
        if self.judge is not None:
            labels, probs = judge_predictions(self.judge, images.to(self.device))
            labels, probs = labels.cpu(), probs.cpu().float()
        else:
            labels, probs = torch.full((K,), -1), torch.full((K,), float("nan"))
        grad_max = grads.view(S, K).amax(0)
        trace_max = res.trace.view(S, K, -1).amax((0, 2)).float()
        dead = ((best <= 0) | best.isnan()) & (grad_max == 0) & (trace_max <= 0)
        return {
            "images": display_uint8(images).numpy(),  # (K, H, W, 3)
            "activation": act.numpy(), "objective": obj.amax(0).numpy(), "best_real": best.numpy(),
            "ratio": ratio.numpy(), "judge_label": labels.numpy().astype(np.int64), "judge_prob": probs.numpy(),
            "dead": dead.numpy(), "grad_max": grad_max.numpy(),
            "meta": np.array([time.time() - t0, float(t_new), float(g_new), float(os.getpid())]),
        }

    def ping(self) -> int:
        return os.getpid()
