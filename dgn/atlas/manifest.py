"""The manifest beside an atlas's outputs (a directory or s3:// prefix): what is finished, and where.

    <out>/manifest.json        {"settings": ..., "items": {id: {...}}, "logged": {run_id: [...]}}
    <out>/items/<id>.npz       one finished item: images and numbers per unit

Only the driver writes it. An item's result file is written before the
manifest names it, and each write is atomic (temp file + rename locally, one
PUT on S3), so a crash at any point leaves at worst an unlisted result file
that the rerun overwrites: every (source, layer, unit) is recorded once.
"""

from __future__ import annotations

import io
import json

import numpy as np

from dgn.data.uri import join, read_bytes, write_bytes
from dgn.errors import DGNError

VERSION = 1


def read_if_present(uri: str) -> bytes | None:
    """The object at ``uri``, or None where there is none yet (or it cannot be read)."""
    try:
        return read_bytes(uri)
    except (FileNotFoundError, OSError):
        return None


class Manifest:
    def __init__(self, out: str, settings: dict):
        self.out = out
        self.settings = settings
        self.items: dict[str, dict] = {}
        self.logged: dict[str, list[str]] = {}

    @property
    def uri(self) -> str:
        return join(self.out, "manifest.json")

    @classmethod
    def open(cls, out: str, settings: dict) -> Manifest:
        """The manifest at ``out`` (a new one if none); refuses one made with other settings."""
        m = cls(out, settings)
        raw = read_if_present(m.uri)
        if raw is None:
            return m
        try:
            data = json.loads(raw)
        except ValueError:
            raise DGNError(f"atlas manifest {m.uri!r} is corrupt; delete it (and {join(out, 'items')!r}) to start "
                           "over") from None
        old = data.get("settings", {})
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise DGNError(f"the atlas at {out!r} was made with other settings ({', '.join(diff)}); give another "
                           "--out or delete it")
        m.items = data.get("items", {})
        m.logged = data.get("logged", {})
        return m

    def save(self) -> None:
        body = {"version": VERSION, "settings": self.settings, "items": self.items, "logged": self.logged}
        write_bytes(self.uri, json.dumps(body, indent=1, sort_keys=True).encode())

    def done_units(self) -> dict[tuple[str, str], set]:
        out: dict[tuple[str, str], set] = {}
        for rec in self.items.values():
            out.setdefault((rec["source"], rec["layer"]), set()).update(rec["units"])
        return out

    def result_uri(self, item_id: str) -> str:
        return join(self.out, "items", f"{item_id}.npz")

    def add(self, item, result: dict, *, meta: dict) -> None:
        """Store ``result`` (arrays) and record the item as finished."""
        if item.id in self.items:
            raise AssertionError(f"item {item.id} recorded twice")
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in result.items()})
        write_bytes(self.result_uri(item.id), buf.getvalue())
        self.items[item.id] = {"source": item.source.key, "epoch": item.source.epoch, "layer": item.layer,
                               "units": list(item.units), **meta}
        self.save()

    def load(self, item_id: str) -> dict:
        raw = read_if_present(self.result_uri(item_id))
        if raw is None:
            raise DGNError(f"atlas result {self.result_uri(item_id)!r} named in the manifest is missing; delete "
                           f"{self.uri!r} to rebuild")
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def mark_logged(self, run_id: str, key: str) -> None:
        self.logged.setdefault(run_id, []).append(key)
        self.save()

    def was_logged(self, run_id: str, key: str) -> bool:
        return key in self.logged.get(run_id, [])
