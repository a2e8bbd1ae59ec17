"""Feature-evolution atlases: the preferred input of every unit of every checkpoint, on a Ray actor pool.

    from dgn.atlas import AtlasConfig, run_atlas
    summary = run_atlas(AtlasConfig(storage="runs/default", layers=("fc8",)), run=None)

``config`` (what to render), ``plan`` (work items), ``worker`` (one actor),
``pool`` (scheduling, replacement), ``manifest`` (resumability), ``results`` /
``grid`` / ``site`` (the static atlas), ``run`` (the driver).
"""

from dgn.atlas.config import DEFAULT_LAYERS, AtlasConfig, parse_spec
from dgn.atlas.run import run_atlas

__all__ = ["DEFAULT_LAYERS", "AtlasConfig", "parse_spec", "run_atlas"]
