"""DGN-AM against pixel-space AM baselines on the same units of the same classifier — one table, one figure.

    python flows/train.py --storage runs/default          # once: a trained run
    python bench/compare_methods.py --run runs/default     # the table; figure at runs/default/compare-methods.png
    python bench/compare_methods.py --run runs/default --starts 2 --hidden 8 --steps 100
    python bench/compare_methods.py --dry-run               # a fresh tiny run, 1 start, 2 hidden units, 2 steps

For every method (DGN-AM; pixel AM with L2 decay; total variation; jitter +
blur + small-value clipping; Fourier + decorrelated colour + transforms) on all
fc8 units × starts and a sample of hidden units (fc6, conv5 centre), scored as
the job scores DGN-AM (dgn.quality.ClassUnitEval; the DGN-AM row *is* that
evaluation): median activation ratio to the best real val image (fc8 units,
and the hidden sample), recognisability by the independent judge (fc8 units),
realism in judge features at N = the fc8 images of the method — Fréchet
distance (lower is better) and precision (the share of images inside the k-NN
manifold of real judge features, Kynkäänniemi et al. 2019; higher is better,
and unlike the FD it cannot be won by grey images near the mean of the real
features), each beside its real-vs-real floor at the same N (docs/metrics.md)
— and wall time per unit. The judge's accuracy on real val images is the
recognisability ceiling.

External row: Lucent (greentfrapp/lucent, torch-lucent 0.1.8), its ``render_vis``
with its own defaults (Fourier-parameterised, colour-decorrelated image,
standard transforms, Adam 0.05, 512 steps), one unit at a time as its users
run it, on the same target and units. It pins kornia<=0.4.1 and test tools,
so install it beside the project rather than into it::

    pip install --target /tmp/lucent --no-deps torch-lucent 'kornia<=0.4.1' && pip install --target /tmp/lucent tqdm ipython
    python bench/compare_methods.py --run runs/default --lucent /tmp/lucent

The table, the figure and the settings are logged to MLflow (experiment
``dgn-compare``; tracking URI as everywhere: MLFLOW_TRACKING_URI, else ~/.dgn).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torchvision
from common import load_run, parse_args, precision_cell, realism_cell, tiny_run

from dgn.am import PIXEL_METHODS, AMConfig, PixelAMConfig, TargetNet, as_objective, dgn_am, pixel_am
from dgn.metrics import activation_ratio, best_real_activations, judge_features, judge_predictions, recognisability
from dgn.quality import ClassUnitEval
from dgn.train import tensor_batches

HEADER = ("| method | median activation ratio fc8 | hidden | recognisability (fc8) | realism FD (lower better) "
          "| realism precision (higher better) | s per unit |")


def lucent_am(target: TargetNet, units: list[str], *, image_size: int, steps: int, seed: int):
    """Lucent's ``render_vis`` per unit with its defaults; returns (images (N, 3, S, S) in [0, 1], reported acts)."""
    from lucent.optvis import objectives as lobj
    from lucent.optvis import param, render

    imgs = []
    for k, u in enumerate(units):
        layer, idx = u.split(":")
        # conv units: one channel at the centre (Lucent's `neuron`), like ours; fc units: the channel
        obj = lobj.neuron(layer, int(idx)) if layer.startswith("conv") else lobj.channel(layer, int(idx))
        torch.manual_seed(seed * 100_003 + k)
        out = render.render_vis(target.model, obj, param_f=lambda: param.image(image_size), thresholds=(steps,),
                                show_image=False, progress=False, preprocess=False, fixed_image_size=image_size)
        imgs.append(torch.from_numpy(out[-1]).permute(0, 3, 1, 2).float())  # (1, 3, S, S)
    images = torch.cat(imgs)
    with torch.no_grad():
        _, rep = target.values(images, [as_objective(u) for u in units])
    return images, rep


def class_unit_scores(ev: ClassUnitEval, images: torch.Tensor, activations: torch.Tensor) -> dict:
    """ClassUnitEval's figures for fc8 images another method made (start s of unit k at row s·K + k)."""
    labels, _ = judge_predictions(ev.judge, images)
    return {"am_recognisability": (labels == ev.intended).float().mean().item(),
            "am_median_activation_ratio": activation_ratio(activations, ev.best_real).nanmedian().item(),
            **ev.realism(judge_features(ev.judge, images))}


