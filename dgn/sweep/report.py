"""The sweep's results as a table (CSV and markdown), a per-layer summary and the verdict."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from dgn.metrics import seed_spread
from dgn.sweep.config import SweepConfig

METRIC_COLUMNS = ("am_recognisability", "am_median_activation_ratio", "am_realism_fd", "recon_image_mse",
                  "recon_judge_acc", "term_R", "term_A", "term_N", "term_X", "score_no_x", "g_params", "g_step_s")
COLUMNS = ("trial", "layer", "seed", "w_image", "w_feature", "w_adv", "status", "epochs", "stopped_early", "score",
           "score_epoch1", *METRIC_COLUMNS, "error")
TERMS = ("score", "score_no_x", "term_R", "term_A", "term_N", "term_X")  # what the seed summary aggregates


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def trial_rows(grid, status: dict[str, str], cfg: SweepConfig) -> list[dict]:
    """One row per trial of a Tune ResultGrid, in grid order (layer, then weight set)."""
    rows = []
    for r in grid:
        m = r.metrics or {}
        tid = m.get("trial_id") or Path(r.path).name
        w = r.config.get("weights", {})
        df = r.metrics_dataframe
        first = df[df["training_iteration"] == 1]["score"] if df is not None and "score" in df else []
        epochs = int(m.get("training_iteration", 0) or 0)
        st = status.get(tid, "ERROR" if r.error else "UNKNOWN")
        rows.append({
            "trial": tid, "layer": r.config.get("layer"), "seed": r.config.get("seed", cfg.seed),
            **{k: w.get(k) for k in ("w_image", "w_feature", "w_adv")},
            "status": st, "epochs": epochs, "stopped_early": st == "TERMINATED" and epochs < cfg.epochs,
            "score": _f(m.get("score")), "score_epoch1": _f(first.iloc[0]) if len(first) else float("nan"),
            **{k: _f(m.get(k)) for k in METRIC_COLUMNS},
            "error": (str(r.error).splitlines() or [""])[0][:200] if r.error else "",
        })
    order = {layer: i for i, layer in enumerate(cfg.layers)}
    return sorted(rows, key=lambda x: (order.get(x["layer"], 99), x["w_image"] or 0, x["w_feature"] or 0, x["w_adv"] or 0,
                                       x["seed"]))


def per_layer(rows: list[dict], layers) -> list[dict]:
    """Each layer's best trial (by final score) and its mean score after one epoch (equal budget, all trials)."""
    out = []
    for layer in layers:
        mine = [r for r in rows if r["layer"] == layer and not math.isnan(r["score"])]
        if not mine:
            out.append({"layer": layer, "best_score": float("nan"), "best_trial": "", "best_epochs": 0,
                        "mean_score_epoch1": float("nan")})
            continue
        best = max(mine, key=lambda r: r["score"])
        e1 = [r["score_epoch1"] for r in mine if not math.isnan(r["score_epoch1"])]
        out.append({"layer": layer, "best_score": best["score"], "best_trial": best["trial"],
                    "best_epochs": best["epochs"], "mean_score_epoch1": sum(e1) / len(e1) if e1 else float("nan")})
    return out


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    """dgn.metrics.seed_spread over the seeds that produced the figure (NaN, NaN for none)."""
    xs = [x for x in xs if not math.isnan(x)]
    return seed_spread(xs) if xs else (float("nan"), float("nan"))


def per_layer_seeds(rows: list[dict], layers) -> list[dict]:
    """Each layer over its G seeds: for every seed the best weight set's trial (the only one at ``samples`` 1), then
    the mean and sample standard deviation across seeds of the score, the score without X and each term."""
    out = []
    for layer in layers:
        by_seed: dict = {}
        for r in rows:
            if r["layer"] == layer and not math.isnan(r["score"]):
                if r["seed"] not in by_seed or r["score"] > by_seed[r["seed"]]["score"]:
                    by_seed[r["seed"]] = r
        mine = [by_seed[k] for k in sorted(by_seed)]
        s = {"layer": layer, "n_seeds": len(mine), "first_seed_trial": mine[0]["trial"] if mine else "",
             "g_params": mine[0]["g_params"] if mine else float("nan"),
             "g_step_s": _mean_sd([r["g_step_s"] for r in mine])[0]}
        for k in TERMS:
            s[f"{k}_mean"], s[f"{k}_sd"] = _mean_sd([r[k] for r in mine])
        out.append(s)
    return out


def seed_verdict(summary: list[dict], key: str = "score") -> dict:
    """The layer with the highest mean ``key`` over seeds, and every layer tied with it: a layer ties when the
    winner's lead over it is within the seed spread, √(sd_winner² + sd_layer²) (sample sds across seeds)."""
    ranked = sorted((s for s in summary if not math.isnan(s[f"{key}_mean"])), key=lambda s: -s[f"{key}_mean"])
    if not ranked:
        return {"key": key, "best_layer": None, "ties": [], "ranked": []}
    best = ranked[0]
    rows = []
    for s in ranked:
        gap = best[f"{key}_mean"] - s[f"{key}_mean"]
        spread = math.sqrt(best[f"{key}_sd"] ** 2 + s[f"{key}_sd"] ** 2)
        rows.append({"layer": s["layer"], "mean": s[f"{key}_mean"], "sd": s[f"{key}_sd"], "gap": gap,
                     "spread": spread, "tie": s is best or (math.isfinite(spread) and gap <= spread)})
    return {"key": key, "best_layer": best["layer"], "best_score": best[f"{key}_mean"],
            "ties": [r["layer"] for r in rows[1:] if r["tie"]], "ranked": rows, "n_seeds": min(s["n_seeds"] for s in ranked)}


