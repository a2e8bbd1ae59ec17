"""MLflow: where runs go, how a run is opened (or continued), and what never gets logged.

Only drivers call this (Ray Train workers and atlas actors hand results back).
The tracking URI comes from ``MLFLOW_TRACKING_URI``; without it, a local
SQLite store under ``$DGN_HOME`` (default ``~/.dgn``) — a stable place, so a
run submitted with ``ray job submit`` (whose working dir is temporary) can
still be browsed after the job ends:

    mlflow ui --backend-store-uri sqlite:///$HOME/.dgn/mlflow.db

Secrets (AWS keys, tokens, passwords) are scrubbed from everything logged:
params and tags whose name looks secret are masked, and the values of the
secret environment variables are replaced wherever they appear — in params,
tags, texts, tables, and in artifact files (uploaded as scrubbed copies).

Two things MLflow's UI (3.17) does that shape what a run holds, because a run's
stepped images are what a user opens it for (run page → Model metrics):

- an image card prints *every* param of the run, ``key=value, ...``, above the
  image, so a run with images keeps its whole config in a ``config.json``
  artifact and only a few headline params (:meth:`Run.log_config`);
- an image card opens at step 0, and dgn's steps are epochs (1, 2, ...), so
  step 0 of each image key repeats its newest image (:meth:`Run.log_image`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from dgn.errors import DGNError

RUN_NAME_TAG = "dgn.run_name"
MASK = "***"
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_PASSWORD",
              "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME")
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|credential|access_key|api_key|private_key)", re.I)


# where runs go


def dgn_home() -> Path:
    return Path(os.environ.get("DGN_HOME", "~/.dgn")).expanduser()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the stable local SQLite store ``$DGN_HOME/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    home = dgn_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def default_artifact_root() -> str | None:
    """Artifacts of a local SQLite store live beside it (never in the job's temporary cwd)."""
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return None  # the server (or the user's store) decides
    return (dgn_home() / "mlartifacts").as_uri()


def browse_hint(uri: str | None = None) -> str:
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"browse the results at {uri}"
    return f"browse the results with: mlflow ui --backend-store-uri {uri}"


def check_reachable(uri: str | None = None, timeout: float = 5.0) -> None:
    """Raise :class:`DGNError` if an HTTP tracking server does not answer (before any work starts)."""
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            if r.status != 200:
                raise DGNError(f"MLflow tracking server {uri!r} answered /health with HTTP {r.status}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DGNError(f"MLflow tracking server {uri!r} is unreachable ({reason}); start it or fix "
                       "MLFLOW_TRACKING_URI") from None


# what never gets logged


def secret_values() -> list[str]:
    return [v for k in SECRET_ENV if len(v := os.environ.get(k, "")) >= 4]


def scrub(text: str) -> str:
    """``text`` with the value of every secret environment variable replaced by ``***``."""
    for v in secret_values():
        text = text.replace(v, MASK)
    return text


@contextmanager
def _scrubbed(path: Path):
    """``path`` itself, or a temporary copy of it in which every file holding a secret's value is scrubbed."""
    secrets = [v.encode() for v in secret_values()]
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    dirty = [f for f in files if secrets and any(s in f.read_bytes() for s in secrets)]
    if not dirty:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dgn-scrubbed-") as tmp:
        copy = Path(tmp) / path.name
        if path.is_file():
            shutil.copyfile(path, copy)
        else:
            shutil.copytree(path, copy)
        for f in dirty:
            target = copy if path.is_file() else copy / f.relative_to(path)
            data = target.read_bytes()
            for s in secrets:
                data = data.replace(s, MASK.encode())
            target.write_bytes(data)
        yield copy


def masked(d: Mapping) -> dict:
    """A nested config with the values of secret-looking names masked (the values of secrets are scrubbed on upload)."""
    return {k: masked(v) if isinstance(v, Mapping) else MASK if _SECRET_NAME.search(str(k)) else v
            for k, v in d.items()}


def flatten(d: Mapping, prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"gan.w_adv": "0.01", ...}``, secrets masked, values cut to MLflow's 6000 chars."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif _SECRET_NAME.search(str(k)):
            out[key] = MASK
        else:
            out[key] = scrub(str(v))[:6000]
    return out


# runs


class Run:
    """One MLflow run, written through ``MlflowClient`` with an explicit run id (thread-safe, no global state).

    Use as a context manager: an exception marks the run FAILED (never left
    looking complete); leaving normally marks it FINISHED.
    """

    def __init__(self, client, run_id: str, *, resumed: bool):
        self.client = client
        self.run_id = run_id
        self.resumed = resumed
        self._newest: dict[str, int] | None = None  # image key → its newest logged step (read on first use)
        self._last_ts = 0

    # writing
    def log_params(self, params: Mapping) -> None:
        flat = flatten(params)
        have = self.client.get_run(self.run_id).data.params
        new = {k: v for k, v in flat.items() if k not in have}  # MLflow refuses to change a logged param
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in new.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()
                 if v is not None and math.isfinite(float(v))]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, MASK if _SECRET_NAME.search(k) else scrub(str(v)))

    def log_config(self, config: Mapping, artifact_file: str = "config.json", *, params=()) -> None:
        """The whole (nested) config as a JSON artifact; only the flattened names in ``params`` as params.

        MLflow's image cards print every param of the run above its image, so a
        run with images keeps its params few (the runs table still has them).
        The artifact holds the config of the latest attempt; params keep their
        first values (MLflow refuses to change a logged param).
        """
        self.log_dict(masked(config), artifact_file)
        flat = flatten(config)
        if params:
            self.log_params({k: flat[k] for k in params if k in flat})

    def log_image(self, image, *, key: str, step: int) -> None:
        """A stepped image (the UI's slider): ``image`` is a PIL image or an (H, W, 3) uint8 array.

        The image goes to ``step``, and also to step 0 when it is the newest of
        its key (``step`` ≥ every step logged before): MLflow's image card
        opens at step 0 (where dgn logs no epoch), so the card first shows the
        newest image and its slider steps through the others. Where step 0
        holds several images the UI shows the last logged (they sort by their
        timestamps, which are kept increasing here).
        """
        if "/" in key:
            raise ValueError(f"MLflow image keys may not hold '/': {key!r}")
        newest = self._newest_steps()
        self._log_image(image, key, step)
        if step > 0 and step >= newest.get(key, 0):
            self._log_image(image, key, 0)
        newest[key] = max(step, newest.get(key, 0))

    def _log_image(self, image, key: str, step: int) -> None:
        self._last_ts = max(int(time.time() * 1000), self._last_ts + 1)
        self.client.log_image(self.run_id, image, key=key, step=step, timestamp=self._last_ts)

    def _newest_steps(self) -> dict[str, int]:
        """Image key → the newest step already in the run (``images/<key>+step+<n>+timestamp+...``)."""
        if self._newest is None:
            self._newest = {}
            for a in self.client.list_artifacts(self.run_id, "images"):
                name = a.path.rsplit("/", 1)[-1]
                key, sep, rest = name.partition("+step+")
                step = rest.split("+", 1)[0]
                if sep and step.isdigit():
                    self._newest[key] = max(int(step), self._newest.get(key, 0))
        return self._newest

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """A file or a folder's files; any holding a secret's value is uploaded as a scrubbed copy."""
        with _scrubbed(Path(local_path)) as p:
            if p.is_dir():
                self.client.log_artifacts(self.run_id, str(p), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(p), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, scrub(text), artifact_file)

    def log_dict(self, d: dict, artifact_file: str) -> None:
        self.log_text(json.dumps(d, indent=2, default=str), artifact_file)

    def log_table(self, rows: list[dict], artifact_file: str) -> None:
        """A table as a JSON artifact MLflow's UI shows as a table (``client.log_table``)."""
        import pandas as pd

        rows = [{k: scrub(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
        self.client.log_table(self.run_id, pd.DataFrame(rows), artifact_file)

    def artifact_uri(self) -> str:
        return self.client.get_run(self.run_id).info.artifact_uri

    # lifecycle
    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            self.finish("FAILED")


def _client(uri: str | None = None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri or tracking_uri())


def experiment_id(name: str, uri: str | None = None) -> str:
    client = _client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = default_artifact_root()
    return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


def open_run(*, experiment: str, run_name: str, params: Mapping | None = None, tags: Mapping | None = None,
             parent_run_id: str | None = None, resume: bool = True, uri: str | None = None) -> Run:
    """The run named ``run_name`` in ``experiment``: continued if it exists (and ``resume``), else created.

    Continuing a run re-opens it (status RUNNING) so that a resumed training
    logs its later epochs into the same run instead of a duplicate.
    """
    uri = uri or tracking_uri()
    check_reachable(uri)
    client = _client(uri)
    exp_id = experiment_id(experiment, uri)
    if resume:
        found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                                   max_results=1, order_by=["attributes.start_time DESC"])
        if found:
            run_id = found[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            run = Run(client, run_id, resumed=True)
            if params:
                run.log_params(params)
            return run
    all_tags = {RUN_NAME_TAG: run_name, "mlflow.runName": run_name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    info = client.create_run(exp_id, run_name=run_name, tags={k: scrub(str(v)) for k, v in all_tags.items()})
    run = Run(client, info.info.run_id, resumed=False)
    if params:
        run.log_params(params)
    return run


def save_png(image, path: str | Path) -> Path:
    """Write a PIL image or (H, W, 3) uint8 array as PNG (for artifacts)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
