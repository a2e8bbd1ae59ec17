"""The main job on Ray Train: data → classifier E (3 checkpoints) → judge → generator G → quality report → atlas.

With no arguments it runs the embedded default end to end on this machine:
starts a local Ray, writes the synthetic dataset, trains a small CaffeNet, an
independent judge and a generator on E's fc6 (data-parallel Ray Train workers;
budgets in optimisation steps, each stage with evenly spaced checkpoints), renders the preferred input of every class unit with
DGN-AM, logs everything to MLflow and prints the line to browse it.

    python flows/train.py                                  # embedded default, runs/default
    python flows/train.py --storage runs/exp1 --gan-steps 1000 --workers 2
    python flows/train.py --data s3://bucket/ds --storage s3://bucket/runs/x
    python flows/train.py --encoder-weights alexnet.pth --data /data/imagenet-parquet --gpu --workers 8
    python flows/train.py --preset paper --config my.yaml   # the paper's faithful G losses
    python flows/train.py --dry-run                         # a tiny end-to-end run (runs/dry-run)
    ray job submit --working-dir . -- python flows/train.py --storage s3://bucket/runs/x --workers 4

Resume: run the same command again (same --storage and run name); finished
stages and checkpoints are skipped and the same MLflow run continues. A worker that
dies is restarted from the last checkpoint (--max-failures times).

MLflow: MLFLOW_TRACKING_URI, else $DGN_HOME/mlflow.db (DGN_HOME defaults to
~/.dgn), which outlives a ray job's temporary working directory. Under
ray job submit give --storage an absolute path or s3:// for the same reason.

A config file (YAML, or TOML by extension) may set any field of
dgn.job.PipelineConfig, with ``gan:`` and ``am:`` sections for the
GANConfig and AMConfig fields; flags override the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from dgn.am.dgn_am import AMConfig
from dgn.cli import add_flags, load_config_file, log, parser, run_flow
from dgn.data import read_meta
from dgn.errors import DGNError
from dgn.job import PRESETS, PipelineConfig, preset_config, run_training
from dgn.train.gan import GANConfig

DRY_RUN_STORAGE = "runs/dry-run"  # not runs/default: a real run there must not resume the tiny one's checkpoints
DRY_RUN = dict(n_train=200, n_val=100, classifier_steps=6, classifier_checkpoints=1, judge_steps=6,
               judge_checkpoints=1, gan_steps=6, gan_checkpoints=1, am_starts=1, batch_size=32,
               gan={"warmup_steps": 2}, am={"steps": 3}, learned_factor=0.0,  # 6 steps of E cannot learn: no check
               atlas_units="fc8=all;fc7=0-1;fc6=0-1;conv5=0-1")


def parse_args(argv=None) -> argparse.Namespace:
    p = parser(__doc__)
    add_flags(p, "data", "storage", storage="where checkpoints and reports go (dir or s3://); default runs/default "
              "(runs/dry-run with --dry-run)")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="G losses and AM settings: 'default' (the product's) or 'paper' (the reference's, faithful)")
    p.add_argument("--encoder-layer", help="E's layer whose code G inverts (conv3…fc8); default fc6")
    p.add_argument("--epochs", type=int, help="G's budget as passes over the training set (sets --gan-steps to "
                   "N × training images // batch size)")
    p.add_argument("--classifier-steps", type=int, help="E's optimisation steps (default 375)")
    p.add_argument("--judge-steps", type=int, help="the judge's optimisation steps (default 250)")
    p.add_argument("--gan-steps", type=int, help="G's optimisation steps (default 500), whatever the dataset's size")
    p.add_argument("--batch-size", type=int, help="the global batch, split between workers (default 64)")
    add_flags(p, "seed")
    p.add_argument("--atlas-units", help="the atlas stage's units at every classifier checkpoint, e.g. "
                   "'fc8=all;fc7=0-11' (dgn.atlas specs), or 'none'; default every fc8 unit and 2 of fc7, fc6, conv5")
    p.add_argument("--workers", type=int, help="Ray Train workers (data-parallel); the global batch stays fixed; default 2")
    p.add_argument("--encoder-weights", help="E and C from this file (torchvision AlexNet state dict or a dgn classifier "
                   "checkpoint); the classifier stage is skipped")
    add_flags(p, "run-name", "experiment", "num-cpus", "config", "gpu", "dry-run",
              run_name="MLflow (and Ray Train) run name; the same name resumes; default: storage's name",
              experiment="MLflow experiment; default dgn-train", gpu="train on CUDA GPU workers (bf16 autocast)")
    p.add_argument("--max-failures", type=int, help="worker-group restarts from the last checkpoint; default 2")
    return p.parse_args(argv)


def _check_sections(over: dict) -> None:
    valid = {f.name for f in fields(PipelineConfig)} - {"gan", "am"}
    for section, cls in (("gan", GANConfig), ("am", AMConfig)):
        names = {f.name for f in fields(cls)}
        bad = sorted(set(over.get(section) or {}) - names)
        if bad:
            raise DGNError(f"unknown {section} setting(s) {bad} in the config; valid: {', '.join(sorted(names))}")
    bad = sorted(set(over) - valid - {"gan", "am"})
    if bad:
        raise DGNError(f"unknown setting(s) {bad} in the config; valid: {', '.join(sorted(valid | {'gan', 'am'}))}")


def build_config(args: argparse.Namespace) -> PipelineConfig:
    over = load_config_file(args.config) if args.config else {}
    if args.dry_run:
        over = {"storage": DRY_RUN_STORAGE, **DRY_RUN, **over, "gan": {**DRY_RUN["gan"], **over.get("gan", {})},
                "am": {**DRY_RUN["am"], **over.get("am", {})}}
    _check_sections(over)
    flags = {"data": args.data, "storage": args.storage, "classifier_steps": args.classifier_steps,
             "judge_steps": args.judge_steps, "gan_steps": args.gan_steps, "batch_size": args.batch_size,
             "seed": args.seed, "workers": args.workers, "atlas_units": args.atlas_units,
             "encoder_weights": args.encoder_weights, "run_name": args.run_name, "experiment": args.experiment,
             "max_failures": args.max_failures, "num_cpus": args.num_cpus}
    over.update({k: v for k, v in flags.items() if v is not None})
    if args.encoder_layer:
        over["gan"] = {**over.get("gan", {}), "layer": args.encoder_layer}
    if args.gpu:
        over["device"] = "cuda"
        over["gan"] = {**over.get("gan", {}), "amp": True}
    preset = args.preset or over.pop("preset", "default")
    over.pop("preset", None)
    cfg = preset_config(preset, **over)
    if args.epochs is not None:
        if args.epochs < 1:
            raise DGNError(f"epochs must be ≥ 1; got {args.epochs}")
        cfg.gan_steps = args.epochs * max(1, _n_train(cfg) // cfg.batch_size)
        cfg.gan_checkpoints = min(cfg.gan_checkpoints, cfg.gan_steps)
    cfg.validate()
    return cfg


def _n_train(cfg: PipelineConfig) -> int:
    if not cfg.data:
        return cfg.n_train
    return read_meta(cfg.data).counts["train"]


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_flow(lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    summary = run_training(cfg, log=log)
    keys = ["classifier_val_acc", "judge_val_acc", "recon_encoder_acc", "recon_judge_acc", "am_recognisability",
            "am_median_activation_ratio", "am_realism_n", "am_realism_fd", "am_realism_floor_fd", "am_realism_precision", "am_realism_recall",
            "training_seconds", "total_seconds"]
    print(json.dumps({k: round(summary[k], 4) for k in keys if k in summary}, indent=1))
    log(f"done: checkpoints, quality.json and montages are in {cfg.storage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
