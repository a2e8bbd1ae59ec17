"""Shape or colour? What the classifier E and the judge read in a synthetic dataset's images.

    python flows/train.py --storage runs/default        # once: a trained run (the embedded default, kind shapes)
    python bench/cue_conflict.py --run runs/default
    python bench/cue_conflict.py --run runs/hues --kind hues --n 20 --json runs/hues/cue-conflict.json
    python bench/cue_conflict.py --dry-run                # seconds: untrained nets at 32 px, every set drawn

The preferred input DGN-AM shows for a class unit is whatever that unit reads: for a net that reads colour (the
earlier ``hues`` data gave each class its own hue, and E's and the judge's shape bias here was 0.05 / 0.02) it
is a blob of that colour, which only a colour-reading judge names. On images drawn with the dataset's own
renderer (fresh draws, not the val set), for E (the run's last classifier checkpoint) and for the judge:

- **as trained**: the class's silhouette as in training (sanity: ≈ val accuracy);
- **shape alone**: the silhouette in grey on a flat grey of contrasting luminance: no colour, no pattern;
- **colour alone**: a disc in class k's colours of the hue code (``hues``: base hue k/10, muted background):
  the share read as k is what colour alone carries;
- **colour conflict** (Geirhos et al. 2019, with colour as the competing cue): the silhouette of class a in the
  hue-code colours of class b ≠ a; the share of decisions that follow a (shape), b (colour) or neither;
  **shape bias = shape / (shape + colour)**.

The competing cue is the *hue code* for every kind. Where colour is drawn independently of the class (every
kind but ``hues``; tests/data/test_synthetic.py checks it), "the colours of class b" in the dataset's own sense
is the same distribution as those of class a, so a conflict with them cannot be built; the hue code is the one
colour-to-class rule a net could have picked up, and the one the earlier default taught. (A shape-vs-texture
conflict, a's silhouette filled with small copies of b, was tried and dropped: these datasets have no texture,
both nets read ~80% of such figures as neither class, and glyph strokes cannot hold the copies.)

Then, with the run's last G (if it has one), the DGN-AM image of every fc8 unit × ``--starts`` and whether the
judge names it (with the hue error to the class's hue for ``hues``).
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

from dgn.data import shapes, synthetic  # noqa: E402
from dgn.metrics.judge import judge_predictions  # noqa: E402

# helpers: images


def conflict_image(kind: str, a: int, rng: np.random.Generator, size: int, *, colour_of: int | None = None,
                   grey: bool = False, disc: bool = False) -> np.ndarray:
    """One test image as uint8 (size, size, 3): the silhouette of class a (``disc``: a disc) in its kind's colours,
    or in the *hues* colours of class ``colour_of``, or (``grey``) in grey on a flat grey."""
    k = synthetic.check_kind(kind)
    if grey:
        v = rng.uniform()
        fg = np.full(3, v, np.float32)
        bg = np.full((size, size, 3), v + 0.45 if v < 0.5 else v - 0.45, np.float32)  # 0.45 away in luminance
    else:
        palette = kind if colour_of is None else "hues"
        fg = synthetic.foreground_colour(palette, a if colour_of is None else colour_of, rng)
        bg = synthetic.background(palette, fg, rng, size)
    family, label = ("hues", shapes.names("hues").index("circle")) if disc else (k.family, a)
    alpha = shapes.mask(family, label, rng, size)
    return synthetic.compose(alpha, fg, bg, rng)


def images(kind: str, specs: list[dict], size: int, seed: int) -> torch.Tensor:
    """conflict_image(**spec) per spec → float (N, 3, size, size) in [0, 1]."""
    rng = np.random.default_rng(seed)
    arr = np.stack([conflict_image(kind, s["a"], rng, size, **{k: v for k, v in s.items() if k not in "ab"})
                    for s in specs])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


# the measurement


def sets(kind: str, n: int) -> dict[str, tuple[list[dict], str]]:
    """Set name → (image specs, what a hit is: 'a' the shape's class, 'b' the colour's class, or 'conflict')."""
    K = len(synthetic.class_names(kind))
    pairs = [(a, b) for a in range(K) for b in range(K) if a != b for _ in range(max(n // 5, 1))]
    return {
        "as trained": ([dict(a=k, b=k) for k in range(K) for _ in range(n)], "a"),
        "shape alone": ([dict(a=k, b=k, grey=True) for k in range(K) for _ in range(n)], "a"),
        "colour alone": ([dict(a=k, b=k, colour_of=k, disc=True) for k in range(K) for _ in range(n)], "b"),
        "colour conflict": ([dict(a=a, b=b, colour_of=b) for a, b in pairs], "conflict"),
    }


def measure(nets: dict, kind: str, n: int, size: int, seed: int) -> dict:
    names = synthetic.class_names(kind)
    K = len(names)
    out: dict = {net: {} for net in nets}
    for i, (name, (specs, hit_on)) in enumerate(sets(kind, n).items()):
        x = images(kind, specs, size, seed + i)
        a = torch.tensor([s["a"] for s in specs])
        b = torch.tensor([s["b"] for s in specs])
        for net, model in nets.items():
            pred, _ = judge_predictions(model, x)
            if hit_on == "conflict":
                s, c = (pred == a).float().mean().item(), (pred == b).float().mean().item()
                out[net][name] = {"shape": s, "other": c, "neither": 1 - s - c, "shape_bias": s / max(s + c, 1e-9)}
            else:
                hit = (pred == (a if hit_on == "a" else b)).float().view(K, n)
                out[net][name] = {"accuracy": hit.mean().item(),
                                  "per_class": {names[k]: hit[k].mean().item() for k in range(K)}}
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


def hue_error(h: torch.Tensor, k: torch.Tensor, K: int) -> torch.Tensor:
    """Signed circular distance from hue h to class k's base hue k/K, in class spacings (±0.5 = halfway to a neighbour)."""
    return ((h - k / K + 0.5) % 1 - 0.5) * K


