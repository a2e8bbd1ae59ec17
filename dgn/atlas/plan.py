"""Work items: (source, layer, unit block), ordered so that an actor rarely reloads a network.

A *source* is one point of the atlas's time axis: a classifier checkpoint with
the run's G (the default), or a G checkpoint against one fixed target
(``generators="all"``). Units are split into blocks aligned to multiples of
``chunk``, so the same unit always falls in the same block whatever ``--units``
said, and the manifest's per-unit record keeps every unit exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs

from dgn import storage
from dgn.atlas.config import COMBINE, parse_spec
from dgn.data.uri import join, resolve
from dgn.errors import DGNError
from dgn.storage import epoch_file


@dataclass(frozen=True)
class Source:
    epoch: int  # the step of the atlas's time axis
    target: str  # classifier checkpoint URI, TorchScript path or torchvision:NAME
    generator: str  # G checkpoint URI
    run_target: bool = True  # target is a classifier checkpoint of the run (else an adapter spec)

    @property
    def key(self) -> str:
        return f"epoch={self.epoch:04d}"


@dataclass(frozen=True)
class Item:
    source: Source
    layer: str  # a layer name, or COMBINE
    units: tuple  # channel indices, or composition strings for COMBINE

    @property
    def id(self) -> str:
        h = hashlib.sha1(repr(self.units).encode()).hexdigest()[:8]
        first = self.units[0] if self.layer != COMBINE else "c"
        return f"{self.source.key}-{self.layer}-{first}-{len(self.units)}-{h}"

    def to_dict(self) -> dict:
        return {"source": asdict(self.source), "layer": self.layer, "units": list(self.units)}

    @property
    def objectives(self) -> list[str]:
        return list(self.units) if self.layer == COMBINE else [f"{self.layer}:{u}" for u in self.units]


def list_epochs(uri: str) -> list[tuple[int, str]]:
    """[(epoch, uri)] of ``uri/epoch=NNNN.pt`` files, by epoch (the pattern of dgn.storage)."""
    return [(e, join(uri, epoch_file(e))) for e in storage.list_epochs(uri)]


def generator_dir(storage: str, layer: str = "") -> str:
    """``<storage>/generator/<layer>``: the named layer, else fc6 if trained, else the only one."""
    root = join(storage, "generator")
    fs, path = resolve(root)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError:
        infos = []
    layers = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)
    if not layers:
        raise DGNError(f"no generator checkpoints under {root!r}: train a run first (python flows/train.py "
                       f"--storage {storage})")
    if layer:
        if layer not in layers:
            raise DGNError(f"no generator for layer {layer!r} under {root!r}; trained: {', '.join(layers)}")
        return join(root, layer)
    if "fc6" in layers:
        return join(root, "fc6")
    if len(layers) > 1:
        raise DGNError(f"several generators under {root!r} ({', '.join(layers)}): choose one with generator_layer")
    return join(root, layers[0])


def sources(storage: str, *, target: str, generators: str, generator_layer: str = "") -> list[Source]:
    """The atlas's time axis, oldest first."""
    gens = list_epochs(generator_dir(storage, generator_layer))
    if not gens:
        raise DGNError(f"no generator checkpoints (epoch=NNNN.pt) under {generator_dir(storage, generator_layer)!r}")
    classifiers = list_epochs(join(storage, "classifier"))
    if target == "run" and not classifiers:
        raise DGNError(f"no classifier checkpoints under {join(storage, 'classifier')!r}: train a run first, or "
                       "give --target")
    if generators == "all":
        fixed = classifiers[-1][1] if target == "run" else target
        return [Source(epoch=e, target=fixed, generator=u, run_target=target == "run") for e, u in gens]
    g = gens[-1][1]
    if target == "run":
        return [Source(epoch=e, target=u, generator=g) for e, u in classifiers]
    return [Source(epoch=0, target=target, generator=g, run_target=False)]


def select_epochs(srcs: list[Source], spec: str) -> list[Source]:
    """``all``, ``last``, or an epoch spec like ``1-3,8`` (each epoch must exist)."""
    if spec == "all":
        return srcs
    if spec == "last":
        return srcs[-1:]
    have = {s.epoch: s for s in srcs}
    want = parse_spec(spec, 10**9)
    missing = [e for e in want if e not in have]
    if missing:
        raise DGNError(f"epoch(s) {missing} have no checkpoint; available: {', '.join(map(str, sorted(have)))}")
    return [have[e] for e in want]


def blocks(units: list[int], chunk: int) -> list[tuple[int, ...]]:
    """Units grouped by aligned block [b·chunk, (b+1)·chunk)."""
    out: dict[int, list[int]] = {}
    for u in units:
        out.setdefault(u // chunk, []).append(u)
    return [tuple(v) for _, v in sorted(out.items())]


def make_items(srcs: list[Source], wanted: dict[str, list], done: dict[tuple[str, str], set], *, chunk: int
               ) -> list[Item]:
    """Items still to do, source by source (each source's layers together: one target load per source)."""
    items = []
    for s in srcs:
        for layer, units in wanted.items():
            todo = [u for u in units if u not in done.get((s.key, layer), set())]
            if not todo:
                continue
            if layer == COMBINE:
                items += [Item(s, layer, tuple(todo[i:i + chunk])) for i in range(0, len(todo), chunk)]
            else:
                items += [Item(s, layer, b) for b in blocks(todo, chunk)]
    return items
