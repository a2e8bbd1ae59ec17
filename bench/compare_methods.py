"""DGN-AM against pixel-space AM baselines on the same units of the same classifier — one table, one figure.

    python flows/train.py --storage runs/default          # once: a trained run
    python bench/compare_methods.py --run runs/default     # the table; figure at runs/default/compare-methods.png
    python bench/compare_methods.py --run runs/default --starts 2 --hidden 8 --steps 100

For every method (DGN-AM; pixel AM with L2 decay; total variation; jitter +
blur + small-value clipping; Fourier + decorrelated colour + transforms) on all
fc8 units × starts and a sample of hidden units (fc6, conv5 centre): median
activation ratio to the best real val image, recognisability by the
independent judge (fc8 units), realism (Fréchet distance in judge features to
real val images; lower is better) and wall time per unit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torchvision  # noqa: E402

from dgn.am import PIXEL_METHODS, AMConfig, PixelAMConfig, TargetNet, dgn_am, pixel_am  # noqa: E402
from dgn.data import load_split  # noqa: E402
from dgn.metrics import activation_ratio, best_real_activations, realism  # noqa: E402
from dgn.metrics.judge import judge_predictions  # noqa: E402
from dgn.pipeline import DEFAULT_AM  # noqa: E402
from dgn.train import load_classifier, load_generator, load_judge, tensor_batches  # noqa: E402


def _last(folder: Path) -> str:
    files = sorted(folder.glob("epoch=*.pt"))
    if not files:
        sys.exit(f"error: no checkpoints in {folder}; run `python flows/train.py --storage {folder.parents[1]}` first")
    return str(files[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/default", help="storage of a finished flows/train.py run")
    p.add_argument("--starts", type=int, default=3, help="starts (seeds) per fc8 unit")
    p.add_argument("--hidden", type=int, default=8, help="hidden units sampled from fc6 and from conv5")
    p.add_argument("--steps", type=int, default=200)
    a = p.parse_args(argv)
    run = Path(a.run)
    encoder, ck = load_classifier(_last(run / "classifier"))
    judge = load_judge(str(run / "judge" / "judge.pt"))
    gens = sorted((run / "generator").glob("*/epoch=*.pt"))
    if not gens:
        sys.exit(f"error: no generator checkpoints under {run / 'generator'}")
    G, gck = load_generator(str(gens[-1]))
    data = ck.get("data") or str(run / "data")
    xv, _ = load_split(data, "val", image_size=encoder.config.image_size)
    xvf = xv.float() / 255
    target = TargetNet.caffenet(encoder)
    K = encoder.config.num_classes
    g = torch.Generator().manual_seed(0)
    hidden = [f"fc6:{int(i)}" for i in torch.randperm(encoder.config.fc[0], generator=g)[: a.hidden]]
    hidden += [f"conv5:{int(i)}" for i in torch.randperm(encoder.config.channels[4], generator=g)[: a.hidden]]
    class_units = [f"fc8:{k}" for k in range(K)]
    best_cls = best_real_activations(target, class_units, tensor_batches(xv, batch_size=256))
    best_hid = best_real_activations(target, hidden, tensor_batches(xv, batch_size=256))

    methods = ["dgn-am", *PIXEL_METHODS]
    rows, figure = [], []
    for m in methods:
        t = time.time()
        imgs, acts = [], []
        for s in range(a.starts):
            units = class_units + (hidden if s == 0 else [])
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
        fd = realism(judge, cls_imgs, xvf)
        rows.append((m, ratio.nanmedian().item(), recog, fd, secs))
        figure.append(imgs[0])
        print(f"{m:12s} ratio {rows[-1][1]:.2f}  recognisable {recog:.0%}  FD {fd:.1f}  {secs * 1000:.0f} ms/unit", flush=True)

    print("\n| method | median activation ratio | recognisability (fc8) | realism FD (lower better) | s per unit |")
    print("|---|---|---|---|---|")
    for m, r, rc, fd, s in rows:
        print(f"| {m} | {r:.2f} | {rc:.0%} | {fd:.1f} | {s:.3f} |")
    out = run / "compare-methods.png"
    torchvision.utils.save_image(torch.cat(figure).clamp(0, 1), str(out), nrow=K, padding=2, pad_value=1.0)
    print(f"figure (a row per method: {', '.join(methods)}; a column per fc8 unit): {out}")


if __name__ == "__main__":
    main()
