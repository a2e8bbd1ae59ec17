"""The generator-quality study: one factor at a time against a fixed baseline, over seeds.

    python bench/quality_study.py                                   # every factor, 3 seeds, 500 G steps each
    python bench/quality_study.py --factors baseline,adversarial --seeds 0,1,2 --g-steps 600
    python bench/quality_study.py --list                            # the factors and what they change
    python bench/quality_study.py --dry-run                         # 4 factors, 1 seed, 2 steps of everything

The baseline is the product's defaults (``GANConfig()``, ``AMConfig()``). For each seed the job's own
classifier and judge stages train E and the judge once per setup (dgn.train.loops.fit_local, in this
process; a resumed study reuses them from --out); then, for each variant, the job's G stage trains G for
``--g-steps`` steps (a step budget: fair on a busy machine) and the job's class-unit evaluation
(dgn.quality.ClassUnitEval, the independent judge, never E) measures its accuracy on G(E(x_val)), DGN-AM
recognisability of every fc8 unit × 5 starts, the median activation ratio and realism (FD and precision in
judge features, beside the real-vs-real floor at the same N). Prints a markdown table of the mean and its
spread over seeds, and writes montages per variant under --out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from common import choose, parse_args

from dgn.am import AMConfig
from dgn.data import load_split, read_meta
from dgn.errors import DGNError
from dgn.job import preset_config
from dgn.job.stages import finished, prepare_data, stage_configs
from dgn.metrics import fmt_interval, seed_spread
from dgn.quality import ClassUnitEval, write_montages
from dgn.storage import RunLayout
from dgn.train import load_checkpoint, load_classifier, load_generator, load_judge
from dgn.train.gan import GANConfig
from dgn.train.loops import fit_local

# variant name → (GANConfig changes, AMConfig changes[, setup changes]): one factor each against the baseline.
# Setup changes alter E's input or E, so such a variant gets its own E and judge per seed: image_size (the
# dataset resized), and E's dropout / fc widths.
_G = GANConfig().generator_overrides
FACTORS = {
    "baseline": ({}, {}),  # GANConfig(): contrast image loss 0.1, pool5 comparator 1.0 (chosen 2026-12-02, seed 0)
    # the earlier default and the variants the choice was made among (development set, seed 0, 500 steps)
    "old-default": ({"image_loss": "pixel", "w_image": 1.0, "w_feature": 0.1, "feature_layer": "conv3"}, {}),
    "pixel-conv3-led": ({"image_loss": "pixel", "feature_layer": "conv3"}, {}),
    "pixel-conv5-led": ({"image_loss": "pixel", "feature_layer": "conv5"}, {}),
    "pixel-pool5-led": ({"image_loss": "pixel"}, {}),
    "pixel-fc7-led": ({"image_loss": "pixel", "feature_layer": "fc7"}, {}),
    "pool5-only": ({"w_image": 0.0}, {}),
    "contrast-0.3": ({"w_image": 0.3}, {}),  # the contrast image term stronger against the pool5 comparator
    "contrast-led": ({"w_image": 1.0}, {}),
    "faithful-losses": ({"image_loss": "pixel", "w_image": 1.0, "w_feature": 0.1, "w_adv": 0.01, "warmup_steps": 0},
                        {}),
    "adversarial": ({"w_adv": 0.01}, {}),
    "adversarial-0.1": ({"w_adv": 0.1}, {}),  # D ten times stronger: its share of G's loss at ~0.07 vs pool5's ~0.17
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
    "32px": ({}, {}, {"image_size": 32}),
    "E-dropout-0.5": ({}, {}, {"dropout": 0.5}),  # Caffe's; the small preset has none
    "E-wide-fc": ({}, {}, {"fc": (1024, 1024)}),
}
METRICS = ("recon_encoder_acc", "recon_judge_acc", "am_recognisability", "am_median_activation_ratio",
           "am_realism_fd", "am_realism_precision", "steps")
HEADER = "| variant | " + " | ".join(METRICS) + " |"
# the job's sizes for the study; --dry-run: a few images, 2 steps of every stage, 1 AM start (of 2 steps)
SIZES = {"am_starts": 5}
DRY_RUN_SIZES = {"n_train": 64, "n_val": 40, "batch_size": 16, "classifier_steps": 2, "judge_steps": 2, "am_starts": 1,
                 "learned_factor": 0.0}


def _setup(name: str) -> dict:
    return FACTORS[name][2] if len(FACTORS[name]) > 2 else {}


def _fit(stages: list, *, threads: int, what: str) -> None:
    """The job's own loops in this process; a stage that stops (diverged, did not learn) ends the study."""
    stopped: list[str] = []
    fit_local(stages, on_event=lambda e: stopped.append(e["diverged"]) if "diverged" in e else None, threads=threads)
    if stopped:
        raise DGNError(f"{what}: {stopped[0]}")


