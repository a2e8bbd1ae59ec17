"""A pre-migrated MLflow SQLite store, copied wherever a test's flow would otherwise create a fresh one.

A fresh SQLite store costs MLflow's ~40 schema migrations at its first open (≈ 7 s on the 2-core machine, in every
flow process with a private DGN_HOME); a copy of a store migrated once per session costs a file copy. The store a
user's first run creates is still exercised: tests/flows/test_fresh_clone.py and tests marked ``fresh_mlflow_store``
start from an empty DGN_HOME.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlflow.tracking import MlflowClient


def migrated_template(root: Path) -> Path:
    """A new store under ``root``, its schema created and migrated (tests/conftest.py makes one per session)."""
    path = root / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def seed_store(template: Path, db: Path) -> Path:
    """``db`` as a copy of the migrated ``template`` (its folder made); returns ``db``."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, db)
    return db


def finished_runs(db: Path) -> int:
    """How many runs of the SQLite store ``db`` are FINISHED (over all its experiments)."""
    client = MlflowClient(f"sqlite:///{db}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return sum(r.info.status == "FINISHED" for r in client.search_runs(ids))
