"""Feature-evolution atlases: the preferred input of every unit of chosen layers, for every checkpoint of a run.

A pool of Ray actors renders each (checkpoint, layer, unit block) with batched
DGN-AM; a manifest beside the outputs makes reruns skip finished work; the
driver writes a static HTML atlas and logs grids (stepped by checkpoint), per-unit
PNGs, tables and plots to MLflow.

    python flows/atlas.py --storage runs/default                  # fc8, fc7, fc6, conv5 of every checkpoint
    python flows/atlas.py --storage runs/default --layers fc8 --units all --actors 2
    python flows/atlas.py --storage runs/default --units "fc8=all;fc7=0-15;fc6=0-15;conv5=0-15"
    python flows/atlas.py --storage runs/default --combine fc8:3+fc8:7 --combine fc8:1+fc8:2
    python flows/atlas.py --storage runs/default --checkpoints last --steps 50       # a quick look at the final net
    python flows/atlas.py --storage runs/default --generators all --layers fc8   # how the prior improves
    python flows/atlas.py --storage runs/default --target torchvision:alexnet --target-weights alexnet.pt \\
        --layers fc8 --units 0-99
    python flows/atlas.py --storage runs/default --target model.ts --layers features.10,output
    python flows/atlas.py --storage runs/default --run-name default   # log into the training run
    python flows/atlas.py --dry-run              # a tiny training run in runs/atlas-dry-run, then its atlas (seconds)
    python flows/atlas.py --generator deepsim:fc6=upconvGAN_fc6.pt --bounds act_range/3x/fc6.txt \\
        --target torchvision:alexnet --target-weights alexnet.pt --layers fc8 --units 643,624,304,629,437
                                                 # the published DeePSiM prior, no run (docs/deepsim.md)
    ray job submit --working-dir . -- python flows/atlas.py --storage s3://bucket/runs/x --actors 8

Outputs go to --out (default <storage>/atlas): manifest.json, items/, html/index.html.
MLflow: MLFLOW_TRACKING_URI, else sqlite under $DGN_HOME (see dgn/tracking/core.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dgn.atlas import AtlasConfig, run_atlas
from dgn.atlas.demo import write_tiny_run
from dgn.cli import add_flags, log, parser, run_flow
from dgn.data.uri import absolute
from dgn.errors import DGNError
from dgn.tracking import browse_hint
from dgn.tracking.atlas import open_atlas_run

DRY_RUN = dict(units="fc8=all;fc7=0-3;fc6=0-3;conv5=0-3", combine=("fc8:0+fc8:1",), am={"steps": 3}, actors=2,
               chunk=8, n_real=100)


def parse_args(argv=None) -> argparse.Namespace:
    p = parser(__doc__)
    add_flags(p, "storage", storage="the training run's storage (dir or s3://): classifier/, generator/, judge/")
    p.add_argument("--out", help="where the atlas goes (dir or s3://); default <storage>/atlas")
    p.add_argument("--layers", help="comma-separated layers (module names); default fc8,fc7,fc6,conv5")
    p.add_argument("--units", default="all", help="all | 0-9 | 1,5,7 | per layer: 'fc8=all;fc7=0-15' (default all)")
    p.add_argument("--checkpoints", default="all", help="the classifier checkpoints to render: all | last | a list "
                   "like 1-3,8 (the k of classifier/epoch=000k.pt)")
    p.add_argument("--combine", action="append", default=[], help="a composition like fc8:3+fc8:7 (repeatable)")
    p.add_argument("--target", default="run", help="run (its classifier checkpoints) | TorchScript file | "
                                                  "torchvision:NAME")
    p.add_argument("--target-weights", default="", help="local state dict for --target torchvision:NAME")
    p.add_argument("--generators", choices=["latest", "all"], default="latest",
                   help="latest: the final G on every classifier checkpoint; all: every G checkpoint on one target")
    p.add_argument("--generator-layer", default="", help="which generator/<layer>/ to use (default fc6)")
    p.add_argument("--generator", default="", help="a published prior instead of a run's G: deepsim:LAYER=FILE "
                                                  "(fc6, fc7, fc8, pool5; an upconvGAN state dict); no --storage needed")
    p.add_argument("--bounds", default="", help="code bounds for --generator: a file in the reference's act_range "
                                               "format, or imagefolder:DIR (mean + 3σ through the target)")
    p.add_argument("--data", default="", help="a contract dataset whose val images give best-real activations "
                                             "(default: the run's; none for --generator)")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads per actor (0: CPUs / actors)")
    p.add_argument("--chunk", type=int, default=64, help="units per work item (one batched DGN-AM)")
    p.add_argument("--steps", type=int, help="DGN-AM steps (default: AMConfig's 200)")
    p.add_argument("--starts", type=int, default=1, help="restarts per unit; the best is kept")
    p.add_argument("--seed", type=int, default=0, help="random seed of the start codes")
    add_flags(p, "gpu", "experiment", "run-name", gpu="render on CUDA (a GPU share per actor)",
              experiment="MLflow experiment (default dgn-atlas; dgn-train with --run-name)",
              run_name="continue this MLflow run (e.g. the training run's name)")
    p.add_argument("--mlflow-run-id", default="", help="continue the MLflow run with this id")
    add_flags(p, "no-tracking", "dry-run", no_tracking="write the atlas folder only (no MLflow)",
              dry_run="tiny: a throwaway training run (if no --storage), few units and steps")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> AtlasConfig:
    over = dict(DRY_RUN) if args.dry_run else {}
    am = dict(over.pop("am", {}))
    if args.steps is not None:
        if args.steps < 1:
            raise DGNError(f"--steps must be ≥ 1; got {args.steps}")
        am["steps"] = args.steps
    cfg = AtlasConfig(
        storage=args.storage or "", out=args.out or "",
        layers=tuple(l.strip() for l in args.layers.split(",") if l.strip()) if args.layers else None,
        units=over.pop("units", args.units) if args.units == "all" else args.units, epochs=args.checkpoints,
        combine=tuple(args.combine) or over.pop("combine", ()), target=args.target, target_weights=args.target_weights,
        generators=args.generators, generator_layer=args.generator_layer,
        actors=over.pop("actors", args.actors) if args.actors == 2 else args.actors, threads=args.threads,
        chunk=over.pop("chunk", args.chunk) if args.chunk == 64 else args.chunk, am=am, starts=args.starts,
        seed=args.seed, device="cuda" if args.gpu else "cpu", n_real=over.pop("n_real", 1000),
        generator=args.generator, bounds=args.bounds, data=args.data)
    if cfg.published and not cfg.storage and not cfg.out:  # its own folder per prior and target
        layer = args.generator.removeprefix("deepsim:").split("=", 1)[0]
        name = cfg.target.removeprefix("torchvision:").replace("/", "_").rsplit("_", 1)[-1].removesuffix(".ts")
        cfg.out = absolute(f"runs/atlas-deepsim-{layer}-{name}")
    return cfg


DRY_RUN_STORAGE = "runs/atlas-dry-run"


def dry_run_storage() -> str:
    """A tiny training run (seconds) to render an atlas of, written once under runs/atlas-dry-run."""
    storage = absolute(DRY_RUN_STORAGE)
    if Path(storage, "generator", "fc6", "epoch=0001.pt").is_file():  # written last
        return storage
    return write_tiny_run(storage)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_flow(lambda: _atlas(args))


def _atlas(args: argparse.Namespace) -> int:
    if not args.storage and not args.dry_run and not args.generator:
        raise DGNError("--storage is required: the training run to render (a directory or s3:// prefix)")
    if args.mlflow_run_id and args.run_name:
        raise DGNError("give --run-name or --mlflow-run-id, not both")
    if args.generator and args.dry_run:
        raise DGNError("--dry-run renders a throwaway run; with --generator give --steps 3 --units 0-3 instead")
    cfg = build_config(args)
    cfg.validate() if cfg.storage or cfg.published else None
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise DGNError("--gpu was given but no CUDA device is available here")
    if args.dry_run and not cfg.storage:
        log("atlas: --dry-run without --storage: training a throwaway run first")
        cfg.storage = dry_run_storage()
    if args.no_tracking:
        summary = run_atlas(cfg, run=None, log=log)
    else:
        with open_atlas_run(storage=cfg.storage or cfg.out_uri, run_name=args.run_name or "",
                            run_id=args.mlflow_run_id, experiment=args.experiment or "", params={"atlas": cfg.to_dict()}) as run:
            log(f"mlflow: logging into run {run.run_id}")
            summary = run_atlas(cfg, run=run, log=log)
        log(browse_hint())
    keys = ["items_done", "items_skipped", "units_rendered", "units_per_s", "recognisability", "seconds"]
    print(json.dumps({k: summary[k] for k in keys}, indent=1, default=str))
    log(f"done: the atlas is in {summary['out']} (open {summary['html']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