def train_base(data: str, meta, storage: Path, *, setup: dict, seed: int, sizes: dict, threads: int):
    """E and the judge of one (setup, seed) by the job's classifier and judge stages; (E, judge, E acc, judge acc)."""
    job = preset_config("default", data=data, storage=str(storage), seed=seed, judge_seed=1234 + seed,
                        image_size=setup.get("image_size", 64), classifier_checkpoints=1, judge_checkpoints=1,
                        atlas_units="none", **sizes)
    stages = stage_configs(job, data, meta, stages=("classifier", "judge"))
    e_over = {k: setup[k] for k in ("dropout", "fc") if k in setup}
    for stage, c in stages:
        if stage == "classifier" and e_over:
            c["arch_overrides"] = e_over
    _fit([(s, c) for s, c in stages if not finished(job, s, c)], threads=threads, what=f"setup {setup} seed {seed}")
    layout = RunLayout(str(storage))
    e_uri = layout.checkpoint("classifier", 1)
    encoder, ck = load_classifier(e_uri)
    j_acc = load_checkpoint(layout.checkpoint("judge", 1), "judge")["metrics"]["val_acc"]
    return e_uri, encoder, load_judge(layout.judge), ck["metrics"]["val_acc"], j_acc


def run_variant(name: str, ev: ClassUnitEval, *, data: str, meta, e_uri: str, image_size: int, seed: int,
                g_steps: int, sizes: dict, am_base: dict, threads: int, out: Path) -> dict:
    """G of one variant by the job's G stage on the fixed E, then the job's class-unit evaluation."""
    gan_over, am_over = FACTORS[name][:2]
    storage = out / f"{name}-seed{seed}"
    job = preset_config("default", data=data, storage=str(storage), seed=seed, image_size=image_size,
                        encoder_weights=e_uri, gan=gan_over, am={**am_base, **am_over}, gan_steps=g_steps,
                        gan_checkpoints=1, atlas_units="none", **sizes)
    stages = stage_configs(job, data, meta, stages=("generator",))
    _fit([(s, c) for s, c in stages if not finished(job, s, c)], threads=threads, what=f"{name} seed {seed}")
    generator, gck = load_generator(RunLayout(str(storage)).checkpoints(RunLayout.generator_dir(job.gan.layer))[-1])
    ev.am = job.am
    q, images = ev(generator, job.gan.layer, gck["code_stats"])
    write_montages(storage, ev, generator, job.gan.layer, images)
    return {**q, "steps": float(gck["step"])}


def cell(runs: list[dict], k: str) -> str:
    mean, spread = seed_spread([r[k] for r in runs])
    s = fmt_interval(mean, spread=spread, n=len(runs), digits=3)
    if k == "am_realism_fd":  # read the FD only against the real-vs-real floor at the same N
        s += f" (floor {seed_spread([r['am_realism_floor_fd'] for r in runs])[0]:.3f}, N={runs[0]['am_realism_n']:.0f})"
    return s


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--factors", default=",".join(FACTORS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--g-steps", type=int, default=500, help="G's optimisation steps per variant (the job's default)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="runs/quality-study")
    p.add_argument("--list", action="store_true")
    a = parse_args(p, argv, factors="baseline,adversarial,am-lr-1,E-dropout-0.5", seeds="0", g_steps=2, threads=1,
                   out=lambda: tempfile.mkdtemp(prefix="dgn-bench-study-"))
    if a.list:
        for k, (g, m, *setup) in FACTORS.items():
            print(f"{k:18s} gan {g}  am {m}" + (f"  setup {setup[0]}" if setup else ""))
        return
    sizes, am_base = (DRY_RUN_SIZES, {"steps": 2}) if a.dry_run else (SIZES, {})
    names = choose(a.factors, FACTORS, "factor")
    out = Path(a.out)
    data_sizes = {k: sizes[k] for k in ("n_train", "n_val") if k in sizes}
    data = prepare_data(preset_config("default", storage=str(out), **data_sizes))  # one dataset for every setup
    meta = read_meta(data)
    results: dict[str, list[dict]] = {n: [] for n in names}
    groups: dict[tuple, list[str]] = {}  # variants that share E and the judge
    for n in names:
        groups.setdefault(tuple(sorted(_setup(n).items())), []).append(n)
    for key, members in groups.items():
        setup = dict(key)
        image_size = setup.get("image_size", 64)
        xv, yv = load_split(data, "val", image_size=image_size)
        tag = "-".join(f"{k}{v}" for k, v in key) or "baseline"
        for seed in (int(s) for s in a.seeds.split(",")):
            torch.manual_seed(seed)
            e_uri, encoder, judge, e_acc, j_acc = train_base(data, meta, out / "base" / f"{tag}-seed{seed}",
                                                             setup=setup, seed=seed, sizes=sizes, threads=a.threads)
            print(f"setup {setup or 'baseline'} seed {seed}: E val {e_acc:.3f}, judge val {j_acc:.3f}", flush=True)
            ev = ClassUnitEval(encoder=encoder, judge=judge, val=xv, val_labels=yv, num_classes=meta.num_classes,
                               am=AMConfig(), starts=sizes["am_starts"])
            for n in members:
                q = run_variant(n, ev, data=data, meta=meta, e_uri=e_uri, image_size=image_size, seed=seed,
                                g_steps=a.g_steps, sizes=sizes, am_base=am_base, threads=a.threads, out=out)
                q.update(e_val_acc=e_acc, judge_val_acc=j_acc)
                results[n].append(q)
                print(n, seed, json.dumps({k: round(q[k], 3) for k in METRICS}), flush=True)
    print(f"\n{HEADER}\n|---|" + "---|" * len(METRICS))
    for n in names:
        print(f"| {n} | " + " | ".join(cell(results[n], k) for k in METRICS) + " |")
    (out / "study.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
