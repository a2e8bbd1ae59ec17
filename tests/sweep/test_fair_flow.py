"""``flows/sweep_layers.py --fair --dry-run`` end to end: the third classifier, every seed, both verdicts, FIFO (no
MLflow here: test_sweep_flow.py covers the sweep's tracking)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fair_dry_run_trains_a_comparator_runs_every_seed_and_writes_both_verdicts(tmp_path):
    out = tmp_path / "fair"
    r = subprocess.run([sys.executable, str(ROOT / "flows/sweep_layers.py"), "--dry-run", "--fair", "--no-tracking",
                        "--storage", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "by score (mean over 2 seeds)" in r.stderr + r.stdout
    assert "by score without X (mean over 2 seeds)" in r.stderr + r.stdout
    assert list((out / "comparator" / "classifier").glob("epoch=*.pt"))  # the third classifier
    result = json.loads((out / "sweep_result.json").read_text())
    seeds = {s["layer"]: s for s in result["seed_summary"]}
    assert set(seeds) == {"conv3", "fc6"} and all(s["n_seeds"] == 2 for s in seeds.values())
    assert abs(seeds["conv3"]["g_params"] / seeds["fc6"]["g_params"] - 1) < 0.02
    table = (out / "sweep_table.md").read_text()
    assert table.count("| TERMINATED |") == 4 and "stopped_early" in table and "| True |" not in table  # FIFO
    assert "Per layer over 2 G seeds" in table
