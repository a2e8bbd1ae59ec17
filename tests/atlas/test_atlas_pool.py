"""The actor pool end to end on a local Ray cluster: killed actors, reruns, dead units, G sweeps, S3."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import ray

from dgn.atlas import AtlasConfig, run_atlas
from dgn.atlas.manifest import Manifest
from dgn.atlas.run import settings

AM = {"steps": 12}


def _units_recorded(out: str, cfg: AtlasConfig) -> list[tuple]:
    m = Manifest.open(out, settings(cfg))
    return [(rec["source"], rec["layer"], u) for rec in m.items.values() for u in rec["units"]]


def test_killed_actor_is_replaced_and_every_unit_appears_once(tiny_run, ray_cluster, tmp_path):
    cfg = AtlasConfig(storage=tiny_run, out=str(tmp_path / "atlas"), layers=("fc8", "fc7"), units="fc8=0-5;fc7=0-3",
                      actors=2, chunk=2, am=AM)
    logs, killed = [], []

    def kill(slot: int):
        for a in ray.util.list_named_actors(all_namespaces=True):
            if a["name"].startswith("dgn-atlas-") and a["name"].endswith(f"-{slot}"):
                ray.kill(ray.get_actor(a["name"], namespace=a["namespace"]))
                killed.append(a["name"])

    def log(msg: str):
        logs.append(msg)
        if msg.startswith("atlas: [1/") and not killed:
            # the first item is back from one actor; the other is still busy with its first item: kill it
            slot = int(msg.split("on actor ")[1].split()[0])
            kill(1 - slot)

    summary = run_atlas(cfg, run=None, log=log)
    assert killed, "the test never killed an actor"
    assert summary["actors_replaced"] >= 1 and any("died during" in m for m in logs)
    recorded = _units_recorded(cfg.out, cfg)
    expected = {(f"epoch={e:04d}", l, u) for e in (1, 2) for l, n in (("fc8", 6), ("fc7", 4)) for u in range(n)}
    assert len(recorded) == len(set(recorded)) == len(expected)  # no duplicates, nothing missing
    assert set(recorded) == expected
    # affinity: targets are loaded about once per actor per checkpoint, not once per item
    assert summary["target_loads"] <= 2 * 2 + summary["actors_replaced"] + 1 < summary["items_done"]
    # the static atlas has every unit of every epoch
    root = Path(summary["html"]).parent
    for e in (1, 2):
        pngs = sorted((root / "fc8" / f"epoch={e:04d}").glob("unit-*.png"))
        assert len(pngs) == 6
        rows = list(csv.DictReader(open(root / "fc8" / f"epoch={e:04d}" / "table.csv")))
        assert [r["unit"] for r in rows] == [f"fc8:{k}" for k in range(6)]

    # a rerun does no new work and leaves the manifest as it was
    before = Path(cfg.out, "manifest.json").read_text()
    again = run_atlas(cfg, run=None, log=lambda m: None)
    assert again["items_done"] == 0 and again["units_rendered"] == 0
    assert again["items_skipped"] == summary["items_done"]
    assert Path(cfg.out, "manifest.json").read_text() == before

    # asking for more units renders only the new ones
    more = run_atlas(AtlasConfig(**{**cfg.to_dict(), "units": "fc8=0-5;fc7=0-5"}), run=None, log=lambda m: None)
    assert more["units_rendered"] == 2 * 2
    recorded = _units_recorded(cfg.out, cfg)
    assert len(recorded) == len(set(recorded)) == 2 * (6 + 6)


def test_dead_units_are_detected_and_marked(tiny_run, ray_cluster, tmp_path):
    cfg = AtlasConfig(storage=tiny_run, out=str(tmp_path / "atlas"), layers=("fc7",), units="3-6", actors=1, am=AM)
    summary = run_atlas(cfg, run=None, log=lambda m: None)
    assert summary["layers"]["fc7"]["dead_units"] == ["fc7:5"]
    root = Path(summary["html"]).parent
    rows = {r["unit"]: r for r in csv.DictReader(open(root / "fc7" / "epoch=0002" / "table.csv"))}
    assert rows["fc7:5"]["dead"] == "True" and rows["fc7:4"]["dead"] == "False"
    assert "dead" in (root / "fc7" / "unit-0005.html").read_text()
    assert "<span class='dead'>dead</span>" in (root / "fc7" / "index.html").read_text()
    # the grid draws it as the marked tile (red cross), not as an image
    from PIL import Image
    import numpy as np

    from dgn.atlas.grid import DEAD_MARK

    grid = np.asarray(Image.open(root / "fc7" / "epoch=0002" / "grid.png").convert("RGB"))
    assert (np.abs(grid.astype(int) - DEAD_MARK).sum(-1) < 10).sum() > 100


def test_generator_sweep_and_compositions(tiny_run, ray_cluster, tmp_path):
    cfg = AtlasConfig(storage=tiny_run, out=str(tmp_path / "atlas"), layers=("fc8",), units="0-3",
                      combine=("fc8:1+fc8:2",), generators="all", actors=2, am=AM)
    summary = run_atlas(cfg, run=None, log=lambda m: None)
    m = Manifest.open(cfg.out, settings(cfg))
    gens = {json.dumps(rec["source"]) for rec in m.items.values()}
    assert gens == {'"epoch=0001"', '"epoch=0002"'}  # the two G checkpoints
    assert summary["layers"]["combine"]["units"] == 1
    root = Path(summary["html"]).parent
    assert (root / "combine" / "epoch=0002" / "combo-000.png").is_file()


def test_atlas_to_s3(tiny_run, ray_cluster, s3_bucket):
    out = f"s3://{s3_bucket}/atlas"
    cfg = AtlasConfig(storage=tiny_run, out=out, layers=("fc8",), units="0-1", actors=1, am={"steps": 3})
    summary = run_atlas(cfg, run=None, log=lambda m: None)
    assert summary["html"] == f"{out}/html/index.html"
    import pyarrow.fs as pafs

    from dgn.data.uri import resolve

    fs, path = resolve(out)
    names = {i.path.removeprefix(path + "/") for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))}
    assert {"manifest.json", "html/index.html", "html/fc8/epoch=0002/unit-0001.png"} <= names
    again = run_atlas(cfg, run=None, log=lambda m: None)
    assert again["items_done"] == 0
