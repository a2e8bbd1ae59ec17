"""The generator-quality study: one factor at a time against a fixed baseline, over seeds.

    python bench/quality_study.py                                   # every factor, 3 seeds, 240 s of G each
    python bench/quality_study.py --factors baseline,adversarial --seeds 0,1,2 --seconds 240
    python bench/quality_study.py --list                            # the factors and what they change
    python bench/quality_study.py --factors baseline,no-warmup --g-steps 400   # a step budget: fair on a busy machine

For each seed it trains E and the judge once (as the pipeline does), then for
each variant trains G for a fixed wall-clock budget and measures, with the
independent judge (never E): its accuracy on G(E(x_val)), DGN-AM
recognisability of every fc8 unit × 5 starts, median activation ratio and
Fréchet distance to real val images. Prints a markdown table of mean ± std
over seeds, and writes montages per variant under --out.
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

from dgn.data import load_split, read_meta, write_synthetic  # noqa: E402
from dgn.errors import DGNError  # noqa: E402
from dgn.nets import Judge, build_caffenet  # noqa: E402
from dgn.pipeline import DEFAULT_AM, DEFAULT_GAN, prepare_data, preset_config, quality, train_classifier  # noqa: E402
from dgn.train.batches import tensor_batches  # noqa: E402
from dgn.train.codestats import code_stats  # noqa: E402
from dgn.train.gan import GANTrainer  # noqa: E402

# variant name → (GANConfig changes, AMConfig changes[, setup changes]): one factor each against the baseline.
# Setup changes alter the data or E, so such a variant gets its own dataset, E and judge per seed:
# hue_jitter (the embedded data's hue spread per class; 0.05 keeps classes' hues disjoint, more makes
# neighbours share hues so E must keep shape), image_size, and E's dropout / fc widths.
_G = DEFAULT_GAN["generator_overrides"]
FACTORS = {
    "baseline": ({}, {}),
    "faithful-losses": ({"image_loss": "pixel", "feature_layer": "pool5", "w_adv": 0.01, "warmup_steps": 0}, {}),
    "contrast-loss": ({"image_loss": "contrast"}, {}),
    "pool5-comparator": ({"feature_layer": "pool5"}, {}),
    "adversarial": ({"w_adv": 0.01}, {}),
    "no-warmup": ({"warmup_steps": 0}, {}),
    "deconv-G": ({"generator_overrides": {**_G, "arch": "deconv"}}, {}),
    "no-batchnorm": ({"generator_overrides": {**_G, "norm": "none"}}, {}),
    "groupnorm-G": ({"generator_overrides": {**_G, "norm": "group"}}, {}),
    "wide-G": ({"generator_overrides": {"widths": (256, 128, 64, 32)}}, {}),
    "paper-balance": ({"w_adv": 0.01, "pause": "update"}, {}),
    "am-lr-8": ({}, {"lr": 8.0}),
    "am-lr-1": ({}, {"lr": 1.0}),
    "am-init-zeros": ({}, {"init": "zeros"}),
    "am-100-steps": ({}, {"steps": 100}),
    "shared-hues": ({}, {}, {"hue_jitter": 0.15}),
    "any-hue": ({}, {}, {"hue_jitter": 0.5}),
    "32px": ({}, {}, {"image_size": 32}),
    "E-no-dropout": ({}, {}, {"dropout": 0.0}),
    "E-wide-fc": ({}, {}, {"fc": (1024, 1024)}),
}
METRICS = ("recon_judge_acc", "am_recognisability", "am_median_activation_ratio", "am_realism_fd",
           "am_realism_precision", "steps")


def _setup(name: str) -> dict:
    return FACTORS[name][2] if len(FACTORS[name]) > 2 else {}


def _data(base, out: Path, setup: dict) -> str:
    """The embedded dataset for a setup: the default one, or one written with the setup's data changes."""
    data_over = {k: setup[k] for k in ("hue_jitter", "image_size") if k in setup}
    if not data_over:
        return prepare_data(base, log=print)
    uri = str(out / ("data-" + "-".join(f"{k}{v}" for k, v in sorted(data_over.items()))))
    try:
        read_meta(uri)
    except DGNError:
        write_synthetic(uri, n_train=base.n_train, n_val=base.n_val, seed=base.seed, **data_over)
    return uri


