"""What an atlas puts in MLflow (driver only; the atlas actors hand results back).

Per (layer, epoch): the labelled grid as a stepped image (``atlas-<layer>``,
step = epoch: the UI's slider shows the evolution), the per-unit PNGs, the
grid and the table under ``atlas/<layer>/epoch=<NNNN>/`` (the table also as an
MLflow table, ``table.json``), and ``atlas_<layer>_*`` metrics at that step.
At the end: the plots and the static HTML atlas (the same tree) under ``atlas/``.
"""

from __future__ import annotations

from pathlib import Path

from dgn.tracking.core import Run


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
    import shutil
    import tempfile

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
