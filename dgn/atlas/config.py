"""What an atlas renders: :class:`AtlasConfig` and the unit-spec mini-language.

Unit specs: ``all``, ``0-9``, ``1,5,7``, ``0-9,20``; per layer with
``fc8=all;fc7=0-15`` (layers not named fall back to an ``*=SPEC`` entry, else ``all``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from dgn.am.dgn_am import AMConfig
from dgn.data.uri import absolute, check_writable
from dgn.errors import DGNError
from dgn.nets.deepsim import parse_spec as parse_generator_spec

DEFAULT_LAYERS = ("fc8", "fc7", "fc6", "conv5")
TARGET_RUN = "run"
GENERATORS = ("latest", "all")
COMBINE = "combine"  # the pseudo-layer that holds multi-unit compositions
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass
class AtlasConfig:
    storage: str  # the training run's storage URI (classifier/, generator/, judge/, data/)
    out: str = ""  # default <storage>/atlas
    layers: tuple[str, ...] | None = None  # None: fc8, fc7, fc6, conv5 (conv: channels at the centre)
    units: str | dict = "all"  # spec for every layer, or {layer: spec}
    epochs: str = "all"  # which checkpoints of the time axis: all | last | a spec of epochs like 1-3,8
    combine: tuple[str, ...] = ()  # compositions, e.g. ("fc8:3+fc8:7",)
    target: str = TARGET_RUN  # run | TorchScript file | torchvision:NAME
    target_weights: str = ""  # weights file for torchvision:NAME
    generators: str = "latest"  # latest: one G, every classifier epoch; all: every G epoch against one target
    generator_layer: str = ""  # which generator/<layer>/ (default: fc6 if present, else the only one)
    actors: int = 2
    threads: int = 0  # torch threads per actor (0: cpus // actors, at least 1)
    chunk: int = 64  # units per work item (one batched DGN-AM call)
    am: dict = field(default_factory=dict)  # AMConfig fields over AMConfig() (the product default; AM_PAPER for a published prior)
    starts: int = 1  # restarts per unit; the best (by objective) is kept
    seed: int = 0
    n_real: int = 1000  # validation images for best-real activations and dead-unit detection
    device: str = "cpu"
    html: bool = True
    # a published prior instead of the run's G: "deepsim:fc6=FILE" (dgn.nets.deepsim); storage is then optional
    generator: str = ""
    bounds: str = ""  # its code bounds: an act_range-format file, or "imagefolder:DIR" (mean + 3σ through the target)
    data: str = ""  # a contract dataset for best-real activations (default: the run's data; none for a deepsim G)

    def __post_init__(self) -> None:
        self.storage, self.out, self.target_weights = map(absolute, (self.storage, self.out, self.target_weights))
        if self.target != TARGET_RUN and not self.target.startswith("torchvision:"):
            self.target = absolute(self.target)  # a TorchScript file
        if self.generator.startswith("deepsim:") and "=" in self.generator:
            layer, path = self.generator.split("=", 1)
            self.generator = f"{layer}={absolute(path)}"
        if self.bounds:
            folder = self.bounds.startswith("imagefolder:")
            path = absolute(self.bounds.removeprefix("imagefolder:"))
            self.bounds = f"imagefolder:{path}" if folder else path
        self.data = absolute(self.data)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def out_uri(self) -> str:
        return self.out or self.storage.rstrip("/") + "/atlas"

    @property
    def published(self) -> bool:
        """A published prior (deepsim:…) rather than the run's own G."""
        return bool(self.generator)

    def validate(self) -> None:
        if self.published:
            layer, path = parse_generator_spec(self.generator)
            if not Path(path).is_file():
                raise DGNError(f"generator weights {path!r} do not exist (deepsim:{layer}=FILE: a local upconvGAN "
                               "state dict; see docs/deepsim.md)")
            if self.target == TARGET_RUN:
                raise DGNError("a deepsim generator needs a target: --target torchvision:NAME (with --target-weights) "
                               "or a TorchScript file")
            if self.generators != "latest":
                raise DGNError("--generators all is for a run's G checkpoints, not a deepsim generator")
            if not self.bounds:
                raise DGNError(f"a deepsim generator needs code bounds: --bounds FILE (the reference's act_range/3x/"
                               f"{layer}.txt format) or --bounds imagefolder:DIR")
            if not self.storage and not self.out:
                raise DGNError("give --out (where the atlas goes) or --storage")
        elif not self.storage:
            raise DGNError("storage is empty: give the training run's storage URI (a directory or s3:// prefix)")
        check_writable(self.out_uri, "atlas output")
        if self.generators not in GENERATORS:
            raise DGNError(f"generators must be one of {', '.join(GENERATORS)}; got {self.generators!r}")
        for name in ("actors", "chunk", "starts", "n_real"):
            if getattr(self, name) < 1:
                raise DGNError(f"{name} must be ≥ 1; got {getattr(self, name)}")
        if self.threads < 0:
            raise DGNError(f"threads must be ≥ 0; got {self.threads}")
        if self.device not in ("cpu", "cuda"):
            raise DGNError(f"device must be cpu or cuda; got {self.device!r}")
        bad = sorted(set(self.am) - {f.name for f in fields(AMConfig)})
        if bad:
            raise DGNError(f"unknown AM setting(s) {bad}; valid: {', '.join(f.name for f in fields(AMConfig))}")
        if self.layers is not None and not self.layers and not self.combine:
            raise DGNError("no layers and no compositions given: nothing to render")
        unit_specs(self.units)  # parses
        if self.epochs not in ("all", "last"):
            parse_spec(self.epochs, 10**9)


def parse_spec(spec: str, n: int, *, layer: str = "") -> list[int]:
    """``all`` / ``0-9`` / ``1,5,7`` → sorted channel indices, each checked against ``n`` channels."""
    spec = str(spec).strip()
    where = f" of layer {layer!r}" if layer else ""
    if spec == "all":
        return list(range(n))
    out: set[int] = set()
    for part in spec.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise DGNError(f"bad unit spec {spec!r}; write all, a range like 0-9, a list like 1,5,7, or both: 0-9,20")
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo:
            raise DGNError(f"bad unit range {part.strip()!r} in {spec!r}: the end is below the start")
        if hi >= n:
            raise DGNError(f"unit {hi} is out of range{where}: it has units 0..{n - 1}")
        out.update(range(lo, hi + 1))
    return sorted(out)


def unit_specs(units: str | dict) -> dict[str, str]:
    """``"0-9"`` → {"*": "0-9"}; ``"fc8=all;fc7=0-15"`` → {"fc8": "all", "fc7": "0-15"}; dicts pass through."""
    if isinstance(units, dict):
        return {str(k): str(v) for k, v in units.items()}
    text = str(units).strip()
    if "=" not in text:
        return {"*": text or "all"}
    out = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise DGNError(f"bad per-layer unit spec {part!r} in {text!r}; write layer=spec;layer=spec, "
                           "e.g. fc8=all;fc7=0-15")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def spec_for(specs: dict[str, str], layer: str) -> str:
    return specs.get(layer, specs.get("*", "all"))