def other_method(m: str, ev: ClassUnitEval, hidden: list[str], *, image_size: int, steps: int, lucent_steps: int):
    """(fc8 images of every start, their activations, the hidden units' activations) of a pixel-space method."""
    imgs, acts, hid = [], [], None
    for s in range(ev.starts):
        units = ev.units + (hidden if s == 0 else [])
        if m.startswith("lucent"):
            r_imgs, r_acts = lucent_am(ev.target, units, image_size=image_size, steps=lucent_steps, seed=s)
        else:
            r = pixel_am(ev.target, units, image_size=image_size, config=PixelAMConfig(method=m, steps=steps, seed=s))
            r_imgs, r_acts = r.images, r.activations
        K = ev.num_classes
        imgs.append(r_imgs[:K])
        acts.append(r_acts[:K])
        hid = r_acts[K:] if s == 0 else hid
    return torch.cat(imgs), torch.cat(acts), hid


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/default", help="storage of a finished flows/train.py run")
    p.add_argument("--starts", type=int, default=3, help="starts (seeds) per fc8 unit")
    p.add_argument("--hidden", type=int, default=8, help="hidden units sampled from fc6 and from conv5")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lucent", default="auto",
                   help="folder where torch-lucent is installed (see above), 'auto' (if importable) or 'off'")
    p.add_argument("--lucent-steps", type=int, default=512, help="Lucent's own default")
    p.add_argument("--no-tracking", action="store_true", help="do not log the table and figure to MLflow")
    a = parse_args(p, argv, run=lambda: tiny_run("dgn-bench-compare-"), starts=1, hidden=1, steps=2, lucent="off")
    use_lucent = False
    if a.lucent != "off":
        if a.lucent != "auto":
            sys.path.insert(0, a.lucent)
        try:
            import lucent.optvis.render  # noqa: F401

            use_lucent = True
        except ImportError as e:
            if a.lucent != "auto":
                sys.exit(f"error: torch-lucent does not import from {a.lucent!r} ({e}); see --help for the install line")
    r = load_run(a.run)
    encoder, G, stats = r.encoder, r.generator, r.generator_ck["code_stats"]
    layer, size = r.generator_ck["config"]["layer"], encoder.config.image_size
    K = encoder.config.num_classes
    ev = ClassUnitEval(encoder=encoder, judge=r.judge, val=r.val, val_labels=r.val_labels, num_classes=K,
                       am=AMConfig(steps=a.steps), starts=a.starts)
    g = torch.Generator().manual_seed(0)
    hidden = [f"fc6:{int(i)}" for i in torch.randperm(encoder.config.fc[0], generator=g)[: a.hidden]]
    hidden += [f"conv5:{int(i)}" for i in torch.randperm(encoder.config.channels[4], generator=g)[: a.hidden]]
    best_hid = best_real_activations(ev.target, hidden, tensor_batches(r.val, batch_size=256))

    methods = ["dgn-am", *PIXEL_METHODS] + (["lucent (external)"] if use_lucent else [])
    rows, figure = [], []
    for m in methods:
        t = time.time()
        if m == "dgn-am":  # the job's own evaluation, and the hidden units from the same AM
            q, cls_imgs = ev(G, layer, stats, reconstruction=False)
            hid_acts = dgn_am(G, ev.target, hidden, code_stats=stats, config=ev.am).activations
        else:
            cls_imgs, cls_acts, hid_acts = other_method(m, ev, hidden, image_size=size, steps=a.steps,
                                                        lucent_steps=a.lucent_steps)
            q = class_unit_scores(ev, cls_imgs, cls_acts)
        q["hidden_median_activation_ratio"] = activation_ratio(hid_acts.float(), best_hid).nanmedian().item()
        q["seconds_per_unit"] = (time.time() - t) / (a.starts * K + len(hidden))
        rows.append((m, q))
        figure.append(cls_imgs[:K])
        print(f"{m:12s} ratio fc8 {q['am_median_activation_ratio']:.2f} hidden "
              f"{q['hidden_median_activation_ratio']:.2f}  recognisable {q['am_recognisability']:.0%}  "
              f"FD {realism_cell(q)}  precision {precision_cell(q)}  {q['seconds_per_unit'] * 1000:.0f} ms/unit",
              flush=True)

    print(f"\n{HEADER}\n|---|---|---|---|---|---|---|")
    for m, q in rows:
        print(f"| {m} | {q['am_median_activation_ratio']:.2f} | {q['hidden_median_activation_ratio']:.2f} | "
              f"{q['am_recognisability']:.0%} | {realism_cell(q)} | {precision_cell(q)} | "
              f"{q['seconds_per_unit']:.3f} |")
    ceiling = recognisability(r.judge, ev.val_float, r.val_labels)
    print(f"real val images: the judge recognises {ceiling:.0%} (the recognisability ceiling); each realism figure's "
          "floor is real val images against real val images at the same N")
    out = r.storage / "compare-methods.png"
    torchvision.utils.save_image(torch.cat(figure).clamp(0, 1), str(out), nrow=K, padding=2, pad_value=1.0)
    print(f"figure (a row per method: {', '.join(methods)}; a column per fc8 unit): {out}")
    if not a.no_tracking:
        from dgn.tracking import browse_hint, open_run

        keys = ("am_median_activation_ratio", "hidden_median_activation_ratio", "am_recognisability",
                "am_realism_n", "am_realism_fd", "am_realism_floor_fd", "am_realism_precision",
                "am_realism_floor_precision", "seconds_per_unit")
        table = [{"method": m, **{k: q[k] for k in keys}} for m, q in rows]
        with open_run(experiment="dgn-compare", run_name=f"compare-{r.storage.name}-{int(time.time())}", resume=False,
                      params={"run": str(r.storage), "starts": a.starts, "hidden": a.hidden, "steps": a.steps,
                              "lucent_steps": a.lucent_steps if use_lucent else "not installed"}) as mr:
            mr.log_table(table, "compare/methods.json")
            mr.log_artifact(out, "compare")
            for row in table:
                key = row["method"].split()[0].replace("+", "-")
                mr.log_metrics({f"{key}.{k.removeprefix('am_')}": row[k] for k in keys})
        print(browse_hint())


if __name__ == "__main__":
    main()
