"""Shape or colour? What the classifier E and the judge read in the embedded dataset's images.

    python flows/train.py --storage runs/default        # once: a trained run
    python bench/cue_conflict.py --run runs/default
    python bench/cue_conflict.py --run runs/default --n 20 --json runs/default/cue-conflict.json

The embedded classes each have their own hue, so a classifier may read a
class from colour alone. That decides what DGN-AM can show: the preferred
input of a unit that reads colour is a blob of that colour, and the judge
names such a blob correctly only where colour alone tells the class. On
images drawn with the dataset's own renderer (fresh random draws, not the
val set), for E (the run's last classifier checkpoint) and for the judge:

- **as trained**: the class's shape in the class's colour (sanity: ≈ val accuracy);
- **shape alone**: the class's shape in grey;
- **colour alone**: a disc (the *circle* class's shape) in each class's colour —
  what a DGN-AM image of a colour unit looks like; per class, the share the net
  reads as that class is the ceiling on recognisability for such images;
- **cue conflict** (Geirhos et al. 2019): the shape of class a in the colour
  of class b ≠ a; the share of decisions that follow the shape, the colour,
  or neither; shape bias = shape / (shape + colour).

Then, with the run's last G, the DGN-AM image of every fc8 unit × ``--starts``
(default settings): the hue of its most saturated pixels against the class's
hue — where the judge misreads a colour blob, is the hue off?
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dgn.data import CLASS_NAMES, render  # noqa: E402
from dgn.metrics.judge import judge_predictions  # noqa: E402
from dgn.train import load_classifier, load_judge  # noqa: E402

CIRCLE = CLASS_NAMES.index("circle")


def images(specs: list[tuple[int, int, str]], size: int, seed: int) -> torch.Tensor:
    """(shape class, hue class, colour mode) per image → float (N, 3, size, size) in [0, 1]."""
    rng = np.random.default_rng(seed)
    arr = np.stack([render(shape, rng, size, colour=mode, hue_class=hue) for shape, hue, mode in specs])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


def measure(nets: dict, n: int, size: int, seed: int) -> dict:
    K = len(CLASS_NAMES)
    sets = {
        "as trained": [(k, k, "class") for k in range(K) for _ in range(n)],
        "shape alone": [(k, k, "grey") for k in range(K) for _ in range(n)],
        "colour alone": [(CIRCLE, k, "class") for k in range(K) for _ in range(n)],
        "cue conflict": [(a, b, "class") for a in range(K) for b in range(K) if a != b for _ in range(max(n // 5, 1))],
    }
    out: dict = {}
    for i, (name, specs) in enumerate(sets.items()):
        x = images(specs, size, seed + i)
        shape = torch.tensor([s for s, _, _ in specs])
        hue = torch.tensor([h for _, h, _ in specs])
        for net, model in nets.items():
            pred, _ = judge_predictions(model, x)
            r = out.setdefault(net, {})
            if name == "cue conflict":
                s, c = (pred == shape).float().mean().item(), (pred == hue).float().mean().item()
                r[name] = {"shape": s, "colour": c, "neither": 1 - s - c, "shape_bias": s / max(s + c, 1e-9)}
            else:
                target = hue if name == "colour alone" else shape
                hit = (pred == target).float().view(K, n)
                r[name] = {"accuracy": hit.mean().item(),
                           "per_class": {CLASS_NAMES[k]: hit[k].mean().item() for k in range(K)}}
    return out


def image_hue(x: torch.Tensor) -> torch.Tensor:
    """Circular mean hue in [0, 1) of each image's 15% most saturated pixels, weighted by saturation; (N,)."""
    mx, mn = x.max(1).values, x.min(1).values
    sat = (mx - mn) / mx.clamp_min(1e-6)  # (N, H, W)
    r, g, b = x.unbind(1)
    ang = torch.atan2(np.sqrt(3) * (g - b), 2 * r - g - b)  # hue angle (hexcone approximation)
    flat_s, flat_a = sat.flatten(1), ang.flatten(1)
    k = max(1, int(0.15 * flat_s.shape[1]))
    top_s, idx = flat_s.topk(k, dim=1)
    a = flat_a.gather(1, idx)
    z = (top_s * torch.exp(1j * a)).sum(1)
    return (torch.angle(z) / (2 * np.pi)) % 1


