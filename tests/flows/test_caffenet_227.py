"""The 227-px configuration end to end on CPU: ``flows/train.py --preset paper`` with the ``caffenet`` E (227 px,
fc 4096), the paper G (the full 9-layer stack to 256 px, centre-cropped to 227) and the paper D, on a handful of
227-px images, a few steps per stage (classifier → judge → G → quality; the job's own atlas stage off), then
``flows/atlas.py`` on its checkpoints (an fc8 and a conv5 unit) into the same MLflow run. Random-init weights; nothing is downloaded.

Both flows join one private ``ray start --head`` cluster (RAY_ADDRESS), so Ray starts once; MLflow is the default
local store under the test's private DGN_HOME. The networks are the full-scale ones (E 61 M parameters, G 56 M), so
each checkpoint is ~0.7 GB: the budgets are 2 steps and 1 checkpoint per stage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dgn.data import write_synthetic
from tests.train.ray_head import RAY_ENV, ray_head

ROOT = Path(__file__).resolve().parents[2]
SIZE = 227
CONFIG = f"""\
classifier: caffenet
image_size: {SIZE}
batch_size: 2
classifier_steps: 2
classifier_checkpoints: 1
judge_steps: 2
judge_checkpoints: 1
gan_steps: 2
gan_checkpoints: 1
am_starts: 1
learned_factor: 0.0
atlas_units: none
am:
  steps: 2
"""


@pytest.fixture(scope="module")
def ray_address():
    with ray_head(2, dashboard=False) as (address, _):
        yield address


def _flow(name: str, *args: str, address: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flows" / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=900, cwd=ROOT, env={**os.environ, **RAY_ENV, "RAY_ADDRESS": address})


def test_caffenet_paper_g_227_px_end_to_end(tmp_path, ray_address):
    data, storage, cfg = tmp_path / "data", tmp_path / "run", tmp_path / "caffenet-227.yaml"
    meta = write_synthetic(str(data), n_train=10, n_val=10, image_size=SIZE)  # the contract's minimum: 1 per class
    assert meta.counts == {"train": 10, "val": 10}
    cfg.write_text(CONFIG)

    r = _flow("train", "--preset", "paper", "--config", str(cfg), "--data", str(data), "--storage", str(storage),
              "--workers", "1", "--run-name", "c227", address=ray_address)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout
    # the full paper G, not the cut one a 64-px run builds: 9 (de)conv layers to 256 px, centre-cropped to 227
    assert ("G for code (4096,): 3 FC (4096, 4096, 4096) → 256×4×4 → 9 (de)conv layers (deconv5, conv5_1, deconv4, "
            "conv4_1, deconv3, conv3_1, deconv2, deconv1, deconv0) → 3×256×256, centre crop 227") in out, out[-3000:]
    assert "CUT" not in out
    assert "D (paper) at 227 px: the reference's image branch (unpadded" in out  # 227 → 56 → 52 → 25 → 23 → 11
    for f in ("classifier/epoch=0001.pt", "judge/judge.pt", "generator/fc6/epoch=0001.pt", "quality.json",
              "montage-dgn-am-fc8.png", "montage-reconstructions.png"):
        assert (storage / f).is_file(), f
    e = torch.load(storage / "classifier/epoch=0001.pt", mmap=True, weights_only=True)  # 0.7 GB: mapped, not read
    assert (e["config"]["image_size"], tuple(e["config"]["channels"]), tuple(e["config"]["fc"]), e["config"]["lrn"]) \
        == (SIZE, (96, 256, 384, 384, 256), (4096, 4096), True)
    g = torch.load(storage / "generator/fc6/epoch=0001.pt", mmap=True, weights_only=True)
    assert g["g_config"]["image_size"] == SIZE and g["step"] == 2 and g["encoder_config"]["image_size"] == SIZE

    q = json.loads((storage / "quality.json").read_text())
    c = q["config"]
    assert (c["classifier"], c["image_size"], c["preset"], c["gan"]["generator"], c["gan"]["discriminator"]) == \
        ("caffenet", SIZE, "paper", "paper", "paper")
    assert q["am_images"] == 10 and 0.0 <= q["am_recognisability"] <= 1.0 and 0.0 <= q["recon_judge_acc"] <= 1.0
    assert q["am_median_activation_ratio"] == q["am_median_activation_ratio"]  # a number, not NaN
    assert q["am_realism_n"] == 5 and q["am_realism_fd"] >= 0  # 10 AM images against 5 of the 10 real ones
    # montage: one 227-px column (1 start) of the 10 class units, padding 2
    assert Image.open(storage / "montage-dgn-am-fc8.png").size == (SIZE + 4, 10 * (SIZE + 2) + 2)

    assert not (storage / "atlas").exists()

    # the atlas flow on the run's checkpoints, into the same MLflow run: a class unit and a conv unit
    atlas = tmp_path / "atlas"
    r = _flow("atlas", "--storage", str(storage), "--out", str(atlas), "--layers", "fc8,conv5", "--units",
              "fc8=0;conv5=0", "--steps", "2", "--actors", "1", "--run-name", "c227", address=ray_address)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    summary = json.loads(r.stdout[r.stdout.index("{"):r.stdout.rindex("}") + 1])
    assert summary["items_done"] == 2 and summary["units_rendered"] == 2
    items = json.loads((atlas / "manifest.json").read_text())["items"]
    assert sorted((i["layer"], i["units"]) for i in items.values()) == [("conv5", [0]), ("fc8", [0])]
    for layer in ("fc8", "conv5"):
        assert Image.open(atlas / f"html/{layer}/epoch=0001/unit-0000.png").size == (SIZE, SIZE)
    assert (atlas / "html/index.html").is_file() and "conv5" in (atlas / "html/index.html").read_text()

    from mlflow.tracking import MlflowClient

    from dgn.tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("dgn-train").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "c227"
    assert f"logging into run {run.info.run_id}" in r.stdout
    for key in ("classifier_val_acc", "judge_val_acc", "generator_image", "generator_d_acc",
                "quality_am_recognisability", "atlas_fc8_dead_units", "atlas_conv5_dead_units"):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"quality.json", "montage-dgn-am-fc8.png", "atlas"} <= artifacts
    shutil.rmtree(storage)  # 1.4 GB of checkpoints; pytest keeps the last runs' tmp folders


def test_caffenet_at_another_image_size_is_one_line(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("classifier: caffenet\n")  # image_size left at the embedded 64
    r = subprocess.run([sys.executable, str(ROOT / "flows" / "train.py"), "--dry-run", "--config", str(cfg),
                        "--storage", str(tmp_path / "run")], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, **RAY_ENV})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: classifier 'caffenet' is a 227-px network (its fc6 takes a 6×6 pool5) but "
                                "image_size is 64: set image_size: 227 in the config"), r.stderr
    assert not (tmp_path / "run").exists()
