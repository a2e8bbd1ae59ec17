"""MLflow records of a layer sweep: a parent run for the sweep, a child run per trial (driver only).

Parent (run name = the sweep's name): the sweep's config as params, the
verdict (best layer, margin, fc6's rank) as params/tags/metrics, the tables
and the per-layer figure as artifacts. Child ``<name>/<trial>``: the trial's
layer and weights as params, its metrics per epoch (step = epoch), its final
score. Logged once the sweep has finished; re-running a finished sweep
continues these runs and adds no duplicate metric history.
"""

from __future__ import annotations

import math
from pathlib import Path

from dgn.tracking.core import open_run

CHILD_METRICS = ("score", "am_recognisability", "am_median_activation_ratio", "am_realism_fd", "recon_image_mse",
                 "recon_feature_mse", "recon_judge_acc", "term_R", "term_A", "term_N", "term_X", "loss_g_loss",
                 "loss_image", "loss_feature", "loss_adversarial", "loss_d_loss")


def log_sweep(*, experiment: str, name: str, params: dict, rows: list[dict], histories: dict[str, list[dict]],
              summary: list[dict], verdict: dict, files: list[Path]) -> str:
    """Log the finished sweep; returns the parent run's id."""
    with open_run(experiment=experiment, run_name=name, params=params, tags={"dgn.kind": "sweep"}) as parent:
        for row in rows:
            with open_run(experiment=experiment, run_name=f"{name}/{row['trial']}", parent_run_id=parent.run_id,
                          params={k: row[k] for k in ("layer", "w_image", "w_feature", "w_adv")},
                          tags={"dgn.kind": "sweep-trial", "status": row["status"],
                                "stopped_early": str(row["stopped_early"])}) as child:
                if not child.resumed:
                    for h in histories.get(row["trial"], []):
                        child.log_metrics({k: h[k] for k in CHILD_METRICS if k in h},
                                          step=int(h.get("training_iteration", 0)))
                child.log_metrics({"final_score": row["score"], "epochs": row["epochs"]})
        for s in summary:
            parent.log_metrics({f"best_score_{s['layer']}": s["best_score"],
                                f"mean_score_epoch1_{s['layer']}": s["mean_score_epoch1"]})
        parent.log_params({"best_layer": verdict["best_layer"]})
        parent.set_tags({"best_layer": str(verdict["best_layer"]), "fc6_wins": str(verdict.get("fc6_wins"))})
        parent.log_metrics({k: verdict[k] for k in ("best_score", "margin", "fc6_gap")
                            if isinstance(verdict.get(k), float) and math.isfinite(verdict[k])})
        parent.log_table(rows, "sweep_table.json")
        for f in files:
            parent.log_artifact(f)
        return parent.run_id
