"""bench/deepsim_throughput.py --dry-run: the 227/256-px DeePSiM path runs and prints its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_deepsim_bench_dry_run():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "deepsim_throughput.py"), "--dry-run"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (row,) = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["batch"] == 2 and row["steps"] == 2 and row["units_per_s"] > 0 and row["peak_rss_mib"] > 0
    assert row["matmul_gflops"] > 0 and "units/s" in r.stdout
