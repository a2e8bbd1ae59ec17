"""Helpers the bench scripts share (not a bench): --dry-run, a finished run's networks, a tiny run, figures.

Benches import it as ``from common import ...``: ``python bench/X.py`` puts bench/ on the path.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from dgn.data import load_split
from dgn.storage import RunLayout, exists
from dgn.train import load_classifier, load_generator, load_judge


def parse_args(p: argparse.ArgumentParser, argv=None, **dry_run) -> argparse.Namespace:
    """Parse, with a ``--dry-run`` flag that sets these options to tiny values (a callable value is called then):
    the same code path, end to end, in seconds; on one torch thread, since a dry run shares the machine."""
    shown = ", ".join(f"--{k.replace('_', '-')} {'(temporary)' if callable(v) else v}" for k, v in dry_run.items())
    p.add_argument("--dry-run", action="store_true", help=f"the same path at tiny sizes: {shown}")
    a = p.parse_args(argv)
    if a.dry_run:
        torch.set_num_threads(1)
        for k, v in dry_run.items():
            setattr(a, k, v() if callable(v) else v)
    return a


def choose(spec: str, table: dict, what: str) -> list[str]:
    """The comma-separated names of ``spec``, each a key of ``table``; exits with one line naming the bad ones."""
    names = [n for n in spec.split(",") if n]
    bad = [n for n in names if n not in table]
    if bad:
        sys.exit(f"error: unknown {what}(s) {bad}; valid: {', '.join(table)}")
    return names


def tiny_run(prefix: str, **kw) -> str:
    """A fresh tiny training run (dgn.atlas.demo.write_tiny_run) in a temporary folder: what --dry-run reads."""
    from dgn.atlas.demo import write_tiny_run  # here: dgn.atlas imports Ray, which most benches never start

    return write_tiny_run(str(Path(tempfile.mkdtemp(prefix=prefix)) / "run"), **kw)


@dataclass
class Run:
    """The last checkpoints of a finished run and its val split (uint8 images, labels)."""

    storage: Path
    encoder: torch.nn.Module  # eval mode
    classifier: str  # E's checkpoint URI
    data: str
    val: torch.Tensor  # uint8 (M, 3, S, S)
    val_labels: torch.Tensor  # int64 (M,)
    judge: torch.nn.Module | None = None
    generator: torch.nn.Module | None = None
    generator_ck: dict | None = None  # holds "code_stats"
    generator_uri: str = ""


def load_run(run: str | Path, *, judge: bool = True, generator: bool = True) -> Run:
    """E (the last classifier checkpoint), the judge and the last G of ``run``; exits with one line when missing."""
    layout = RunLayout(str(run))
    cks = layout.checkpoints("classifier")
    if not cks:
        sys.exit(f"error: {run} holds no classifier checkpoints; run `python flows/train.py --storage {run}` first")
    encoder, ck = load_classifier(cks[-1])
    data = ck.get("data") or layout.data
    xv, yv = load_split(data, "val", image_size=encoder.config.image_size)
    out = Run(storage=Path(run), encoder=encoder, classifier=cks[-1], data=data, val=xv, val_labels=torch.as_tensor(yv))
    if judge:
        if not exists(layout.judge):
            sys.exit(f"error: {run} holds no judge/judge.pt; run `python flows/train.py --storage {run}` first")
        out.judge = load_judge(layout.judge)
    if generator:
        gens = [u for layer in _generator_layers(layout) for u in layout.checkpoints(layout.generator_dir(layer))]
        if not gens:
            sys.exit(f"error: {run} holds no generator checkpoints; run `python flows/train.py --storage {run}` first")
        out.generator_uri = gens[-1]
        out.generator, out.generator_ck = load_generator(gens[-1])
    return out


def _generator_layers(layout: RunLayout) -> list[str]:
    root = Path(layout.path("generator"))
    layers = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return ["fc6"] if "fc6" in layers else layers  # fc6 if trained, as dgn.atlas does


def realism_cell(m: dict, prefix: str = "am_realism_") -> str:
    """FD with the real-vs-real floor and N beside it (docs/metrics.md): read FD only against its floor."""
    return f"{m[prefix + 'fd']:.1f} (floor {m[prefix + 'floor_fd']:.1f}, N={m[prefix + 'n']:.0f})"


def precision_cell(m: dict, prefix: str = "am_realism_") -> str:
    return f"{m[prefix + 'precision']:.2f} (floor {m[prefix + 'floor_precision']:.2f})"
