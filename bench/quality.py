"""The embedded default's quality and wall time, end to end — the figures issue #2 asks for.

    python bench/quality.py                          # runs/bench-quality, the embedded default
    python bench/quality.py --storage runs/q2 --seed 1 --gan-steps 1000
    python bench/quality.py --preset paper --atlas-units "fc8=all"
    python bench/quality.py --dry-run                # a tiny run of the same job (runs/bench-quality-dry-run)

Runs the main job itself (dgn.job.run_training: Ray Train, MLflow, the same stages as `python
flows/train.py`; no atlas unless --atlas-units), then prints one table: the classifier's and the judge's
val accuracy; G's reconstruction errors and the judge's accuracy on G(E(x_val)); for the fc8 units of the
final classifier (``am_starts`` DGN-AM starts each): recognisability by the judge, median activation ratio,
realism (FD, precision and recall in judge features at N, each beside its real-vs-real floor at that N);
and the job's wall time per stage. Montages land beside quality.json. A second run with the same storage
resumes (nothing is trained again).
"""

from __future__ import annotations

import argparse

from common import realism_cell

from dgn.job import PRESETS, preset_config, run_training

DRY_RUN = dict(storage="runs/bench-quality-dry-run", n_train=64, n_val=40, classifier_steps=2, classifier_checkpoints=1,
               judge_steps=2, judge_checkpoints=1, gan_steps=2, gan_checkpoints=1, am_starts=1, batch_size=16,
               workers=1, gan={"warmup_steps": 1}, am={"steps": 2}, learned_factor=0.0)
HEADER = "| figure | value |"
FIGURES = ["classifier_val_acc", "judge_val_acc", "recon_image_mse", "recon_feature_mse", "recon_judge_acc",
           "real_judge_acc", "am_recognisability", "am_units_recognised_any_start", "am_median_activation_ratio",
           "dead_code_units", "training_seconds", "total_seconds"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", default="runs/bench-quality")
    p.add_argument("--preset", default="default", choices=list(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gan-steps", type=int)
    p.add_argument("--atlas-units", default="none", help="the job's atlas stage (dgn.atlas unit specs); default none")
    p.add_argument("--dry-run", action="store_true", help="the same job at tiny sizes, 1 worker, in its own storage")
    a = p.parse_args(argv)
    over = {**DRY_RUN, "storage": a.storage if a.storage != "runs/bench-quality" else DRY_RUN["storage"]} \
        if a.dry_run else {"storage": a.storage}
    over.update(seed=a.seed, atlas_units=a.atlas_units)
    if a.gan_steps is not None:
        over["gan_steps"] = a.gan_steps
    s = run_training(preset_config(a.preset, **over), log=lambda m: print(m, flush=True))
    print(f"\n{HEADER}\n|---|---|")
    for k in FIGURES:
        v = s.get(k, float("nan"))
        print(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    print(f"| am_realism_fd | {realism_cell(s)} |")
    for k in ("precision", "recall"):
        print(f"| am_realism_{k} | {s[f'am_realism_{k}']:.2f} (floor {s[f'am_realism_floor_{k}']:.2f}) |")
    for stage, secs in s["job"]["stage_seconds"].items():
        print(f"| seconds: {stage} | {secs:.1f} |")


if __name__ == "__main__":
    main()
