"""Every bench runs end to end in its --dry-run mode and prints its table (the STYLE's pytorch/examples rule).

The benches are found by globbing bench/, so a new bench without --dry-run, or without a row in HEADERS,
fails here. Each runs as a user runs it (``python bench/X.py --dry-run``) in a fresh working directory, with
DGN_HOME and MLflow pointed into it. The benches that use Ray join one private ``ray start --head`` cluster
(RAY_ADDRESS, as a user's `ray job submit` does) instead of each starting its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mlflow_store import seed_store
from tests.train.ray_head import RAY_ENV, ray_head

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"
HELPERS = {"common.py"}  # shared by the benches; not a bench
# a string of each bench's table header (or its figures' first line), which only a finished run prints
HEADERS = {
    "am_settings.py": "| variant | recognisability | units recognised from ≥1 start |",
    "am_throughput.py": "batched / one at a time",
    "atlas_throughput.py": "| way | units/s |",
    "caffenet_227.py": "| step | batch | GFLOP/step | matmul probe GFLOP/s |",
    "code_probe.py": "| layer | code size | dead units |",
    "compare_methods.py": "| method | median activation ratio fc8 |",
    "cue_conflict.py": "| net | as trained |",
    "data_memory.py": "| images | input | peak RSS MB |",
    "deepsim_throughput.py": "units/s at 200 steps",
    "g_budget.py": "| G step | runs N | judge on G(E(x)) |",
    "held_out.py": "| dataset | N seeds |",
    "quality.py": "| am_recognisability |",
    "quality_study.py": "| variant | recon_encoder_acc | recon_judge_acc | am_recognisability |",
    "realism_headline.py": "| dataset | runs | images N | recognisability",
    "ray_overhead.py": "workers  threads/worker  plain s/epoch  ray s/epoch  ray/plain",
    "s3_read.py": "| object MB | stream s | file s (read_bytes) | stream / file |",
    "scaling_model.py": "== check on this CPU",
}
BENCHES = sorted(p.name for p in BENCH.glob("*.py") if p.name not in HELPERS)


@pytest.fixture(scope="module")
def ray_address():
    with ray_head(2, dashboard=False) as (address, _):
        yield address


@pytest.mark.parametrize("name", BENCHES)
def test_bench_dry_run(name, tmp_path, mlflow_template, ray_address):
    assert name in HEADERS, f"bench/{name} has no header string in HEADERS: add the table line its --dry-run prints"
    env = {**os.environ, **RAY_ENV, "DGN_HOME": str(tmp_path / "dgn-home"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "RAY_ADDRESS": ray_address}
    seed_store(mlflow_template, tmp_path / "mlflow.db")  # migrated once per session, not in every bench
    t = time.time()
    r = subprocess.run([sys.executable, str(BENCH / name), "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"bench/{name} --dry-run exited {r.returncode} after {time.time() - t:.0f}s:\n{out[-3000:]}"
    assert HEADERS[name] in r.stdout, f"bench/{name} --dry-run did not print {HEADERS[name]!r}:\n{out[-3000:]}"
