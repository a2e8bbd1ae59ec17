"""DGN-AM against pixel-space AM baselines on the same units of the same classifier — one table, one figure.

    python flows/train.py --storage runs/default          # once: a trained run
    python bench/compare_methods.py --run runs/default     # the table; figure at runs/default/compare-methods.png
    python bench/compare_methods.py --run runs/default --starts 2 --hidden 8 --steps 100

For every method (DGN-AM; pixel AM with L2 decay; total variation; jitter +
blur + small-value clipping; Fourier + decorrelated colour + transforms) on all
fc8 units × starts and a sample of hidden units (fc6, conv5 centre): median
activation ratio to the best real val image, recognisability by the
independent judge (fc8 units), realism (Fréchet distance in judge features to
real val images; lower is better), realism precision (the share of images that
lie inside the k-NN manifold of real judge features, Kynkäänniemi et al. 2019;
higher is better — unlike the FD it cannot be won by grey images near the mean
of the real features; a last row gives held-out real images as the ceiling)
and wall time per unit.

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torchvision  # noqa: E402

from dgn.am import PIXEL_METHODS, AMConfig, PixelAMConfig, TargetNet, as_objective, dgn_am, pixel_am  # noqa: E402
from dgn.data import load_split  # noqa: E402
from dgn.metrics import (activation_ratio, best_real_activations, frechet_distance, judge_features,  # noqa: E402
                         manifold_precision, recognisability)
from dgn.metrics.judge import judge_predictions  # noqa: E402
from dgn.pipeline import DEFAULT_AM  # noqa: E402
from dgn.train import load_classifier, load_generator, load_judge, tensor_batches  # noqa: E402


MANIFOLD = 800  # val images that span the real manifold; the rest are the held-out reference


def _last(folder: Path) -> str:
    files = sorted(folder.glob("epoch=*.pt"))
    if not files:
        sys.exit(f"error: no checkpoints in {folder}; run `python flows/train.py --storage {folder.parents[1]}` first")
    return str(files[-1])


def lucent_am(target: TargetNet, units: list[str], *, image_size: int, steps: int, seed: int):
    """Lucent's ``render_vis`` per unit with its defaults; returns (images (N, 3, S, S) in [0, 1], reported acts)."""
    from lucent.optvis import objectives as lobj, param, render

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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/default", help="storage of a finished flows/train.py run")
    p.add_argument("--starts", type=int, default=3, help="starts (seeds) per fc8 unit")
    p.add_argument("--hidden", type=int, default=8, help="hidden units sampled from fc6 and from conv5")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lucent", default="auto",
                   help="folder where torch-lucent is installed (see above), 'auto' (if importable) or 'off'")
    p.add_argument("--lucent-steps", type=int, default=512, help="Lucent's own default")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the table and figure to MLflow")
    a = p.parse_args(argv)
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
    run = Path(a.run)
    encoder, ck = load_classifier(_last(run / "classifier"))
    judge = load_judge(str(run / "judge" / "judge.pt"))
    gens = sorted((run / "generator").glob("*/epoch=*.pt"))
    if not gens:
        sys.exit(f"error: no generator checkpoints under {run / 'generator'}")
    G, gck = load_generator(str(gens[-1]))
    data = ck.get("data") or str(run / "data")
    xv, yv = load_split(data, "val", image_size=encoder.config.image_size)
    xvf = xv.float() / 255
    val_feats = judge_features(judge, xvf)  # once: every method's FD is against all val images
    real_feats = val_feats[:MANIFOLD]  # the real manifold for realism precision
    target = TargetNet.caffenet(encoder)
    K = encoder.config.num_classes
    g = torch.Generator().manual_seed(0)
    hidden = [f"fc6:{int(i)}" for i in torch.randperm(encoder.config.fc[0], generator=g)[: a.hidden]]
    hidden += [f"conv5:{int(i)}" for i in torch.randperm(encoder.config.channels[4], generator=g)[: a.hidden]]
    class_units = [f"fc8:{k}" for k in range(K)]
    best_cls = best_real_activations(target, class_units, tensor_batches(xv, batch_size=256))
    best_hid = best_real_activations(target, hidden, tensor_batches(xv, batch_size=256))

    methods = ["dgn-am", *PIXEL_METHODS] + (["lucent (external)"] if use_lucent else [])
    rows, figure = [], []
    for m in methods:
        t = time.time()
        imgs, acts = [], []
        for s in range(a.starts):
            units = class_units + (hidden if s == 0 else [])
            if m.startswith("lucent"):
                r_imgs, r_acts = lucent_am(target, units, image_size=encoder.config.image_size, steps=a.lucent_steps,
                                           seed=s)
                imgs.append(r_imgs[:K])
                acts.append(r_acts)
                continue
            if m == "dgn-am":
                r = dgn_am(G, target, units, code_stats=gck["code_stats"],
                           config=AMConfig(**{**DEFAULT_AM, "steps": a.steps, "seed": s}))
            else:
                r = pixel_am(target, units, image_size=encoder.config.image_size,
                             config=PixelAMConfig(method=m, steps=a.steps, seed=s))
            imgs.append(r.images[:K])
            acts.append(r.activations)
        n_units = a.starts * K + len(hidden)
        secs = (time.time() - t) / n_units
        cls_imgs = torch.cat(imgs)
        cls_acts = torch.cat([x[:K] for x in acts])
        ratio = torch.cat([activation_ratio(cls_acts, best_cls.repeat(a.starts)),
                           activation_ratio(acts[0][K:], best_hid)])
        labels, _ = judge_predictions(judge, cls_imgs)
        recog = (labels == torch.arange(K).repeat(a.starts)).float().mean().item()
        feats = judge_features(judge, cls_imgs)
        fd, prec = frechet_distance(feats, val_feats), manifold_precision(feats, real_feats)
        rows.append((m, ratio.nanmedian().item(), recog, fd, prec, secs))
        figure.append(imgs[0])
        print(f"{m:12s} ratio {rows[-1][1]:.2f}  recognisable {recog:.0%}  FD {fd:.1f}  precision {prec:.2f}  "
              f"{secs * 1000:.0f} ms/unit", flush=True)
    # the ceiling: real val images the manifold was not built from
    held = xvf[MANIFOLD:]
    ref = ("real val images (held out)", float("nan"), recognisability(judge, held, yv[MANIFOLD:]),
           frechet_distance(val_feats[MANIFOLD:], val_feats), manifold_precision(val_feats[MANIFOLD:], real_feats),
           float("nan"))

    print("\n| method | median activation ratio | recognisability (fc8) | realism FD (lower better) "
          "| realism precision (higher better) | s per unit |")
    print("|---|---|---|---|---|---|")
    for m, r, rc, fd, pr, s in [*rows, ref]:
        print(f"| {m} | {r:.2f} | {rc:.0%} | {fd:.1f} | {pr:.2f} | {s:.3f} |".replace("| nan |", "| — |"))
    out = run / "compare-methods.png"
    torchvision.utils.save_image(torch.cat(figure).clamp(0, 1), str(out), nrow=K, padding=2, pad_value=1.0)
    print(f"figure (a row per method: {', '.join(methods)}; a column per fc8 unit): {out}")
    if not a.no_mlflow:
        from dgn.tracking import browse_hint, open_run

        table = [{"method": m, "median_activation_ratio": r, "recognisability_fc8": rc, "realism_fd": fd,
                  "realism_precision": pr, "seconds_per_unit": sec} for m, r, rc, fd, pr, sec in rows]
        with open_run(experiment="dgn-compare", run_name=f"compare-{run.name}-{int(time.time())}", resume=False,
                      params={"run": str(run), "starts": a.starts, "hidden": a.hidden, "steps": a.steps,
                              "lucent_steps": a.lucent_steps if use_lucent else "not installed"}) as mr:
            mr.log_table(table, "compare/methods.json")
            mr.log_artifact(out, "compare")
            for row in table:
                key = row["method"].split()[0].replace("+", "-")
                mr.log_metrics({f"{key}.ratio": row["median_activation_ratio"], f"{key}.recog": row["recognisability_fc8"],
                                f"{key}.fd": row["realism_fd"], f"{key}.precision": row["realism_precision"],
                                f"{key}.s_per_unit": row["seconds_per_unit"]})
        print(browse_hint())


if __name__ == "__main__":
    main()
