"""One generator's score, as the sweep ranks it: the job's class-unit evaluation (dgn.quality), then the rule."""

from __future__ import annotations

import torch

from dgn.am.dgn_am import AMConfig
from dgn.quality import ClassUnitEval
from dgn.sweep.score import score, score_terms


def am_config(*, steps: int, lr: float, seed: int = 0) -> AMConfig:
    """The product's DGN-AM (AMConfig's defaults) at the sweep's step count, lr and seed."""
    return AMConfig(steps=steps, lr=lr, seed=seed)


class Evaluator(ClassUnitEval):
    """ClassUnitEval plus the sweep's score (dgn.sweep.score) and its four terms."""

    def __call__(self, generator, layer: str, code_stats: dict, **kw) -> tuple[dict[str, float], torch.Tensor]:
        m, images = super().__call__(generator, layer, code_stats, **kw)
        m.update({f"term_{k}": v for k, v in score_terms(m).items()})
        m["score"] = score(m)
        m["score_no_x"] = score(m, without=("X",))
        return m, images
