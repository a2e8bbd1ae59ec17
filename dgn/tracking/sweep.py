"""MLflow records of a layer sweep: a parent run for the sweep, a child run per trial (driver only).

Parent (run name = the sweep's name): the sweep's config as params, the
verdict (best layer, margin, fc6's rank) as params/tags/metrics, the tables
and the per-layer figure as artifacts. Child ``<name>/<trial>``: the trial's
layer and weights as params, its metrics per epoch (step = epoch), its final
score.

While the sweep runs, :class:`LiveTrials` (a Tune callback: it runs in the
driver) logs each trial's epochs as they are reported, so the parent and its
children are browsable — and show progress — before the sweep ends; a trial
ASHA stopped or that finished is marked FINISHED, an errored one FAILED.
:func:`log_sweep` then adds the verdict and artifacts. Re-running a finished or
interrupted sweep continues these runs and adds no duplicate metric history.
"""

from __future__ import annotations

import math
from pathlib import Path

from dgn.tracking.core import open_run

try:  # the callback base class; dgn.tracking stays importable without Tune
    from ray.tune import Callback as _TuneCallback
except ImportError:  # pragma: no cover
    _TuneCallback = object

CHILD_METRICS = ("score", "am_recognisability", "am_median_activation_ratio", "am_realism_fd", "recon_image_mse",
                 "recon_feature_mse", "recon_judge_acc", "term_R", "term_A", "term_N", "term_X", "loss_g_loss",
                 "loss_image", "loss_feature", "loss_adversarial", "loss_d_loss")


def log_sweep(*, experiment: str, name: str, params: dict, rows: list[dict], histories: dict[str, list[dict]],
              summary: list[dict], verdict: dict, files: list[Path]) -> str:
    """Log the finished sweep; returns the parent run's id."""
    with open_run(experiment=experiment, run_name=name, params=params, tags={"dgn.kind": "sweep"}) as parent:
        for row in rows:
            with open_run(experiment=experiment, run_name=f"{name}/{row['trial']}", parent_run_id=parent.run_id,
                          params={k: row[k] for k in ("layer", "seed", "w_image", "w_feature", "w_adv") if k in row},
                          tags={"dgn.kind": "sweep-trial", "status": row["status"],
                                "stopped_early": str(row["stopped_early"])}) as child:
                logged = _last_step(child)
                for h in histories.get(row["trial"], []):  # epochs the live callback missed, if any
                    if int(h.get("training_iteration", 0)) > logged:
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


def _last_step(run) -> int:
    hist = run.client.get_metric_history(run.run_id, "score")
    return max((m.step for m in hist), default=0)


def open_parent(*, experiment: str, name: str, params: dict, resume: bool = True):
    """The sweep's parent run (continued by name unless ``resume`` is false), RUNNING while the sweep runs."""
    return open_run(experiment=experiment, run_name=name, params=params, tags={"dgn.kind": "sweep"}, resume=resume)


class LiveTrials(_TuneCallback):
    """Tune callback: each trial's epochs into its child run as they arrive (driver only).

    Holds only names (picklable: Tune saves callbacks with the experiment and
    gives them back on ``Tuner.restore``); clients are made on first use.
    """

    def __init__(self, *, experiment: str, name: str, parent_run_id: str):
        self.experiment, self.name, self.parent_run_id = experiment, name, parent_run_id
        self._runs: dict = {}

    def __getstate__(self):
        return {"experiment": self.experiment, "name": self.name, "parent_run_id": self.parent_run_id}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._runs = {}

    def _child(self, trial, config: dict):
        tid = trial.trial_id
        if tid not in self._runs:
            params = {"layer": config.get("layer"), **({"seed": config["seed"]} if "seed" in config else {})}
            w = config.get("weights") or {}
            params.update({k: w[k] for k in ("w_image", "w_feature", "w_adv") if k in w})
            run = open_run(experiment=self.experiment, run_name=f"{self.name}/{tid}", parent_run_id=self.parent_run_id,
                           params=params, tags={"dgn.kind": "sweep-trial", "status": "RUNNING"})
            self._runs[tid] = (run, _last_step(run))
        return self._runs[tid]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run, logged = self._child(trial, trial.config)
        step = int(result.get("training_iteration", 0))
        if step <= logged:  # already logged (a trial restarted from its checkpoint repeats nothing)
            return
        run.log_metrics({k: result[k] for k in CHILD_METRICS if k in result}, step=step)
        self._runs[trial.trial_id] = (run, step)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, "FINISHED", "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, "FAILED", "ERROR")

    def close(self, status: str = "KILLED") -> None:
        """End the child runs of trials still running (an interrupted sweep): never left looking live or complete."""
        for run, _ in self._runs.values():
            run.set_tags({"status": "INTERRUPTED"})
            run.finish(status)
        self._runs.clear()

    def _end(self, trial, status: str, tag: str):
        if trial.trial_id in self._runs:
            run, _ = self._runs.pop(trial.trial_id)
            run.set_tags({"status": tag})
            run.finish(status)