def run_variant(name, gan_over, am_over, *, encoder, judge, stats, train, val, num_classes, seconds, seed, out: Path,
                g_steps: int = 0, image_size: int = 64):
    cfg = preset_config("default", seed=seed, image_size=image_size, gan={**DEFAULT_GAN, **gan_over},
                        am={**DEFAULT_AM, **am_over})
    trainer = GANTrainer(encoder, cfg.gan, code_stats=stats, seed=seed)
    t, epoch = time.time(), 0

    def more() -> bool:  # a step budget when given (fair under load), else the wall-clock budget
        return trainer.step_count < g_steps if g_steps else time.time() - t < seconds

    while more():
        for x in tensor_batches(train[0], batch_size=cfg.batch_size, shuffle=True, seed=seed * 1000 + epoch, drop_last=True):
            trainer.step(x)
            if not more():
                break
        epoch += 1
    q = quality(cfg, encoder=encoder, generator=trainer.generator, judge=judge, code_stats_=stats, val=val,
                num_classes=num_classes, out_dir=out / f"{name}-seed{seed}", log=lambda m: None)
    q["steps"] = trainer.step_count
    return q


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--factors", default=",".join(FACTORS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--seconds", type=float, default=240.0, help="wall-clock budget of G training per variant")
    p.add_argument("--g-steps", type=int, default=0, help="G steps per variant instead of --seconds (0: use --seconds)")
    p.add_argument("--out", default="runs/quality-study")
    p.add_argument("--list", action="store_true")
    a = p.parse_args(argv)
    if a.list:
        for k, (g, m, *setup) in FACTORS.items():
            print(f"{k:18s} gan {g}  am {m}" + (f"  setup {setup[0]}" if setup else ""))
        return
    names = [f for f in a.factors.split(",") if f]
    unknown = [f for f in names if f not in FACTORS]
    if unknown:
        sys.exit(f"error: unknown factor(s) {unknown}; valid: {', '.join(FACTORS)}")
    out = Path(a.out)
    base = preset_config("default", storage=str(out))
    results: dict[str, list[dict]] = {n: [] for n in names}
    groups: dict[tuple, list[str]] = {}  # variants that share data, E and judge
    for n in names:
        groups.setdefault(tuple(sorted(_setup(n).items())), []).append(n)
    for key, members in groups.items():
        setup = dict(key)
        image_size = setup.get("image_size", base.image_size)
        data = _data(base, out, setup)
        meta = read_meta(data)
        train = load_split(data, "train", image_size=image_size)
        val = load_split(data, "val", image_size=image_size)
        e_over = {k: setup[k] for k in ("dropout", "fc") if k in setup}
        for seed in (int(s) for s in a.seeds.split(",")):
            torch.manual_seed(seed)
            encoder = build_caffenet(base.classifier, num_classes=meta.num_classes, image_size=image_size, **e_over)
            e_m = train_classifier(encoder, train, val, epochs=base.classifier_epochs, lr=base.classifier_lr,
                                   batch_size=base.batch_size, seed=seed)
            encoder.eval()
            torch.manual_seed(base.judge_seed + seed)
            judge = Judge(num_classes=meta.num_classes, image_size=image_size)
            j_m = train_classifier(judge, train, val, epochs=base.judge_epochs, lr=base.judge_lr,
                                   batch_size=base.batch_size, seed=base.judge_seed + seed)
            judge.eval()
            print(f"setup {setup or 'baseline'} seed {seed}: E val {e_m['val_acc']:.3f}, judge val {j_m['val_acc']:.3f}",
                  flush=True)
            stats = code_stats(encoder, base.gan.layer, tensor_batches(train[0], batch_size=256))
            for n in members:
                g, m = FACTORS[n][:2]
                q = run_variant(n, g, m, encoder=encoder, judge=judge, stats=stats, train=train, val=val,
                                num_classes=meta.num_classes, seconds=a.seconds, seed=seed, out=out,
                                g_steps=a.g_steps, image_size=image_size)
                q.update(e_val_acc=e_m["val_acc"], judge_val_acc=j_m["val_acc"])
                results[n].append(q)
                print(n, seed, json.dumps({k: round(q[k], 3) for k in METRICS}), flush=True)
    print("\n| variant | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for n in names:
        cells = []
        for k in METRICS:
            v = np.array([r[k] for r in results[n]], dtype=float)
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    (out / "study.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
