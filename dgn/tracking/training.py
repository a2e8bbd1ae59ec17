"""What the training job logs to MLflow (from the driver only) and prints while it runs.

Training workers put events on a queue (dgn/train/loops.py); the driver
hands each one to :meth:`TrainingTracker.on_event`, which prints a progress
line and logs, into the one MLflow run of this training run:

- the config: all of it as the artifact ``config.json``; as params only
  :data:`HEADLINE_PARAMS` (MLflow's image cards print every param of the run
  above the image: the whole flattened config filled the ``reconstructions``
  and ``atlas-*`` cards and hid their images);
- metrics per checkpoint (``step`` = the checkpoint's number k, as in ``epoch=000k.pt``; the
  optimisation step is the metric ``<stage>_step``): ``classifier_train_loss``,
  ``classifier_val_acc``, ``judge_val_acc``, ``generator_image``,
  ``generator_feature``, ``generator_adversarial``, ``generator_d_acc``, ...;
- a reconstruction grid per G checkpoint: ``log_image(key="reconstructions", step=k)``
  (top row real val images, bottom row G(E(x))); step 0 repeats the newest
  (the image card opens there, :meth:`dgn.tracking.core.Run.log_image`);
- checkpoint URIs: tags ``checkpoint.<stage>.<NNNN>`` and the artifact ``checkpoints.json``;
- the quality report: metrics ``quality_*``, ``quality.json`` and the montages as artifacts.

A resumed run (same run name) continues the same MLflow run; checkpoints already
logged are not logged again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from dgn.errors import DGNError
from dgn.tracking.core import RUN_NAME_TAG, Run, _client, browse_hint, check_reachable, open_run, tracking_uri

Log = Callable[[str], None]
# The training run's params (flattened names), few and short on purpose: MLflow's image cards print every param
# above the image (a long storage path also widens the card's content). The whole config is config.json.
HEADLINE_PARAMS = ("preset", "workers", "gan.layer", "gan.w_adv")  # short values: the card keeps one line (storage: tag dgn.storage)
STAGE_TITLES = {"classifier": "classifier E", "judge": "judge", "comparator": "comparator C", "generator": "generator G"}


class TrainingTracker:
    def __init__(self, *, experiment: str, run_name: str, params: Mapping, storage: str, log: Log = print):
        self.experiment, self.run_name, self.params, self.storage, self.log = experiment, run_name, params, storage, log
        self.run: Run | None = None
        self.diverged = ""
        self.checkpoints: dict[str, dict[int, str]] = {}

    @staticmethod
    def check() -> str:
        """The tracking URI, after checking that a tracking server answers (before any work starts)."""
        uri = tracking_uri()
        check_reachable(uri)
        return uri

    def check_name(self) -> None:
        """A run name belongs to one storage: refuse to continue another storage's run (before any work)."""
        client = _client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            return
        for r in client.search_runs([exp.experiment_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{self.run_name}'",
                                    max_results=5):
            other = r.data.tags.get("dgn.storage")
            if other and other != self.storage:
                raise DGNError(f"run name {self.run_name!r} already belongs to storage {other!r}, not {self.storage!r}; "
                               "pass another --run-name, or the same --storage to resume it")

    def open(self) -> Run:
        self.run = open_run(experiment=self.experiment, run_name=self.run_name,
                            tags={"dgn.storage": self.storage, "dgn.flow": "train"})
        self.run.log_config(self.params, "config.json", params=HEADLINE_PARAMS)
        how = "continuing" if self.run.resumed else "new"
        self.log(f"mlflow: {how} run {self.run_name!r} (id {self.run.run_id}) in experiment {self.experiment!r} "
                 f"at {tracking_uri()}")
        return self.run

    # events from the workers

    def on_event(self, e: dict) -> None:
        stage = e.get("stage", "?")
        if "note" in e:
            self.log(f"{STAGE_TITLES.get(stage, stage)}: {e['note']}")
            return
        if "diverged" in e:
            self.diverged = e["diverged"]
            self.log(f"{STAGE_TITLES.get(stage, stage)}: {e['diverged']}")
            return
        epoch, m = int(e["epoch"]), e["metrics"]
        self.run.log_metrics({f"{stage}_{k}": v for k, v in m.items()} | {f"{stage}_epoch_seconds": e["seconds"]},
                             step=epoch)
        self.run.set_tags({f"checkpoint.{stage}.{epoch:04d}": e["checkpoint"]})
        self.checkpoints.setdefault(stage, {})[epoch] = e["checkpoint"]
        if e.get("image") is not None:
            self.run.log_image(e["image"], key="reconstructions", step=epoch)
        step = f" (step {e['step']})" if "step" in e else ""
        self.log(f"{STAGE_TITLES.get(stage, stage)} checkpoint {epoch}/{e['epochs']}{step}: {_summary(stage, m)} "
                 f"({e['seconds']:.0f}s) → {e['checkpoint']}")

    # the end of the run

    def log_checkpoints(self, all_checkpoints: Mapping[str, list[str]]) -> None:
        """Every checkpoint of the run (also those of earlier, resumed attempts) as ``checkpoints.json``."""
        self.run.log_dict(dict(all_checkpoints), "checkpoints.json")

    def log_quality(self, summary: Mapping, files: list[Path]) -> None:
        self.run.log_metrics({f"quality_{k}": v for k, v in summary.items() if isinstance(v, (int, float))})
        for f in files:
            if f.is_file():
                self.run.log_artifact(f)

    def hint(self) -> str:
        return browse_hint()


def _summary(stage: str, m: Mapping[str, float]) -> str:
    if stage in ("classifier", "judge", "comparator"):
        return f"loss {m['train_loss']:.3f}, train acc {m['train_acc']:.3f}, val acc {m['val_acc']:.3f}"
    keys = [k for k in ("g_loss", "image", "feature", "adversarial", "d_acc") if k in m]
    return ", ".join(f"{k} {m[k]:.4g}" for k in keys)
