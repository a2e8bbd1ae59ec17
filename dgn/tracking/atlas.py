"""What an atlas puts in MLflow (driver only; the atlas actors hand results back).

Per (layer, epoch): the labelled grid as a stepped image (``atlas-<layer>``,
step = epoch: the UI's slider shows the evolution; step 0 repeats the newest
epoch's grid, where the image card opens), the per-unit PNGs, the
grid and the table under ``atlas/<layer>/epoch=<NNNN>/`` (the table also as an
MLflow table, ``table.json``), and ``atlas_<layer>_*`` metrics at that step.
At the end: the plots and the static HTML atlas (the same tree) under ``atlas/``.
The atlas's config goes to ``atlas/config.json``, never into params: MLflow's
image cards print every param of the run above the grid.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dgn.errors import DGNError
from dgn.tracking.core import Run, _client, check_reachable, open_run, tracking_uri


def image_key(layer: str, prefix: str = "atlas") -> str:
    return f"{prefix}-{layer}".replace("/", "-")


def log_group(run: Run, group, folder: Path, grid, *, prefix: str = "atlas") -> None:
    """One (layer, epoch): stepped grid image, its folder of PNGs + table, its numbers as metrics."""
    run.log_image(grid, key=image_key(group.layer, prefix), step=group.epoch)
    artifact_dir = f"{prefix}/{group.layer}/epoch={group.epoch:04d}"
    run.log_artifact(folder, artifact_dir)
    run.log_table(group.rows, f"{artifact_dir}/table.json")
    name = group.layer.replace("+", "_").replace(":", "_")
    run.log_metrics({f"{prefix}_{name}_median_ratio": group.median_ratio(),
                     f"{prefix}_{name}_recognisability": group.recognisability(),
                     f"{prefix}_{name}_dead_units": float(len(group.dead_units()))}, step=group.epoch)


def log_site(run: Run, root: Path, *, prefix: str = "atlas") -> None:
    """The HTML pages and plots of the static atlas (the per-epoch folders went up with their groups)."""
    with tempfile.TemporaryDirectory(prefix="dgn-atlas-site-") as tmp:
        for p in list(root.rglob("*.html")) + list((root / "plots").glob("*.png")):
            dst = Path(tmp) / p.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst)
        run.log_artifact(tmp, prefix)


def log_summary(run: Run, summary: dict, *, prefix: str = "atlas") -> None:
    run.log_dict(summary, f"{prefix}/summary.json")
    run.log_metrics({f"{prefix}_units_per_s": summary.get("units_per_s", float("nan")),
                     f"{prefix}_items_done": summary.get("items_done", 0)})


def open_atlas_run(*, storage: str, run_name: str = "", run_id: str = "", experiment: str = "", params=None) -> Run:
    """The run an atlas logs into: an existing run by id, the training run by name, or its own.

    ``run_id``: continue exactly that run. ``run_name``: the run of that name in
    ``experiment`` (default ``dgn-train``, where flows/train.py logs). Neither:
    a run ``atlas-<storage folder>`` in ``experiment`` (default ``dgn-atlas``).
    ``params`` (the atlas's config) goes to the artifact ``atlas/config.json``
    of that run, not into its params (see the module docstring).
    """
    if run_id:
        uri = tracking_uri()
        check_reachable(uri)
        client = _client(uri)
        try:
            client.get_run(run_id)
        except Exception:  # noqa: BLE001 — mlflow raises its own RestException / MlflowException
            raise DGNError(f"MLflow run id {run_id!r} does not exist at {uri}") from None
        client.update_run(run_id, status="RUNNING")
        run = Run(client, run_id, resumed=True)
    elif run_name:
        run = open_run(experiment=experiment or "dgn-train", run_name=run_name)
    else:
        name = "atlas-" + (storage.rstrip("/").rsplit("/", 1)[-1] or "run")
        run = open_run(experiment=experiment or "dgn-atlas", run_name=name,
                       tags={"dgn.storage": storage, "dgn.flow": "atlas"})
    if params:
        run.log_config(params, "atlas/config.json")
    return run
