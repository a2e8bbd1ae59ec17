"""DGN-AM's own settings on one trained run: lr relative to the code's bounds, initialisation, steps, decay.

    python bench/quality.py --storage runs/bench-quality            # once: a trained run
    python bench/am_settings.py --run runs/bench-quality            # every variant, 5 starts per fc8 unit
    python bench/am_settings.py --run runs/bench-quality --variants baseline,lr-1 --starts 10

G, E and the judge stay fixed, so each row isolates one AM setting. Each
variant renders every fc8 unit from ``--starts`` starts (a start is a seed)
and reports, by the independent judge: recognisability (share of unit × start
images the judge assigns to the unit's class) with its std over starts, the
share of units recognised from at least one start, the median activation
ratio to the best real val image, realism (Fréchet distance in judge features)
and the wall time. "best-of-starts" picks, per unit, the start with the highest
objective (what an atlas shows when it renders several starts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dgn.am import AMConfig, TargetNet, dgn_am  # noqa: E402
from dgn.data import load_split  # noqa: E402
from dgn.metrics import activation_ratio, best_real_activations, realism  # noqa: E402
from dgn.metrics.judge import judge_predictions  # noqa: E402
from dgn.pipeline import DEFAULT_AM  # noqa: E402
from dgn.train import load_classifier, load_generator, load_judge, tensor_batches  # noqa: E402

VARIANTS = {
    "baseline": {},
    "lr-0.05": {"lr": 0.05},
    "lr-0.1": {"lr": 0.1},
    "lr-0.5": {"lr": 0.5},
    "lr-1": {"lr": 1.0},
    "lr-8 (paper)": {"lr": 8.0},
    "init-zeros": {"init": "zeros"},
    "init-mean": {"init": "mean"},
    "noise-0.5": {"noise_std": 0.5},
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
    "decay-0.03": {"decay": 0.03},
    "decay-0.1": {"decay": 0.1},
    "log-softmax": {"log_softmax": "fc8"},  # optimise the class's log-probability, not its logit
    "log-softmax-lr-0.05": {"log_softmax": "fc8", "lr": 0.05},
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/bench-quality", help="storage of a finished run (classifier/, judge/, generator/)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--out", help="JSON results file (default: <run>/am-settings.json)")
    a = p.parse_args(argv)
    names = [v for v in a.variants.split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        sys.exit(f"error: unknown variant(s) {bad}; valid: {', '.join(VARIANTS)}")
    run = Path(a.run)
    cks = sorted((run / "classifier").glob("epoch=*.pt"))
    gens = sorted((run / "generator").glob("*/epoch=*.pt"))
    if not cks or not gens:
        sys.exit(f"error: {run} holds no classifier or generator checkpoints; run bench/quality.py --storage {run} first")
    encoder, ck = load_classifier(str(cks[-1]))
    G, gck = load_generator(str(gens[-1]))
    judge = load_judge(str(run / "judge" / "judge.pt"))
    xv, _ = load_split(ck.get("data") or str(run / "data"), "val", image_size=encoder.config.image_size)
    xvf = xv.float() / 255
    target = TargetNet.caffenet(encoder)
    K = encoder.config.num_classes
    units = [f"fc8:{k}" for k in range(K)]
    best = best_real_activations(target, units, tensor_batches(xv, batch_size=256))
    bounds = gck["code_stats"]["upper"]
    print(f"G {gens[-1]}; code bounds: median {bounds.median():.2f}, max {bounds.max():.2f}; {K} units × {a.starts} starts")
    results = {}
    for name in names:
        t = time.time()
        objs = [u for _ in range(a.starts) for u in units]  # start s of unit k at s*K + k
        over = dict(VARIANTS[name])
        stats = dict(gck["code_stats"])
        if "_sigmas" in over:
            stats["upper"] = stats["mean"] + over.pop("_sigmas") * stats["std"]
        res = dgn_am(G, target, objs, code_stats=stats, config=AMConfig(**{**DEFAULT_AM, **over}))
        secs = time.time() - t
        labels, _ = judge_predictions(judge, res.images.float())
        hits = (labels == torch.arange(K).repeat(a.starts)).view(a.starts, K).float()  # (starts, K)
        ratio = activation_ratio(res.activations.float(), best.repeat(a.starts))
        pick = res.objective.view(a.starts, K).argmax(0)  # (K,) best start per unit by the objective
        results[name] = {
            "recognisability": hits.mean().item(),
            "recognisability_std_over_starts": hits.mean(1).std().item(),
            "units_recognised_any_start": hits.any(0).float().mean().item(),
            "best_of_starts_recognisability": hits[pick, torch.arange(K)].mean().item(),
            "median_activation_ratio": ratio.nanmedian().item(),
            "realism_fd": realism(judge, res.images.float(), xvf),
            "seconds": secs,
            "per_unit": [round(v, 2) for v in hits.mean(0).tolist()],
        }
        r = results[name]
        print(f"{name:14s} recog {r['recognisability']:.2f} ± {r['recognisability_std_over_starts']:.2f}  "
              f"any {r['units_recognised_any_start']:.2f}  best-of-starts {r['best_of_starts_recognisability']:.2f}  "
              f"ratio {r['median_activation_ratio']:.2f}  FD {r['realism_fd']:.1f}  {secs:.0f}s  per unit {r['per_unit']}", flush=True)
    cols = ["recognisability", "recognisability_std_over_starts", "units_recognised_any_start",
            "best_of_starts_recognisability", "median_activation_ratio", "realism_fd", "seconds"]
    print("\n| variant | recognisability (± std over starts) | units recognised from ≥1 start | best-of-starts | "
          "median ratio | FD | s |\n|---|---|---|---|---|---|---|")
    for n, r in results.items():
        print(f"| {n} | {r[cols[0]]:.2f} ± {r[cols[1]]:.2f} | {r[cols[2]]:.2f} | {r[cols[3]]:.2f} | {r[cols[4]]:.2f} | "
              f"{r[cols[5]]:.1f} | {r[cols[6]]:.0f} |")
    out = Path(a.out) if a.out else run / "am-settings.json"
    out.write_text(json.dumps(results, indent=1))
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