def seed_verdict_line(v: dict) -> str:
    if v["best_layer"] is None:
        return "no trial produced a score"
    what = "score" if v["key"] == "score" else "score without X"
    head = f"by {what} (mean over {v['n_seeds']} seeds): "
    r0 = v["ranked"][0]
    if v["ties"]:
        head += (f"tie — {v['best_layer']} leads ({r0['mean']:.3f} ± {r0['sd']:.3f}), but {', '.join(v['ties'])} "
                 f"{'is' if len(v['ties']) == 1 else 'are'} within the seed spread of its lead")
    else:
        r1 = v["ranked"][1] if len(v["ranked"]) > 1 else None
        head += f"{v['best_layer']} wins ({r0['mean']:.3f} ± {r0['sd']:.3f}"
        head += f"; +{r1['gap']:.3f} over {r1['layer']}, spread {r1['spread']:.3f})" if r1 else ")"
    fc6 = next((r for r in v["ranked"] if r["layer"] == "fc6"), None)
    if fc6 is not None and v["best_layer"] != "fc6":
        head += f"; fc6 {fc6['mean']:.3f} ± {fc6['sd']:.3f} ({'tie' if fc6['tie'] else 'behind'}, {-fc6['gap']:+.3f})"
    return head


def verdict(summary: list[dict]) -> dict:
    """The winning layer, its margin over the runner-up layer, and where fc6 stands."""
    ranked = sorted((s for s in summary if not math.isnan(s["best_score"])), key=lambda s: -s["best_score"])
    if not ranked:
        return {"best_layer": None, "margin": float("nan"), "runner_up": None, "fc6_rank": None, "fc6_gap": float("nan")}
    best = ranked[0]
    runner = ranked[1] if len(ranked) > 1 else None
    fc6 = next((i for i, s in enumerate(ranked) if s["layer"] == "fc6"), None)
    return {
        "best_layer": best["layer"], "best_score": best["best_score"], "best_trial": best["best_trial"],
        "runner_up": runner["layer"] if runner else None,
        "margin": best["best_score"] - runner["best_score"] if runner else float("nan"),
        "fc6_rank": None if fc6 is None else fc6 + 1,
        "fc6_gap": float("nan") if fc6 is None else ranked[fc6]["best_score"] - best["best_score"],
        "fc6_wins": best["layer"] == "fc6",
    }


def verdict_line(v: dict) -> str:
    if v["best_layer"] is None:
        return "no trial produced a score"
    line = f"best layer: {v['best_layer']} (score {v['best_score']:.3f}"
    line += f", {v['margin']:+.3f} over {v['runner_up']})" if v["runner_up"] else ")"
    caveat = " — the best trial of a search (one seed, early stopping): not a fair layer verdict, see --fair"
    if v["fc6_rank"] is None:
        return line + "; fc6 was not swept" + caveat
    if v["fc6_wins"]:
        return line + "; fc6 wins, as in the paper" + caveat
    return line + f"; fc6 ranks {v['fc6_rank']} ({v['fc6_gap']:+.3f} behind)" + caveat


def _fmt(v) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def markdown(rows: list[dict], columns) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


SEED_COLUMNS = ("layer", "n_seeds", "g_params", "g_step_s", *(f"{k}_{s}" for k in TERMS for s in ("mean", "sd")))


def write_tables(rows: list[dict], summary: list[dict], v: dict, out_dir: Path,
                 seeds: list[dict] | None = None, seed_verdicts: list[dict] | None = None) -> list[Path]:
    """sweep_table.csv, sweep_table.md (all trials, the per-layer summary, the verdict; with several G seeds also
    the per-layer mean ± sd over seeds and the verdicts with and without X); their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "sweep_table.csv", out_dir / "sweep_table.md"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    cols = [c for c in COLUMNS if c != "error"] + (["error"] if any(r["error"] for r in rows) else [])
    md_path.write_text("## All trials\n\n" + markdown(rows, cols) + "\n## Per layer\n\n"
                       + markdown(summary, ("layer", "best_score", "best_epochs", "mean_score_epoch1", "best_trial"))
                       + ("\n" if not seeds else "\nBest single trial, for reference only (a maximum over seeds is not "
                          "the verdict; the verdict is below): ") + f"{verdict_line(v)}\n"
                       + ("" if not seeds else
                          f"\n## Per layer over {seeds[0]['n_seeds']} G seeds (mean, sample sd)\n\n"
                          + markdown(seeds, SEED_COLUMNS) + "\n"
                          + "".join(f"- {seed_verdict_line(sv)}\n" for sv in seed_verdicts or [])))
    return [csv_path, md_path]
