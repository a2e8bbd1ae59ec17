"""Which of E's layers should G invert? A Ray Tune sweep over the code layer × the loss weights.

Trains E (a small CaffeNet) and the independent judge once on the embedded
synthetic set (32 px) — or takes both from a finished flows/train.py run —
then one Tune trial per (layer, loss-weight set): conv3, conv4, conv5, pool5,
fc6, fc7, fc8 × the reference weights and draws around them. Each trial trains
G for a few epochs and, after each, scores it by DGN-AM on the fc8 units
(recognisability, activation ratio, realism) and reconstruction, combined by
the rule in dgn/sweep/score.py; ASHA stops weak trials early. Writes
sweep_table.{csv,md}, sweep_layers.png (each layer's best G, the same units)
and prints the best layer; logs a parent MLflow run with a child per trial.

    python flows/sweep_layers.py                          # the default grid, runs/sweep (≤ 30 min, 2 cores)
    python flows/sweep_layers.py --dry-run --storage /tmp/s # tiny: for tests and smoke checks
    python flows/sweep_layers.py --run runs/default       # E and judge from a finished train.py run
    python flows/sweep_layers.py --fair                   # the fair layer verdict: 3 seeds, matched G, 64 px
    python flows/sweep_layers.py --layers fc6,fc7 --samples 4 --trial-epochs 6
    ray job submit --working-dir . -- python flows/sweep_layers.py --storage s3://bucket/sweeps/a --cpus-per-trial 4

Interrupted (Ctrl-C)? Run the same command again: the sweep resumes
(Tuner.restore), finished trials are kept. --fresh starts over instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from dgn.cli import add_flags, log, parser, run_flow
from dgn.sweep.config import sweep_config
from dgn.sweep.run import run_sweep
from dgn.tracking import check_reachable


def parse_args(argv=None) -> argparse.Namespace:
    p = parser(__doc__)
    add_flags(p, "storage", storage="where the sweep writes (dir or s3://); default runs/sweep "
              "(runs/sweep-dry-run with --dry-run)")
    p.add_argument("--name", help="experiment name (Tune dir and MLflow parent run); default sweep-layers")
    add_flags(p, "data")
    p.add_argument("--run", help="storage of a finished flows/train.py run: use its last classifier and its judge")
    p.add_argument("--layers", help="comma-separated code layers; default conv3,conv4,conv5,pool5,fc6,fc7,fc8")
    p.add_argument("--samples", type=int, help="loss-weight sets per layer (the first is the reference); default 2")
    p.add_argument("--trial-epochs", type=int, help="reports per trial, each after --steps-per-epoch G steps "
                   "(ASHA's max_t); default 4")
    p.add_argument("--steps-per-epoch", type=int, help="G steps between a trial's reports; default 200")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs each trial asks Ray for; default 1")
    p.add_argument("--max-concurrent-trials", type=int, help="trials running at once; default 2")
    add_flags(p, "num-cpus", "experiment", "no-tracking", "dry-run", num_cpus="CPUs of the local Ray instance; default 2",
              experiment="MLflow experiment; default dgn-sweep",
              dry_run="a tiny sweep (7 trials, a few steps): tests, smoke checks")
    p.add_argument("--fresh", action="store_true", help="delete this sweep's Tune state and start over")
    p.add_argument("--fair", action="store_true", help="the fair layer comparison the verdict rests on (docs/sweep.md): "
                   "64 px, 3 G seeds, the job's G recipe, an independent comparator, G parameters matched across "
                   "layers, no early stopping; verdict with and without the reconstruction term, ties within the seed "
                   "spread")
    p.add_argument("--seeds", help="comma-separated G seeds (a grid dimension); default: --fair's 0,1,2, else one")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace):
    over = {"storage": args.storage, "name": args.name, "data": args.data, "run": args.run,
            "samples": args.samples, "epochs": args.trial_epochs, "steps_per_epoch": args.steps_per_epoch,
            "cpus_per_trial": args.cpus_per_trial, "max_concurrent_trials": args.max_concurrent_trials,
            "num_cpus": args.num_cpus, "experiment": args.experiment}
    over = {k: v for k, v in over.items() if v is not None}
    if args.layers is not None:
        over["layers"] = tuple(x.strip() for x in args.layers.split(",") if x.strip())
    if args.no_tracking:
        over["tracking"] = False
    if args.dry_run and "storage" not in over:
        over["storage"] = "runs/sweep-dry-run"
    if args.seeds is not None:
        over["seeds"] = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    preset = ("quick-fair" if args.fair else "quick") if args.dry_run else ("fair" if args.fair else "default")
    return sweep_config(preset, **over)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_flow(lambda: _sweep(args))


def _sweep(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    if cfg.tracking:
        check_reachable()
    result = run_sweep(cfg, log=log, fresh=args.fresh)
    if result["interrupted"]:
        return 130
    print(json.dumps({s["layer"]: round(s["best_score"], 4) for s in result["summary"]}, indent=1))
    for line in result["verdict_lines"]:
        log(line)
    log(f"done in {result['seconds']:.0f}s: " + ", ".join(result["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
