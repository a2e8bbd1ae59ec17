"""Finished items regrouped per (layer, epoch): images and a row of numbers per unit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dgn.atlas.config import COMBINE
from dgn.atlas.manifest import Manifest


@dataclass
class Group:
    layer: str
    epoch: int
    units: list = field(default_factory=list)  # channel indices, or composition strings
    images: list = field(default_factory=list)  # (H, W, 3) uint8 each
    rows: list[dict] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.layer}/epoch={self.epoch:04d}"

    def signature(self) -> str:
        import hashlib

        return hashlib.sha1(repr(self.units).encode()).hexdigest()[:10]

    def unit_name(self, i: int) -> str:
        u = self.units[i]
        return str(u) if self.layer == COMBINE else f"{self.layer}:{u}"

    def file_name(self, i: int) -> str:
        u = self.units[i]
        return f"combo-{i:03d}.png" if self.layer == COMBINE else f"unit-{u:04d}.png"

    def median_ratio(self) -> float:
        r = [x["activation_ratio"] for x in self.rows if not math.isnan(x["activation_ratio"])]
        return float(np.median(r)) if r else float("nan")

    def recognisability(self) -> float:
        hits = [x["recognised"] for x in self.rows if x.get("recognised") is not None and not x["dead"]]
        return float(np.mean(hits)) if hits else float("nan")

    def dead_units(self) -> list:
        return [x["unit"] for x in self.rows if x["dead"]]


def _f(x) -> float:
    return float(x)


def collect(manifest: Manifest, *, class_names: list[str], class_layer: str | None,
            unit_names: dict[str, list[str]] | None = None) -> dict[tuple[str, int], Group]:
    """Every recorded unit, grouped; ``class_layer`` (e.g. fc8 of the run's classifier) gets recognisability;
    ``unit_names`` ({layer: names}, e.g. the ImageNet classes of a torchvision fc8) adds a ``class_name`` column."""
    unit_names = unit_names or {}
    groups: dict[tuple[str, int], Group] = {}
    for item_id, rec in sorted(manifest.items.items()):
        res = manifest.load(item_id)
        g = groups.setdefault((rec["layer"], rec["epoch"]), Group(rec["layer"], rec["epoch"]))
        for k, u in enumerate(rec["units"]):
            label = int(res["judge_label"][k])
            name = class_names[label] if 0 <= label < len(class_names) else ("" if label < 0 else str(label))
            recognised = None
            if class_layer is not None and rec["layer"] == class_layer and u < len(class_names):
                recognised = bool(label == u)
            g.units.append(u)
            g.images.append(res["images"][k])
            g.rows.append({
                "unit": str(u) if rec["layer"] == COMBINE else f"{rec['layer']}:{u}",
                "activation": _f(res["activation"][k]), "best_real": _f(res["best_real"][k]),
                "activation_ratio": _f(res["ratio"][k]), "judge_label": name, "judge_prob": _f(res["judge_prob"][k]),
                "recognised": recognised, "dead": bool(res["dead"][k]),
            })
            names = unit_names.get(rec["layer"])
            if names is not None:
                g.rows[-1]["class_name"] = names[u] if isinstance(u, int) and 0 <= u < len(names) else ""
    for g in groups.values():  # units in order
        order = sorted(range(len(g.units)), key=lambda i: (str(type(g.units[i])), g.units[i]))
        g.units = [g.units[i] for i in order]
        g.images = [g.images[i] for i in order]
        g.rows = [g.rows[i] for i in order]
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])))
