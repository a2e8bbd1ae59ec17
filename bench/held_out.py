"""The held-out protocol: the unchanged default job on datasets and seeds no tuning decision saw, one table.

    python bench/held_out.py                                  # every held-out kind × seeds 1, 2, 3 (≈ 6 × 7 min)
    python bench/held_out.py --kinds glyphs --seeds 1         # one cell
    python bench/held_out.py --dry-run                        # the same path, tiny (tests)

Tuning happens on the development setup only: the embedded ``shapes`` kind (dgn.data.synthetic.DEVELOPMENT),
training seed 0, its fc8 units. This bench writes each held-out kind (dgn.data.synthetic.HELD_OUT: other
shape families, random colours and backgrounds) with its own data seed (7, never a development seed) and
size (6000 train / 1000 val, not the default's 8000), then runs ``python flows/train.py --data D --seed S``
exactly as a user would — no flag but the data, the storage and the seed — for seeds 1, 2, 3, and reads
each run's quality.json. Each row: mean ± std across seeds (N seeds); recognisability is over 10 class
units × 5 starts per run, realism at the job's N with its real-vs-real floor. Results also go to
``--out``/held_out.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dgn.data.synthetic import HELD_OUT, write_synthetic
from dgn.metrics import seed_spread
from dgn.timing import matmul_probe

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [  # (quality.json key, header)
    ("classifier_val_acc", "E val acc"),
    ("judge_val_acc", "judge val acc"),
    ("recon_encoder_acc", "E on G(E(x))"),
    ("recon_judge_acc", "judge on G(E(x))"),
    ("am_recognisability", "fc8 recognisability"),
    ("am_median_activation_ratio", "median act. ratio"),
    ("am_realism_fd", "realism FD"),
    ("am_realism_floor_fd", "FD floor"),
    ("wall_seconds", "wall s"),
]
DATA_SEED = 7
DRY = dict(n_train=200, n_val=100)


def run_one(kind: str, seed: int, out: Path, *, dry: bool, log) -> dict:
    data = out / "data" / kind
    sizes = DRY if dry else dict(n_train=6000, n_val=1000)
    if not (data / "val").is_dir():
        write_synthetic(str(data), kind=kind, seed=DATA_SEED, image_size=64, **sizes)
    storage = out / "runs" / f"{kind}-seed{seed}"
    cmd = [sys.executable, str(ROOT / "flows" / "train.py"), "--data", str(data), "--storage", str(storage),
           "--seed", str(seed)] + (["--dry-run"] if dry else [])
    env = {**os.environ, "DGN_HOME": os.environ.get("DGN_HOME", str(out / "home"))}
    done = storage / "held_out_wall.txt"  # a cell finished by an earlier invocation is read, not rerun
    t = time.time()
    if done.is_file() and (storage / "quality.json").is_file():
        r, wall = subprocess.CompletedProcess(cmd, 0), float(done.read_text())
        log(f"{kind} seed {seed}: finished earlier; read from {storage}")
    else:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.time() - t
        if r.returncode == 0:
            done.write_text(f"{wall:.1f}\n")
    if r.returncode != 0:
        line = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        log(f"{kind} seed {seed}: the job stopped after {wall:.0f}s: {line}")
        return {"kind": kind, "seed": seed, "failed": line, "wall_seconds": wall}
    q = json.loads((storage / "quality.json").read_text())
    row = {"kind": kind, "seed": seed, **{k: q.get(k, float("nan")) for k, _ in COLUMNS}, "wall_seconds": wall,
           "am_realism_n": q.get("am_realism_n")}
    log(f"{kind} seed {seed}: " + ", ".join(f"{h} {row[k]:.3g}" for k, h in COLUMNS))
    return row


def table(rows: list[dict], probe: float) -> str:
    lines = [f"held-out protocol: the unchanged default job (flows/train.py --data D --seed S); mean ± std across "
             f"seeds; machine's 2048² matmul probe {probe:.0f} GFLOP/s",
             "| dataset | N seeds | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        ok = [r for r in rows if r["kind"] == kind and "failed" not in r]
        failed = [r for r in rows if r["kind"] == kind and "failed" in r]
        cells = []
        for k, _ in COLUMNS:
            m, s = seed_spread([r[k] for r in ok]) if ok else (float("nan"), float("nan"))
            cells.append(f"{m:.3g}" if len(ok) < 2 else f"{m:.3g} ± {s:.2g}")
        note = f" ({len(failed)} stopped: {failed[0]['failed'][:80]})" if failed else ""
        lines.append(f"| {kind}{note} | {len(ok)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default=",".join(HELD_OUT), help=f"held-out synthetic kinds (default {','.join(HELD_OUT)})")
    p.add_argument("--seeds", default="1,2,3", help="training seeds (0 is the development seed)")
    p.add_argument("--out", help="where datasets, runs and the table go (default runs/held-out; with --dry-run "
                   "runs/held-out-dry-run, whose tiny datasets and runs a real run must not reuse)")
    p.add_argument("--dry-run", action="store_true", help="tiny datasets and the job's --dry-run: the same path")
    a = p.parse_args(argv)
    kinds = [k for k in a.kinds.split(",") if k]
    seeds = [int(s) for s in a.seeds.split(",") if s]
    if a.dry_run:
        kinds, seeds = kinds[:1], seeds[:1]
    bad = [k for k in kinds if k not in HELD_OUT]
    if bad:
        print(f"error: {bad} are not held-out kinds; valid: {', '.join(HELD_OUT)}", file=sys.stderr)
        return 2
    if 0 in seeds:
        print("error: seed 0 is the development seed; held-out figures use other seeds", file=sys.stderr)
        return 2
    out = Path(a.out or ("runs/held-out-dry-run" if a.dry_run else "runs/held-out")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    probe = matmul_probe()
    rows = []
    for kind in kinds:
        for seed in seeds:
            rows.append(run_one(kind, seed, out, dry=a.dry_run, log=lambda m: print(m, flush=True)))
            (out / "held_out.json").write_text(json.dumps({"probe_gflops": probe, "rows": rows}, indent=1))
    text = table(rows, probe)
    (out / "held_out.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
