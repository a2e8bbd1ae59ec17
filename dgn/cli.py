"""What every flow shares at its edge: the common flags, and a user's error as one line on stderr and exit 2.

``flows/*.py`` call :func:`run_flow` around their work. A :class:`DGNError`
(bad value, bad input) prints as it is; a filesystem or URI error that a user
caused (a storage under a file, a folder without write permission, a path
pyarrow cannot parse) prints as one sentence naming the path, never as a
traceback. Every line is scrubbed of secrets (AWS keys, tokens) first, and so is
everything a flow prints through :func:`log`.

The flags that mean the same thing in several flows are defined once here
(:data:`FLAGS`, added with :func:`add_flags`): ``--storage``, ``--data``,
``--seed``, ``--experiment``, ``--run-name``, ``--no-tracking``, ``--num-cpus``,
``--gpu``, ``--config`` and ``--dry-run`` (a tiny end-to-end run of that flow).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import tomllib
import yaml

from dgn.errors import DGNError
from dgn.tracking.core import scrub

EXIT_USER_ERROR = 2


def describe(e: BaseException) -> str | None:
    """One sentence for a user-caused error, or None for a bug (which keeps its traceback)."""
    if isinstance(e, DGNError):
        return " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError):
        where = " → ".join(repr(str(f)) for f in (e.filename, getattr(e, "filename2", None)) if f)
        what = e.strerror or " ".join(str(e).split()) or type(e).__name__
        return f"{what}: {where}" if where else f"file system error: {what}"
    if isinstance(e, pa.ArrowException):
        return f"cannot use that location: {' '.join(str(e).split())[:300]}"
    return None


def run_flow(work: Callable[[], int]) -> int:
    """``work()``'s exit code; a user error → ``error: <sentence>`` on stderr and 2."""
    try:
        return work()
    except (DGNError, OSError, pa.ArrowException) as e:
        print(scrub(f"error: {describe(e)}"), file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


# the flags several flows share: one name, one meaning (each flow gives its own help and default)
FLAGS: dict[str, dict] = {
    "storage": dict(help="where the flow writes (dir or s3://)"),
    "data": dict(help="dataset URI (dir or s3://) with train/ and val/ Parquet; default: the embedded set"),
    "seed": dict(type=int, help="random seed"),
    "experiment": dict(help="MLflow experiment"),
    "run-name": dict(help="MLflow run name; the same name continues that run"),
    "no-tracking": dict(action="store_true", help="do not log to MLflow"),
    "num-cpus": dict(type=int, help="CPUs of the local Ray started when RAY_ADDRESS is unset; default: all"),
    "gpu": dict(action="store_true", help="run on CUDA"),
    "config": dict(help="YAML or TOML file with any of the flow's config fields; flags override it"),
    "dry-run": dict(action="store_true", help="a tiny end-to-end run of this flow (seconds to a minute): tests, "
                    "smoke checks"),
}


def add_flags(p: argparse.ArgumentParser, *names: str, **helps: str) -> None:
    """Add the shared flags ``names`` to ``p``; ``helps`` (``run_name="…"``) replaces a flag's help."""
    for name in names:
        spec = dict(FLAGS[name])
        key = name.replace("-", "_")
        if key in helps:
            spec["help"] = helps[key]
        p.add_argument(f"--{name}", **spec)


def parser(doc: str) -> argparse.ArgumentParser:
    """A flow's parser: the first paragraph of its docstring as description, the rest as epilogue."""
    head, _, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)


def log(message: str) -> None:
    """What a flow prints: scrubbed of secrets, flushed at once."""
    print(scrub(message), flush=True)


def load_config_file(path: str) -> dict:
    """A flow's ``--config`` file: a mapping of settings from YAML, or TOML by extension."""
    f = Path(path)
    if not f.is_file():
        raise DGNError(f"config file {path!r} does not exist")
    text = f.read_text()
    try:
        data = tomllib.loads(text) if f.suffix == ".toml" else (yaml.safe_load(text) or {})
    except Exception as e:  # noqa: BLE001 — the user's file
        raise DGNError(f"config file {path!r} is not valid {'TOML' if f.suffix == '.toml' else 'YAML'}: {e}") from None
    if not isinstance(data, dict):
        raise DGNError(f"config file {path!r} must hold a mapping of settings, not a {type(data).__name__}")
    return data
