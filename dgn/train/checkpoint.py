"""Checkpoints: plain dicts of tensors and primitives, loadable with ``weights_only=True``.

Every checkpoint says what it holds (``kind``) and the config that rebuilds
its networks, so a wrong file is caught with one clear sentence instead of a
state-dict traceback. Writes are atomic on local disk (temp file + rename)
and single-object PUTs on S3: a crash never leaves a half checkpoint behind.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from dgn.data.uri import read_bytes, write_bytes
from dgn.errors import DGNError

FORMAT = 1
KINDS = ("classifier", "gan", "judge")


def _is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def save_checkpoint(obj: dict, uri: str) -> str:
    """Write ``obj`` (must carry ``kind``) to ``uri`` atomically; returns ``uri``."""
    if obj.get("kind") not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}")
    obj = {**obj, "format": FORMAT}
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    return write_bytes(uri, data)


def _read_bytes(uri: str) -> bytes:
    if _is_remote(uri):
        try:
            return read_bytes(uri)
        except FileNotFoundError:
            raise DGNError(f"checkpoint {uri!r} does not exist") from None
    path = Path(uri.removeprefix("file://"))
    if not path.is_file():
        raise DGNError(f"checkpoint {uri!r} does not exist")
    return path.read_bytes()


def load_checkpoint(uri: str, kind: str | None = None) -> dict:
    """Load a checkpoint with ``weights_only=True``; ``kind`` checks what it holds."""
    data = _read_bytes(uri)
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — a corrupt or foreign file
        raise DGNError(f"checkpoint {uri!r} is corrupt or not a dgn checkpoint ({type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("kind") not in KINDS:
        raise DGNError(f"checkpoint {uri!r} is not a dgn checkpoint (no 'kind' among {', '.join(KINDS)})")
    if kind is not None and obj["kind"] != kind:
        raise DGNError(f"checkpoint {uri!r} holds a {obj['kind']} but a {kind} checkpoint is needed")
    return obj


def load_state(module: torch.nn.Module, state: dict, *, what: str) -> None:
    """``module.load_state_dict`` with a one-sentence error for a wrong architecture."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1 if len(str(e).splitlines()) > 1 else 0].strip()
        raise DGNError(f"{what} does not fit the network it should rebuild ({first})") from None