def hue_error(h: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Signed circular distance from hue h to class k's base hue k/K, in class spacings (±0.5 = halfway to a neighbour)."""
    K = len(CLASS_NAMES)
    return ((h - k / K + 0.5) % 1 - 0.5) * K


def am_hues(run: Path, encoder, judge, starts: int, figure: str = "") -> dict:
    from dgn.am import AMConfig, TargetNet, dgn_am
    from dgn.pipeline import DEFAULT_AM
    from dgn.train import load_generator

    gens = sorted((run / "generator").glob("*/epoch=*.pt"))
    if not gens:
        return {}
    G, gck = load_generator(str(gens[-1]))
    K = len(CLASS_NAMES)
    units = [f"fc8:{k}" for _ in range(starts) for k in range(K)]
    res = dgn_am(G, TargetNet.caffenet(encoder), units, code_stats=gck["code_stats"], config=AMConfig(**DEFAULT_AM))
    x = res.images.float().clamp(0, 1)
    cls = torch.arange(K).repeat(starts)
    err = hue_error(image_hue(x), cls)
    pred, _ = judge_predictions(judge, x)
    hit = pred == cls
    if figure:  # a row per unit, a column per start
        import torchvision

        torchvision.utils.save_image(x.view(starts, K, *x.shape[1:]).transpose(0, 1).flatten(0, 1), figure,
                                     nrow=starts, padding=2, pad_value=1.0)
    per_unit = {}
    for k in range(K):
        m = cls == k
        per_unit[CLASS_NAMES[k]] = {"recognised": hit[m].float().mean().item(), "hue_error": err[m].mean().item(),
                                    "judge_says": [CLASS_NAMES[int(i)] for i in pred[m]]}
    return {"generator": str(gens[-1]), "recognisability": hit.float().mean().item(),
            "mean_abs_hue_error_recognised": err[hit].abs().mean().item() if hit.any() else float("nan"),
            "mean_abs_hue_error_missed": err[~hit].abs().mean().item() if (~hit).any() else float("nan"),
            "per_unit": per_unit}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a flows/train.py storage folder (classifier/ and judge/ inside)")
    p.add_argument("--n", type=int, default=50, help="images per class in each set (cue conflict: n/5 per pair)")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--json", default="", help="also write the figures here")
    p.add_argument("--starts", type=int, default=5, help="DGN-AM starts per fc8 unit (0: skip the DGN-AM part)")
    p.add_argument("--figure", default="", help="save the DGN-AM images here (PNG, a row per fc8 unit)")
    a = p.parse_args(argv)
    run = Path(a.run)
    cks = sorted((run / "classifier").glob("epoch=*.pt"))
    if not cks or not (run / "judge" / "judge.pt").is_file():
        sys.exit(f"error: {run} has no classifier/epoch=*.pt or judge/judge.pt; run `python flows/train.py "
                 f"--storage {run}` first")
    if a.n < 5:
        sys.exit(f"error: --n {a.n} is too small; use 5 or more images per class")
    encoder, _ = load_classifier(str(cks[-1]))
    judge = load_judge(str(run / "judge" / "judge.pt"))
    res = measure({"E": encoder.eval(), "judge": judge.eval()}, a.n, encoder.config.image_size, a.seed)

    print("| net | as trained | shape alone | colour alone | cue conflict: shape / colour / neither | shape bias |")
    print("|---|---|---|---|---|---|")
    for net, r in res.items():
        cc = r["cue conflict"]
        print(f"| {net} | {r['as trained']['accuracy']:.2f} | {r['shape alone']['accuracy']:.2f} | "
              f"{r['colour alone']['accuracy']:.2f} | {cc['shape']:.2f} / {cc['colour']:.2f} / {cc['neither']:.2f} | "
              f"{cc['shape_bias']:.2f} |")
    print("\ncolour alone, per class (a disc in the class's colour read as the class):")
    print("| class | " + " | ".join(res) + " |\n|---|" + "---|" * len(res))
    for c in CLASS_NAMES:
        print(f"| {c} | " + " | ".join(f"{r['colour alone']['per_class'][c]:.2f}" for r in res.values()) + " |")
    if a.starts > 0:
        am = am_hues(run, encoder, judge, a.starts, a.figure)
        res["dgn_am"] = am
        if am:
            print(f"\nDGN-AM images ({am['generator']}), {a.starts} starts per fc8 unit: recognisability "
                  f"{am['recognisability']:.2f}; mean |hue error| (class spacings) {am['mean_abs_hue_error_recognised']:.2f} "
                  f"where the judge read the class, {am['mean_abs_hue_error_missed']:.2f} where it did not")
            print("| unit | recognised | mean hue error (class spacings; + toward the next class) | judge says |\n|---|---|---|---|")
            for c, u in am["per_unit"].items():
                print(f"| {c} | {u['recognised']:.2f} | {u['hue_error']:+.2f} | {', '.join(u['judge_says'])} |")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
