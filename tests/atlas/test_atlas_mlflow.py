"""What an atlas puts in a real `mlflow server` on 127.0.0.1, and what the MLflow UI shows in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgn.atlas import AtlasConfig, run_atlas
from dgn.atlas.grid import FRAME


@pytest.fixture(scope="module")
def logged(tiny_run, ray_cluster, mlflow_url, tmp_path_factory):
    """An atlas of fc8 units 0-3 at both epochs, logged into its own run on the server."""
    from dgn.tracking.atlas import open_atlas_run

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_url)
        mp.setenv("DGN_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = AtlasConfig(storage=tiny_run, out=str(tmp_path_factory.mktemp("atlas")), layers=("fc8",), units="0-3",
                          actors=1, am={"steps": 3})
        with open_atlas_run(storage=tiny_run) as run:
            summary = run_atlas(cfg, run=run, log=lambda m: None)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(mlflow_url)
        yield {"cfg": cfg, "summary": summary, "run": run, "client": client, "url": mlflow_url, "mp": mp}


def _paths(client, run_id, path=None):
    out = []
    for a in client.list_artifacts(run_id, path):
        out += _paths(client, run_id, a.path) if a.is_dir else [a.path]
    return out


def test_server_holds_grids_pngs_tables_plots_and_html(logged):
    client, run_id = logged["client"], logged["run"].run_id
    paths = set(_paths(client, run_id))
    # one stepped grid per epoch under the key atlas-fc8
    steps = sorted(int(p.split("+step+")[1].split("+")[0]) for p in paths
                   if p.startswith("images/atlas-fc8+step+") and p.endswith(".png") and "compressed" not in p)
    assert steps == [1, 2]
    for e in (1, 2):
        d = f"atlas/fc8/epoch={e:04d}"
        assert {f"{d}/unit-{k:04d}.png" for k in range(4)} | {f"{d}/grid.png", f"{d}/table.json"} <= paths
    assert {"atlas/plots/activation_ratio.png", "atlas/plots/recognisability.png", "atlas/index.html",
            "atlas/fc8/index.html", "atlas/fc8/unit-0002.html", "atlas/summary.json"} <= paths
    local = client.download_artifacts(run_id, "atlas/fc8/epoch=0002/table.json", str(Path(logged["cfg"].out, "dl")))
    table = json.loads(Path(local).read_text())
    assert table["columns"][:6] == ["unit", "activation", "best_real", "activation_ratio", "judge_label", "judge_prob"]
    assert [r[0] for r in table["data"]] == ["fc8:0", "fc8:1", "fc8:2", "fc8:3"]
    hist = client.get_metric_history(run_id, "atlas_fc8_median_ratio")
    assert sorted(m.step for m in hist) == [1, 2]


def test_rerun_into_the_same_run_logs_nothing_twice(logged, monkeypatch):
    from dgn.tracking.atlas import open_atlas_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["url"])

    client, run_id = logged["client"], logged["run"].run_id
    before = [p for p in _paths(client, run_id) if p.startswith("images/")]
    with open_atlas_run(storage=logged["cfg"].storage, run_id=run_id) as run:
        again = run_atlas(logged["cfg"], run=run, log=lambda m: None)
    assert again["items_done"] == 0
    assert [p for p in _paths(client, run_id) if p.startswith("images/")] == before
    assert len(client.get_metric_history(run_id, "atlas_fc8_median_ratio")) == 2


def test_mlflow_ui_shows_the_atlas_grid_in_headless_chromium(logged, tmp_path):
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed (apt-get install chromium; see .ci/run)"
    run = logged["client"].get_run(logged["run"].run_id)
    url = (f"{logged['url']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
           "/artifacts/atlas/fc8/epoch=0002/grid.png")
    shot = tmp_path / "ui.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,1100",
           "--virtual-time-budget=30000", "--hide-scrollbars", url]
    subprocess.run(cmd, capture_output=True, timeout=150)
    assert shot.is_file(), "chromium wrote no screenshot"
    page = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    grid = np.asarray(Image.open(Path(logged["summary"]["html"]).parent / "fc8" / "epoch=0002" / "grid.png")
                      .convert("RGB")).astype(int)
    # the grid's frame colour, which nothing else in MLflow's UI uses, fills a box of the grid's size
    ys, xs = np.nonzero((np.abs(page - FRAME).sum(-1) <= 6))
    assert len(ys) > 0.3 * (np.abs(grid - FRAME).sum(-1) <= 6).sum(), "the atlas grid is not on the page"
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert abs(h - grid.shape[0]) <= 4 and abs(w - grid.shape[1]) <= 4, (h, w, grid.shape)
    # and the page shows the grid's pixels there: the rendered tiles match the file
    y0, x0 = ys.min(), xs.min()
    shown = page[y0:y0 + grid.shape[0], x0:x0 + grid.shape[1]]
    assert shown.shape == grid.shape and np.abs(shown - grid).mean() < 12
