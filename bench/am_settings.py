"""DGN-AM's own settings on one trained run: lr relative to the code's bounds, initialisation, steps, decay.

    python flows/train.py --storage runs/default                    # once: a trained run
    python bench/am_settings.py --run runs/default                  # every variant, 5 starts per fc8 unit
    python bench/am_settings.py --run runs/default --variants baseline,lr-1 --starts 10
    python bench/am_settings.py --dry-run                           # a tiny run, 3 variants, 1 start, 2 steps

G, E and the judge stay fixed, so each row isolates one AM setting against the product's defaults
(``AMConfig()``). Each variant renders every fc8 unit from ``--starts`` starts (a start is a seed) and is
scored by the job's own class-unit evaluation (dgn.quality.ClassUnitEval): recognisability by the
independent judge (share of unit × start images it assigns to the unit's class) with its spread over starts,
the share of units recognised from at least one start, the median activation ratio to the best real val
image, realism (FD in judge features, beside the real-vs-real floor at the same N) and the wall time.
"best-of-starts" picks, per unit, the start whose image activates the unit most (what an atlas shows when it
renders several starts).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import choose, load_run, parse_args, realism_cell, tiny_run

from dgn.am import AMConfig, as_objective
from dgn.metrics import fmt_interval, judge_predictions
from dgn.quality import ClassUnitEval

VARIANTS = {
    "baseline": {},
    "lr-0.05": {"lr": 0.05},
    "lr-0.1": {"lr": 0.1},
    "lr-0.25": {"lr": 0.25},  # the default before 2026-12-03
    "lr-0.5": {"lr": 0.5},
    "lr-1": {"lr": 1.0},
    "lr-8 (paper)": {"lr": 8.0},
    "init-zeros": {"init": "zeros"},
    "init-mean": {"init": "mean"},
    "init-randn (paper)": {"init": "randn"},
    "noise-0.5": {"noise_std": 0.5},
    "clip-start": {"clip_start": True},  # clip the start code to [0, upper] before the first step
    "keep-best": {"keep_best": True},  # the best step's image, not the last
    "steps-100": {"steps": 100},
    "steps-400": {"steps": 400},
    "no-decay": {"decay": 0.0},
    "no-clip": {"clip": False},
    "jitter-2": {"jitter": 2},
    "jitter-4": {"jitter": 4},
    "jitter-4-lr-0.05": {"jitter": 4, "lr": 0.05},
    "lr-0.05-steps-400": {"lr": 0.05, "steps": 400},
    "bounds-2sigma": {"_sigmas": 2.0},  # clip each code unit to [0, mean + 2σ] instead of 3σ
    "bounds-1sigma": {"_sigmas": 1.0},
    "lr-0.5-bounds-2sigma": {"lr": 0.5, "_sigmas": 2.0},
    "lr-0.5-bounds-2sigma-noise-0.5": {"lr": 0.5, "_sigmas": 2.0, "noise_std": 0.5},
    "decay-0.03": {"decay": 0.03},
    "decay-0.1": {"decay": 0.1},
}
HEADER = ("| variant | recognisability | units recognised from ≥1 start | best-of-starts | median ratio | "
          "realism FD | s |")


def run_variant(ev: ClassUnitEval, generator, layer: str, code_stats: dict, over: dict) -> dict:
    """One AM setting on every fc8 unit × starts: the class-unit evaluation's figures and this bench's own."""
    over = dict(over)
    stats = dict(code_stats)
    if "_sigmas" in over:
        stats["upper"] = stats["mean"] + over.pop("_sigmas") * stats["std"]
    ev.am = AMConfig(**over)
    t = time.time()
    m, images = ev(generator, layer, stats, reconstruction=False)
    secs = time.time() - t
    K, S = ev.num_classes, ev.starts
    labels, _ = judge_predictions(ev.judge, images)
    hits = (labels == ev.intended).view(S, K).float()  # (starts, K)
    with torch.no_grad():
        _, acts = ev.target.values(images, [as_objective(u) for u in ev.units * S])  # (S*K,) unit on its image
    pick = acts.view(S, K).argmax(0)  # (K,) the start whose image activates its unit most
    return {**m, "recognisability_spread_over_starts": hits.mean(1).std().item() if S > 1 else float("nan"),
            "best_of_starts_recognisability": hits[pick, torch.arange(K)].mean().item(), "seconds": secs,
            "per_unit": [round(v, 2) for v in hits.mean(0).tolist()]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/default", help="storage of a finished run (classifier/, judge/, generator/)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--out", help="JSON results file (default: <run>/am-settings.json)")
    a = parse_args(p, argv, run=lambda: tiny_run("dgn-bench-am-"), variants="baseline,lr-1,bounds-2sigma", starts=1)
    base_am = {"steps": 2} if a.dry_run else {}
    names = choose(a.variants, VARIANTS, "variant")
    r = load_run(a.run)
    K = r.encoder.config.num_classes
    ev = ClassUnitEval(encoder=r.encoder, judge=r.judge, val=r.val, val_labels=r.val_labels, num_classes=K,
                       am=AMConfig(), starts=a.starts)
    stats, layer = r.generator_ck["code_stats"], r.generator_ck["config"]["layer"]
    bounds = stats["upper"]
    print(f"G {r.generator_uri}; code bounds: median {bounds.median():.2f}, max {bounds.max():.2f}; "
          f"{K} units × {a.starts} starts")
    results = {}
    for name in names:
        m = results[name] = run_variant(ev, r.generator, layer, stats, {**base_am, **VARIANTS[name]})
        print(f"{name:18s} recog {m['am_recognisability']:.2f}  any {m['am_units_recognised_any_start']:.2f}  "
              f"best-of-starts {m['best_of_starts_recognisability']:.2f}  ratio {m['am_median_activation_ratio']:.2f}"
              f"  FD {realism_cell(m)}  {m['seconds']:.0f}s  per unit {m['per_unit']}", flush=True)
    print(f"\n{HEADER}\n|---|---|---|---|---|---|---|")
    for n, m in results.items():
        recog = fmt_interval(m["am_recognisability"], spread=m["recognisability_spread_over_starts"], n=a.starts,
                             what="spread over starts")
        print(f"| {n} | {recog} | {m['am_units_recognised_any_start']:.2f} | "
              f"{m['best_of_starts_recognisability']:.2f} | {m['am_median_activation_ratio']:.2f} | "
              f"{realism_cell(m)} | {m['seconds']:.0f} |")
    out = Path(a.out) if a.out else Path(a.run) / "am-settings.json"
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
