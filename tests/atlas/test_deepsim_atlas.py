"""The published-prior command end to end, with random weights in the published layouts (no real weights).

    python flows/atlas.py --generator deepsim:fc6=G.pt --bounds fc6.txt --target torchvision:alexnet \\
        --target-weights alexnet.pt --layers fc8 --units 643,624,304

through the same actor pool, manifest, MLflow logging and HTML atlas as a trained run: a 227-px crop of G's 256 px,
ImageNet class names beside the fc8 units.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dgn.nets.deepsim import build_deepsim, published_state
from tests.faults.helpers import one_line_error, run_main
from tests.support.mlflow_store import finished_runs, seed_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def published_files(tmp_path_factory):
    import torchvision

    d = tmp_path_factory.mktemp("published")
    torch.manual_seed(0)
    torch.save(published_state(build_deepsim("fc6", 256), "fc6"), d / "upconvGAN_fc6.pt")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), d / "alexnet.pt")
    (d / "fc6.txt").write_text("12 " * 4096)  # the reference's act_range/3x format
    return d


def _flow(*args, env=None, cwd=None, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "flows" / "atlas.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})})


def test_deepsim_atlas_end_to_end(published_files, tmp_path, mlflow_template):
    d = published_files
    seed_store(mlflow_template, tmp_path / "home" / "mlflow.db")  # an empty store, already migrated
    out = tmp_path / "atlas"
    r = _flow("--generator", f"deepsim:fc6={d / 'upconvGAN_fc6.pt'}", "--bounds", str(d / "fc6.txt"),
              "--target", "torchvision:alexnet", "--target-weights", str(d / "alexnet.pt"), "--layers", "fc8",
              "--units", "643,624,304", "--steps", "2", "--actors", "1", "--out", str(out),
              env={"DGN_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mlflow: logging into run" in r.stdout and '"units_rendered": 3' in r.stdout
    assert (out / "manifest.json").is_file() and finished_runs(tmp_path / "home" / "mlflow.db") == 1
    assert (out / "bounds-fc6.txt").read_text().split()[:2] == ["12", "12"]
    epoch = out / "html" / "fc8" / "epoch=0000"
    assert Image.open(epoch / "unit-0643.png").size == (227, 227)  # G's 256 px, centre-cropped for the AlexNet
    rows = list(csv.DictReader(open(epoch / "table.csv")))
    assert [(x["unit"], x["class_name"]) for x in rows] == [("fc8:304", "leaf beetle"), ("fc8:624", "library"),
                                                            ("fc8:643", "mask")]
    assert "mask" in (out / "html" / "fc8" / "index.html").read_text()
    # a rerun skips the finished items
    r2 = _flow("--generator", f"deepsim:fc6={d / 'upconvGAN_fc6.pt'}", "--bounds", str(d / "fc6.txt"),
               "--target", "torchvision:alexnet", "--target-weights", str(d / "alexnet.pt"), "--layers", "fc8",
               "--units", "643,624,304", "--steps", "2", "--actors", "1", "--out", str(out), "--no-tracking",
               cwd=tmp_path)
    assert r2.returncode == 0 and '"items_done": 0' in r2.stdout, r2.stderr[-2000:]


def test_deepsim_bad_input_is_one_line(published_files, tmp_path, capsys):
    d = published_files
    base = ["--target", "torchvision:alexnet", "--target-weights", str(d / "alexnet.pt"), "--no-tracking",
            "--out", str(tmp_path / "a")]
    for args, msg in ((["--generator", f"deepsim:fc6={d / 'nope.pt'}", "--bounds", str(d / "fc6.txt")],
                       "error: generator weights"),
                      (["--generator", f"deepsim:fc6={d / 'upconvGAN_fc6.pt'}"], "error: a deepsim generator needs "
                                                                                  "code bounds"),
                      (["--generator", f"deepsim:fc8={d / 'upconvGAN_fc6.pt'}", "--bounds", str(d / "fc6.txt")],
                       "error: weights file"),  # an fc6 file is not an fc8 generator
                      (["--generator", f"deepsim:fc6={d / 'upconvGAN_fc6.pt'}", "--bounds", str(d / "alexnet.pt")],
                       "error: bounds file"),
                      (["--generator", "deepsim:conv3=x.pt", "--bounds", str(d / "fc6.txt")],
                       "error: unknown DeePSiM generator 'conv3'")):
        code, _, err = run_main(capsys, "atlas", *base, *args)  # in this process: argparse to exit code
        assert one_line_error(code, err).startswith(msg), (args, err)