def am_images(run: Path, kind: str, encoder, judge, starts: int, figure: str = "") -> dict:
    """DGN-AM of every fc8 unit × ``starts`` with the run's last G (default AM settings); {} without a G."""
    from dgn.am import AMConfig, TargetNet, dgn_am
    from dgn.train.gan import load_generator

    gens = sorted((run / "generator").glob("*/*.pt"))
    if not gens:
        return {}
    G, gck = load_generator(str(gens[-1]))
    names = synthetic.class_names(kind)
    K = len(names)
    units = [f"fc8:{k}" for _ in range(starts) for k in range(K)]
    res = dgn_am(G, TargetNet.caffenet(encoder), units, code_stats=gck["code_stats"], config=AMConfig())
    x = res.images.float().clamp(0, 1)
    cls = torch.arange(K).repeat(starts)
    pred, _ = judge_predictions(judge, x)
    hit = pred == cls
    hues = synthetic.check_kind(kind).colours == "class"
    err = hue_error(image_hue(x), cls, K) if hues else torch.full((len(x),), float("nan"))
    if figure:  # a row per unit, a column per start
        import torchvision

        torchvision.utils.save_image(x.view(starts, K, *x.shape[1:]).transpose(0, 1).flatten(0, 1), figure,
                                     nrow=starts, padding=2, pad_value=1.0)
    per_unit = {names[k]: {"recognised": hit[cls == k].float().mean().item(), "hue_error": err[cls == k].mean().item(),
                           "judge_says": [names[int(i)] for i in pred[cls == k]]} for k in range(K)}
    out = {"generator": str(gens[-1]), "recognisability": hit.float().mean().item(), "per_unit": per_unit}
    if hues:
        out["mean_abs_hue_error_recognised"] = err[hit].abs().mean().item() if hit.any() else float("nan")
        out["mean_abs_hue_error_missed"] = err[~hit].abs().mean().item() if (~hit).any() else float("nan")
    return out


# the report


def table(res: dict) -> str:
    lines = ["| net | as trained | shape alone | colour alone | colour conflict: shape / colour / neither | shape bias |",
             "|---|---|---|---|---|---|"]
    for net, r in res.items():
        cc = r["colour conflict"]
        lines.append(f"| {net} | {r['as trained']['accuracy']:.2f} | {r['shape alone']['accuracy']:.2f} | "
                     f"{r['colour alone']['accuracy']:.2f} | {cc['shape']:.2f} / {cc['other']:.2f} / "
                     f"{cc['neither']:.2f} | **{cc['shape_bias']:.2f}** |")
    return "\n".join(lines)


