"""The sweep's results as a table (CSV and markdown), a per-layer summary and the verdict."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from dgn.sweep.config import SweepConfig

COLUMNS = ("trial", "layer", "w_image", "w_feature", "w_adv", "status", "epochs", "stopped_early", "score",
           "score_epoch1", "am_recognisability", "am_median_activation_ratio", "am_realism_fd", "recon_image_mse",
           "recon_judge_acc", "error")


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
            "trial": tid, "layer": r.config.get("layer"), **{k: w.get(k) for k in ("w_image", "w_feature", "w_adv")},
            "status": st, "epochs": epochs, "stopped_early": st == "TERMINATED" and epochs < cfg.epochs,
            "score": _f(m.get("score")), "score_epoch1": _f(first.iloc[0]) if len(first) else float("nan"),
            **{k: _f(m.get(k)) for k in COLUMNS[10:15]},
            "error": (str(r.error).splitlines() or [""])[0][:200] if r.error else "",
        })
    order = {layer: i for i, layer in enumerate(cfg.layers)}
    return sorted(rows, key=lambda x: (order.get(x["layer"], 99), x["w_image"] or 0, x["w_feature"] or 0, x["w_adv"] or 0))


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
    if v["fc6_rank"] is None:
        return line + "; fc6 was not swept"
    if v["fc6_wins"]:
        return line + "; fc6 wins, as in the paper"
    return line + f"; fc6 ranks {v['fc6_rank']} ({v['fc6_gap']:+.3f} behind)"


def _fmt(v) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def markdown(rows: list[dict], columns) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], summary: list[dict], v: dict, out_dir: Path) -> list[Path]:
    """sweep_table.csv, sweep_table.md (all trials, the per-layer summary, the verdict); their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "sweep_table.csv", out_dir / "sweep_table.md"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    cols = [c for c in COLUMNS if c != "error"] + (["error"] if any(r["error"] for r in rows) else [])
    md_path.write_text("## All trials\n\n" + markdown(rows, cols) + "\n## Per layer\n\n"
                       + markdown(summary, ("layer", "best_score", "best_epochs", "mean_score_epoch1", "best_trial"))
                       + f"\n{verdict_line(v)}\n")
    return [csv_path, md_path]
