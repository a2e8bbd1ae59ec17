"""Objectives: what activation maximisation maximises, as small composable objects.

An :class:`Objective` is a weighted sum of units (``fc8:3``, ``conv5:12@3,4``)
of one target network. ``Objective.parse("fc8:3+0.5*fc8:7")`` or
``unit("fc8", 3) + 0.5 * unit("fc8", 7)`` build the paper's "two neurons at
once" objective. A batch of objectives, one per image, is evaluated in one
pass by :func:`evaluate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from dgn.errors import DGNError
from dgn.nets.target import Unit, check_unit, parse_unit, unit_position

_TERM = re.compile(r"^\s*(?:(?P<w>[-+]?\d*\.?\d+(?:e[-+]?\d+)?)\s*\*\s*)?(?P<unit>[\w.]+:\d+(?:@\d+,\d+)?)\s*$")


@dataclass(frozen=True)
class Objective:
    terms: tuple[tuple[float, Unit], ...]

    @classmethod
    def parse(cls, text: str) -> "Objective":
        """``"fc8:3"``, ``"fc8:3+fc8:7"``, ``"0.5*fc8:3+conv5:2@1,1"``."""
        terms = []
        for part in text.split("+"):
            m = _TERM.match(part)
            if not m:
                raise DGNError(
                    f"bad objective {text!r}; write units joined by '+', each optionally weighted, "
                    f"e.g. fc8:3+0.5*fc8:7 or conv5:12@3,4"
                )
            terms.append((float(m["w"]) if m["w"] else 1.0, parse_unit(m["unit"])))
        return cls(tuple(terms))

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u.layer for _, u in self.terms))

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self.terms + other.terms)

    def __mul__(self, k: float) -> "Objective":
        return Objective(tuple((w * k, u) for w, u in self.terms))

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __str__(self) -> str:
        return "+".join(str(u) if w == 1.0 else f"{w:g}*{u}" for w, u in self.terms)


def unit(layer: str, channel: int, y: int | None = None, x: int | None = None) -> Objective:
    return Objective(((1.0, Unit(layer, channel, y, x)),))


def as_objective(o: "Objective | Unit | str") -> Objective:
    if isinstance(o, Objective):
        return o
    if isinstance(o, Unit):
        return Objective(((1.0, o),))
    if isinstance(o, str):
        return Objective.parse(o)
    raise TypeError(f"not an objective: {o!r}")


def check_objectives(objectives: list[Objective], shapes: dict[str, tuple]) -> None:
    """Raise a DGNError for any unit not in the target (``shapes``: layer → per-image shape)."""
    for o in objectives:
        for _, u in o.terms:
            check_unit(shapes[u.layer], u)


def evaluate(objectives: list[Objective], acts: dict[str, torch.Tensor], *, transform=None) -> torch.Tensor:
    """Objective k on image k: returns (B,), B = len(objectives).

    ``acts`` maps layer → (B, C) or (B, C, H, W). ``transform(layer, values)``
    may map raw module outputs first (e.g. ReLU for reporting).
    """
    B = len(objectives)
    total = None
    for layer in dict.fromkeys(u.layer for o in objectives for _, u in o.terms):
        a = acts[layer]
        if transform is not None:
            a = transform(layer, a)
        rows, weights, index = [], [], []
        for k, o in enumerate(objectives):
            for w, u in o.terms:
                if u.layer != layer:
                    continue
                rows.append(k)
                weights.append(w)
                index.append((u.channel, *unit_position(a.shape[1:], u)) if a.dim() == 4 else (u.channel,))
        rows_t = torch.tensor(rows, device=a.device)
        idx = torch.tensor(index, device=a.device)  # (T, 1) or (T, 3)
        vals = a[(rows_t, *idx.unbind(1))]  # (T,)
        contrib = torch.zeros(B, dtype=a.dtype, device=a.device).index_add(
            0, rows_t, vals * torch.tensor(weights, dtype=a.dtype, device=a.device)
        )
        total = contrib if total is None else total + contrib
    return total
