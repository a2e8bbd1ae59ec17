"""What every flow does at its edge: turn a user's error into one line on stderr and exit status 2.

``flows/*.py`` call :func:`run_flow` around their work. A :class:`DGNError`
(bad value, bad input) prints as it is; a filesystem or URI error that a user
caused (a storage under a file, a folder without write permission, a path
pyarrow cannot parse) prints as one sentence naming the path, never as a
traceback. Every line is scrubbed of secrets (AWS keys, tokens) first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pyarrow as pa

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
