"""Realism and recognisability at N ≥ 200 on finished runs: the headline figures, with floor, interval and spread.

    python bench/realism_headline.py --runs runs/held-out/runs/glyphs-seed1,runs/held-out/runs/glyphs-seed2
    python bench/realism_headline.py --runs-under runs/held-out/runs           # every run in that folder
    python bench/realism_headline.py --dry-run                                 # a tiny run, 2 AM steps

The job itself scores 10 units × 5 starts = 50 DGN-AM images (its time budget). Here each finished run's
last G, E and judge render every fc8 unit from ``--starts`` starts (20: 200 images for 10 classes) with the
run's own AM settings, and the judge scores them: recognisability with a 95% bootstrap interval over
**units** (a unit's starts are not independent), and realism — Fréchet distance, precision and recall
(Kynkäänniemi 2019, k = 3) in judge features — against as many real val images, beside the real-vs-real
floor of a disjoint real set of that N (docs/metrics.md). A run's row is kept in the run's storage
(``realism_headline-s{starts}-a{am steps}.json``) and read back, not rescored, when asked again with the
same settings — the scoring is seeded, so rescoring gives the same row. Runs are grouped by dataset (the run folder's
name up to ``-seed``); a group's row gives the mean ± std across its runs (seeds) and says N.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
from common import load_run, parse_args, tiny_run

from dgn.am import AMConfig
from dgn.metrics import bootstrap_interval, seed_spread
from dgn.metrics.judge import judge_predictions
from dgn.quality import ClassUnitEval
from dgn.storage import RunLayout, exists, join, read_text, write_text

KEYS = ("n", "fd", "floor_fd", "precision", "floor_precision", "recall", "floor_recall")
HEADER = "| dataset | runs | images N | recognisability [95% CI over units] | FD (floor) | precision (floor) | recall (floor) |"


def _am_config(run: str) -> AMConfig:
    """The run's own AM settings (its quality.json config), else the product default."""
    layout = RunLayout(run)
    if exists(layout.quality):
        am = json.loads(read_text(layout.quality)).get("config", {}).get("am")
        if am:
            return AMConfig(**am)
    return AMConfig()


def score(run: str, *, starts: int, am_over: dict) -> dict:
    """One run's row; read from its storage when this run was scored with these settings before."""
    kept = join(run, f"realism_headline-s{starts}-a{am_over.get('steps', 0)}.json")
    if exists(kept):
        return {**json.loads(read_text(kept)), "run": run}
    row = _score(run, starts=starts, am_over=am_over)
    write_text(kept, json.dumps(row, indent=1))
    return row


def _score(run: str, *, starts: int, am_over: dict) -> dict:
    r = load_run(run)
    k = min(r.encoder.config.num_classes, int(r.val_labels.max()) + 1)
    am = AMConfig(**{**_am_config(run).__dict__, **am_over})
    ev = ClassUnitEval(encoder=r.encoder, judge=r.judge, val=r.val, val_labels=r.val_labels, num_classes=k, am=am,
                       starts=starts)
    layer = Path(r.generator_uri).parent.name
    q, images = ev(r.generator, layer, r.generator_ck["code_stats"], reconstruction=False)
    labels, _ = judge_predictions(r.judge, images)
    hits = (labels == ev.intended).float()
    lo, hi = bootstrap_interval(hits.numpy(), groups=(torch.arange(len(hits)) % k).numpy())
    return {"run": run, "recognisability": hits.mean().item(), "recog_lo": lo, "recog_hi": hi,
            **{k_: q[f"am_realism_{k_}"] for k_ in KEYS}, "seconds": q["am_seconds"]}


def cell(rows: list[dict], key: str, floor: str | None = None, digits: int = 2) -> str:
    m, s = seed_spread([r[key] for r in rows])
    txt = f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if len(rows) > 1 else "")
    if floor:
        txt += f" ({seed_spread([r[floor] for r in rows])[0]:.{digits}f})"
    return txt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="", help="comma-separated finished run storages")
    p.add_argument("--runs-under", default="", help="a folder whose sub-folders are finished runs")
    p.add_argument("--starts", type=int, default=20, help="AM starts per fc8 unit (20 × 10 classes = 200 images)")
    p.add_argument("--am-steps", type=int, default=0, help="AM steps (0: the run's own)")
    p.add_argument("--json", default="", help="write the rows here too")
    a = parse_args(p, argv, runs=lambda: tiny_run("dgn-bench-realism-"), starts=4, am_steps=2)
    runs = [x for x in a.runs.split(",") if x]
    if a.runs_under:
        runs += sorted(str(d) for d in Path(a.runs_under).iterdir() if (d / "quality.json").is_file())
    if not runs:
        print("error: give --runs or --runs-under (finished runs of flows/train.py)", file=sys.stderr)
        return 2
    am_over = {"steps": a.am_steps} if a.am_steps else {}
    rows = []
    for run in runs:
        row = score(run, starts=a.starts, am_over=am_over)
        rows.append(row)
        print(f"{run}: recognisability {row['recognisability']:.2f} [{row['recog_lo']:.2f}, {row['recog_hi']:.2f}], "
              f"FD {row['fd']:.1f} (floor {row['floor_fd']:.1f}, N={row['n']:.0f}), precision {row['precision']:.2f} "
              f"(floor {row['floor_precision']:.2f}), recall {row['recall']:.2f} (floor {row['floor_recall']:.2f}), "
              f"{row['seconds']:.0f}s", flush=True)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(re.sub(r"-seed\d+$", "", Path(row["run"]).name), []).append(row)
    print(f"\n± is the std across a dataset's runs (seeds); the interval is the bootstrap over units of each run, "
          f"averaged; floors are real-vs-real at the same N\n{HEADER}\n|---|---|---|---|---|---|---|")
    for name, g in groups.items():
        ci = f"[{sum(r['recog_lo'] for r in g) / len(g):.2f}, {sum(r['recog_hi'] for r in g) / len(g):.2f}]"
        print(f"| {name} | {len(g)} | {g[0]['n']:.0f} | {cell(g, 'recognisability')} {ci} | "
              f"{cell(g, 'fd', 'floor_fd', 1)} | {cell(g, 'precision', 'floor_precision')} | "
              f"{cell(g, 'recall', 'floor_recall')} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
