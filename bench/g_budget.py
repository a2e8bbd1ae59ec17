"""What G's step budget buys: every G checkpoint of finished runs, scored as the job scores its last one.

    python bench/g_budget.py --runs runs/dev-g2000                 # a run trained with many G checkpoints
    python bench/g_budget.py --runs A,B --starts 5                 # several runs (seeds): mean ± std per step
    python bench/g_budget.py --dry-run                             # a tiny run, 2 AM steps

The job trains G for ``gan_steps`` at a constant learning rate and scores only the last checkpoint. Train one
run with a longer budget and more checkpoints (``gan_steps: 2000``, ``gan_checkpoints: 8`` in a --config) and
this prints, per checkpoint, the judge's accuracy on G(E(x)) of the val images, fc8 recognisability (every
class unit × ``--starts``) and the median activation ratio, with the run's own AM settings: whether the
default budget stops G while these still climb. Tune it on the development setup only (docs/quality.md).
Runs at equal checkpoint steps are pooled: mean ± std across runs (seeds), N stated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import _generator_layers, load_run, parse_args, tiny_run
from realism_headline import _am_config

from dgn.metrics import seed_spread
from dgn.quality import ClassUnitEval
from dgn.storage import RunLayout
from dgn.train import load_generator

KEYS = (("recon_judge_acc", "judge on G(E(x))"), ("am_recognisability", "fc8 recognisability"),
        ("am_median_activation_ratio", "median act. ratio"))
HEADER = "| G step | runs N | " + " | ".join(h for _, h in KEYS) + " |"


def score_checkpoints(run: str, *, starts: int, am_over: dict, log=print) -> list[dict]:
    r = load_run(run, generator=False)
    k = min(r.encoder.config.num_classes, int(r.val_labels.max()) + 1)
    am = _am_config(run)
    am = type(am)(**{**am.__dict__, **am_over})
    ev = ClassUnitEval(encoder=r.encoder, judge=r.judge, val=r.val, val_labels=r.val_labels, num_classes=k, am=am,
                       starts=starts)
    layout = RunLayout(run)
    layer = _generator_layers(layout)[0]  # fc6 if trained, as the job and dgn.atlas pick
    rows = []
    for uri in layout.checkpoints(layout.generator_dir(layer)):
        g, ck = load_generator(uri)
        q, _ = ev(g, layer, ck["code_stats"])
        rows.append({"run": run, "step": int(ck["step"]), **{key: q[key] for key, _ in KEYS}})
        log(f"{run} step {rows[-1]['step']}: " + ", ".join(f"{h} {q[key]:.2f}" for key, h in KEYS))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="", help="comma-separated finished run storages")
    p.add_argument("--starts", type=int, default=5, help="AM starts per fc8 unit (the job's 5)")
    p.add_argument("--am-steps", type=int, default=0, help="AM steps (0: the run's own)")
    p.add_argument("--json", default="", help="write the rows here too")
    a = parse_args(p, argv, runs=lambda: tiny_run("dgn-bench-gbudget-"), starts=1, am_steps=2)
    runs = [x for x in a.runs.split(",") if x]
    if not runs:
        print("error: give --runs (finished runs of flows/train.py)", file=sys.stderr)
        return 2
    rows = [row for run in runs for row in score_checkpoints(run, starts=a.starts,
                                                             am_over={"steps": a.am_steps} if a.am_steps else {})]
    steps = sorted({r["step"] for r in rows})
    print(f"\n± is the std across runs (seeds) at that step\n{HEADER}\n|---|---|" + "---|" * len(KEYS))
    for s in steps:
        at = [r for r in rows if r["step"] == s]
        cells = []
        for key, _ in KEYS:
            m, sd = seed_spread([r[key] for r in at])
            cells.append(f"{m:.2f}" + (f" ± {sd:.2f}" if len(at) > 1 else ""))
        print(f"| {s} | {len(at)} | " + " | ".join(cells) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
