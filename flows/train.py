"""The main job on Ray Train: data → classifier E (a checkpoint per epoch) → judge → generator G → quality report.

With no arguments it runs the embedded default end to end on this machine:
starts a local Ray, writes the synthetic dataset, trains a small CaffeNet, an
independent judge and a generator on E's fc6 (data-parallel Ray Train workers,
a checkpoint every epoch), renders the preferred input of every class unit with
DGN-AM, logs everything to MLflow and prints the line to browse it.

    python flows/train.py                                  # embedded default, runs/default
    python flows/train.py --storage runs/exp1 --gan-epochs 4 --workers 2
    python flows/train.py --data s3://bucket/ds --storage s3://bucket/runs/x
    python flows/train.py --encoder-weights alexnet.pth --data /data/imagenet-parquet --gpu --workers 8
    python flows/train.py --preset paper --config my.yaml   # the paper's faithful G losses
    python flows/train.py --dry-run                         # a tiny end-to-end run (runs/dry-run)
    ray job submit --working-dir . -- python flows/train.py --storage s3://bucket/runs/x --workers 4

Resume: run the same command again (same --storage and run name); finished
stages and epochs are skipped and the same MLflow run continues. A worker that
dies is restarted from the last checkpoint (--max-failures times).

MLflow: MLFLOW_TRACKING_URI, else $DGN_HOME/mlflow.db (DGN_HOME defaults to
~/.dgn), which outlives a ray job's temporary working directory. Under
ray job submit give --storage an absolute path or s3:// for the same reason.

A config file (YAML, or TOML by extension) may set any field of
dgn.pipeline.PipelineConfig, with ``gan:`` and ``am:`` sections for the
GANConfig and AMConfig fields; flags override the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dgn.errors import DGNError  # noqa: E402

DRY_RUN_STORAGE = "runs/dry-run"  # not runs/default: a real run there must not resume the tiny one's checkpoints
DRY_RUN = dict(n_train=200, n_val=100, classifier_epochs=1, judge_epochs=1, gan_epochs=1, am_starts=1, batch_size=32,
               gan={"warmup_steps": 2}, am={"steps": 3}, learned_factor=0.0,  # 6 steps of E cannot learn: no learn check
               atlas_units="fc8=all;fc7=0-1;fc6=0-1;conv5=0-1")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="dataset URI (dir or s3://) with train/ and val/ Parquet; default: the embedded set")
    p.add_argument("--storage", help="where checkpoints and reports go (dir or s3://); default runs/default "
                   "(runs/dry-run with --dry-run)")
    p.add_argument("--preset", choices=["default", "paper"], default=None,
                   help="G losses and AM settings: 'default' (embedded-data recipe) or 'paper' (faithful)")
    p.add_argument("--encoder-layer", help="E's layer whose code G inverts (conv3…fc8); default fc6")
    p.add_argument("--epochs", type=int, help="generator epochs (alias of --gan-epochs)")
    p.add_argument("--classifier-epochs", type=int)
    p.add_argument("--judge-epochs", type=int)
    p.add_argument("--gan-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--atlas-units", help="the atlas stage's units at every classifier epoch, e.g. "
                   "'fc8=all;fc7=0-11' (dgn.atlas specs), or 'none'; default every fc8 unit and 2 of fc7, fc6, conv5")
    p.add_argument("--workers", type=int, help="Ray Train workers (data-parallel); the global batch stays fixed; default 2")
    p.add_argument("--encoder-weights", help="E and C from this file (torchvision AlexNet state dict or a dgn classifier "
                   "checkpoint); the classifier stage is skipped")
    p.add_argument("--run-name", help="MLflow (and Ray Train) run name; the same name resumes; default: storage's name")
    p.add_argument("--experiment", help="MLflow experiment; default dgn-train")
    p.add_argument("--max-failures", type=int, help="worker-group restarts from the last checkpoint; default 2")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (when RAY_ADDRESS is unset); default: all")
    p.add_argument("--config", help="YAML or TOML file with any PipelineConfig fields")
    p.add_argument("--gpu", action="store_true", help="train on CUDA GPU workers (bf16 autocast)")
    p.add_argument("--dry-run", action="store_true", help="a tiny end-to-end run, for tests and smoke checks")
    return p.parse_args(argv)


def load_config_file(path: str) -> dict:
    f = Path(path)
    if not f.is_file():
        raise DGNError(f"config file {path!r} does not exist")
    text = f.read_text()
    try:
        if f.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as e:  # noqa: BLE001 — the user's file
        raise DGNError(f"config file {path!r} is not valid {'TOML' if f.suffix == '.toml' else 'YAML'}: {e}") from None
    if not isinstance(data, dict):
        raise DGNError(f"config file {path!r} must hold a mapping of settings, not a {type(data).__name__}")
    return data


def build_config(args: argparse.Namespace):
    from dataclasses import fields

    from dgn.am.dgn_am import AMConfig
    from dgn.pipeline import PipelineConfig, preset_config
    from dgn.train.gan import GANConfig

    over = load_config_file(args.config) if args.config else {}
    if args.dry_run:
        over = {"storage": DRY_RUN_STORAGE, **DRY_RUN, **over, "gan": {**DRY_RUN["gan"], **over.get("gan", {})},
                "am": {**DRY_RUN["am"], **over.get("am", {})}}
    valid = {f.name for f in fields(PipelineConfig)} - {"gan", "am"}
    for section, cls in (("gan", GANConfig), ("am", AMConfig)):
        names = {f.name for f in fields(cls)}
        bad = sorted(set(over.get(section) or {}) - names)
        if bad:
            raise DGNError(f"unknown {section} setting(s) {bad} in the config; valid: {', '.join(sorted(names))}")
    bad = sorted(set(over) - valid - {"gan", "am"})
    if bad:
        raise DGNError(f"unknown setting(s) {bad} in the config; valid: {', '.join(sorted(valid | {'gan', 'am'}))}")
    flags = {"data": args.data, "storage": args.storage, "classifier_epochs": args.classifier_epochs,
             "judge_epochs": args.judge_epochs, "gan_epochs": args.gan_epochs if args.gan_epochs is not None else args.epochs,
             "batch_size": args.batch_size, "seed": args.seed, "workers": args.workers,
             "atlas_units": args.atlas_units,
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
    cfg: PipelineConfig = preset_config(preset, **over)
    cfg.validate()
    return cfg


def main(argv=None) -> int:
    from dgn.cli import run_flow

    args = parse_args(argv)
    return run_flow(lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    from dgn.pipeline import run_training
    from dgn.tracking.core import scrub  # no secret's value (AWS keys, tokens) is ever printed, even inside a URI

    cfg = build_config(args)
    summary = run_training(cfg, log=lambda m: print(scrub(m), flush=True))
    keys = ["classifier_val_acc", "judge_val_acc", "recon_judge_acc", "am_recognisability", "am_median_activation_ratio",
            "am_realism_fd", "am_realism_precision", "training_seconds", "total_seconds"]
    print(json.dumps({k: round(summary[k], 4) for k in keys if k in summary}, indent=1))
    print(scrub(f"done: checkpoints, quality.json and montages are in {cfg.storage}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
