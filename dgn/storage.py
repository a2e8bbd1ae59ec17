"""The layout of a run's storage: every path a stage writes or reads, what exists, atomic reads and writes.

One place names the tree that training, atlases and sweeps share (local disk or ``s3://``)::

    data/                          the embedded synthetic dataset (when no --data)
    classifier/epoch=NNNN.pt       every epoch's classifier E (the atlas's time axis)
    judge/epoch=NNNN.pt            every epoch's judge; judge/judge.pt the final one
    generator/<layer>/epoch=NNNN.pt
    quality.json, montage-*.png    the quality report
    atlas/                         manifest.json, items/, html/ (flows/atlas.py, the atlas stage)
    ray/                           Ray Train's own run state

Locations are made absolute on the driver (:func:`dgn.data.uri.absolute`) before a layout is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow.fs as pafs

from dgn.data.uri import absolute, read_bytes, resolve, write_bytes
from dgn.errors import DGNError

EPOCH_FILE = re.compile(r"^epoch=(\d+)\.pt$")  # written with 4 digits (epoch=0001.pt); read with any


def join(uri: str, *parts: str) -> str:
    """``uri/part/...`` for a local path or an ``s3://`` URI (always ``/``)."""
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts if p)])


def epoch_file(epoch: int) -> str:
    return f"epoch={epoch:04d}.pt"


def exists(uri: str, *, folder: bool = False) -> bool:
    """A file at ``uri`` (``folder=True``: a folder, or on S3 a prefix with objects under it)."""
    fs, path = resolve(uri)
    try:
        kind = fs.get_file_info(path).type
        return kind == pafs.FileType.Directory if folder else kind == pafs.FileType.File
    except OSError as e:
        raise DGNError(f"cannot read {uri}: {' '.join(str(e).split())[:200]}") from None


def read_text(uri: str) -> str:
    return read_bytes(uri).decode()


def write_text(uri: str, text: str) -> str:
    return write_bytes(uri, text.encode())


def list_epochs(folder: str) -> list[int]:
    """Epochs with a checkpoint ``epoch=N.pt`` directly under ``folder`` (local or s3://), sorted; [] if none."""
    fs, root = resolve(folder)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except OSError as e:
        raise DGNError(f"cannot list checkpoints in {folder}: {' '.join(str(e).split())[:200]}") from None
    found = [EPOCH_FILE.match(i.base_name) for i in infos if i.type == pafs.FileType.File]
    return sorted(int(m.group(1)) for m in found if m)


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run's storage."""

    root: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", absolute(self.root).rstrip("/"))

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    # stages: "classifier", "judge", or "generator/<layer>"
    @staticmethod
    def generator_dir(layer: str) -> str:
        return f"generator/{layer}"

    def stage_dir(self, stage_dir: str) -> str:
        return self.path(stage_dir)

    def checkpoint(self, stage_dir: str, epoch: int) -> str:
        return self.path(stage_dir, epoch_file(epoch))

    def epochs(self, stage_dir: str) -> list[int]:
        return list_epochs(self.stage_dir(stage_dir))

    def checkpoints(self, stage_dir: str) -> list[str]:
        return [self.checkpoint(stage_dir, e) for e in self.epochs(stage_dir)]

    def generator(self, layer: str, epoch: int) -> str:
        return self.checkpoint(self.generator_dir(layer), epoch)

    @property
    def data(self) -> str:
        return self.path("data")

    @property
    def judge(self) -> str:
        """The final judge, what metrics and atlases load."""
        return self.path("judge", "judge.pt")

    @property
    def quality(self) -> str:
        return self.path("quality.json")

    def montage(self, name: str) -> str:
        return self.path(name)

    @property
    def atlas(self) -> str:
        return self.path("atlas")

    @property
    def ray(self) -> str:
        return self.path("ray")