def dry_run_nets(kind: str, size: int) -> dict:
    from dgn.nets import Judge, build_caffenet

    torch.manual_seed(0)
    K = len(synthetic.class_names(kind))
    return {"E": build_caffenet("small", num_classes=K, image_size=size).eval(),
            "judge": Judge(num_classes=K, image_size=size).eval()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="", help="a flows/train.py storage folder (classifier/ and judge/ inside)")
    p.add_argument("--kind", default="", help=f"the synthetic kind the run was trained on: {', '.join(synthetic.KINDS)} "
                   "(default: the one whose class names match the checkpoint's, shapes first)")
    p.add_argument("--n", type=int, default=50, help="images per class in each set (conflicts: n/5 per pair)")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--json", default="", help="also write the figures here")
    p.add_argument("--starts", type=int, default=5, help="DGN-AM starts per fc8 unit (0: skip the DGN-AM part)")
    p.add_argument("--figure", default="", help="save the DGN-AM images here (PNG, a row per fc8 unit)")
    p.add_argument("--dry-run", action="store_true", help="seconds: untrained nets at 32 px, --n 5, no DGN-AM")
    a = p.parse_args(argv)
    t0 = time.time()
    if a.dry_run:
        kind = a.kind or synthetic.DEFAULT_KIND
        synthetic.check_kind(kind)
        size, n, starts, nets, run = 32, 5, 0, dry_run_nets(kind, 32), None
    else:
        from dgn.train.classifier import load_classifier, load_judge

        if not a.run:
            sys.exit("error: --run is required (a flows/train.py storage folder), or use --dry-run")
        run = Path(a.run)
        cks = sorted((run / "classifier").glob("*.pt"))
        if not cks or not (run / "judge" / "judge.pt").is_file():
            sys.exit(f"error: {run} has no classifier/*.pt or judge/judge.pt; run `python flows/train.py "
                     f"--storage {run}` first")
        if a.n < 5:
            sys.exit(f"error: --n {a.n} is too small; use 5 or more images per class")
        encoder, ck = load_classifier(str(cks[-1]))
        names = list(ck.get("class_names") or [])
        matches = [k for k in synthetic.KINDS if synthetic.class_names(k) == names]
        kind = a.kind or (matches[0] if matches else "")
        if kind not in synthetic.KINDS:
            sys.exit(f"error: {cks[-1]} was trained on classes {names}, which no synthetic kind has; "
                     f"pass --kind ({', '.join(synthetic.KINDS)})" if not a.kind else
                     f"error: --kind {a.kind!r} is not one of {', '.join(synthetic.KINDS)}")
        if names and synthetic.class_names(kind) != names:
            sys.exit(f"error: {cks[-1]} was trained on classes {names}, not kind {kind!r}'s "
                     f"{synthetic.class_names(kind)}")
        size, n, starts = encoder.config.image_size, a.n, a.starts
        nets = {"E": encoder.eval(), "judge": load_judge(str(run / "judge" / "judge.pt")).eval()}
    res = measure(nets, kind, n, size, a.seed)
    print(f"kind {kind}, {n} images per class and set ({max(n // 5, 1)} per conflict pair), {size} px\n")
    print(table(res))
    print("\nper class: shape alone / colour alone (a disc in the class's hues colours read as the class)")
    print("| class | " + " | ".join(res) + " |\n|---|" + "---|" * len(res))
    for c in synthetic.class_names(kind):
        print(f"| {c} | " + " | ".join(f"{r['shape alone']['per_class'][c]:.2f} / {r['colour alone']['per_class'][c]:.2f}"
                                       for r in res.values()) + " |")
    if starts > 0:
        am = am_images(run, kind, nets["E"], nets["judge"], starts, a.figure)
        res["dgn_am"] = am
        if am:
            print(f"\nDGN-AM images ({am['generator']}), {starts} starts per fc8 unit: recognisability "
                  f"{am['recognisability']:.2f}")
            print("| unit | recognised | hue error (class spacings) | judge says |\n|---|---|---|---|")
            for c, u in am["per_unit"].items():
                print(f"| {c} | {u['recognised']:.2f} | {u['hue_error']:+.2f} | {', '.join(u['judge_says'])} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"kind": kind, "n": n, "image_size": size, **res}, indent=1))
    print(f"\n({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
