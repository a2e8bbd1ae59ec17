"""The embedded default's quality and wall time, end to end — the figures issue #2 asks for.

    python bench/quality.py                          # runs/bench-quality, the embedded default
    python bench/quality.py --storage runs/q2 --seed 1 --gan-epochs 10

Trains E (small CaffeNet), the independent judge and G exactly as
`python flows/train.py` does, then prints: the classifier's val accuracy; G's
reconstruction errors and the judge's accuracy on G(E(x_val)); for the fc8
units of the final classifier (5 DGN-AM starts each): recognisability by the
judge, median activation ratio, realism (Fréchet distance in judge features to
real val images); and wall times. Montages land beside quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dgn.pipeline import preset_config, run_pipeline  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", default="runs/bench-quality")
    p.add_argument("--preset", default="default", choices=["default", "paper"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gan-epochs", type=int)
    a = p.parse_args(argv)
    over = {"storage": a.storage, "seed": a.seed}
    if a.gan_epochs is not None:
        over["gan_epochs"] = a.gan_epochs
    s = run_pipeline(preset_config(a.preset, **over), log=lambda m: print(m, flush=True))
    keys = ["classifier_val_acc", "judge_val_acc", "recon_image_mse", "recon_feature_mse", "recon_judge_acc",
            "real_judge_acc", "am_recognisability", "am_units_recognised_any_start", "am_median_activation_ratio",
            "am_realism_fd", "am_realism_precision", "dead_code_units", "classifier_seconds", "judge_seconds", "generator_seconds",
            "training_seconds", "am_seconds", "total_seconds"]
    print(json.dumps({k: round(s[k], 4) if isinstance(s[k], float) else s[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
