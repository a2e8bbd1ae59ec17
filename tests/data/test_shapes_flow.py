"""The kinds from the command line: prepare_data --synthetic KIND and the cue-conflict bench's dry run."""

import subprocess
import sys
from pathlib import Path

import pytest

from dgn.data import load_split, read_meta
from dgn.data.synthetic import HELD_OUT, KINDS, class_names
from tests.faults.helpers import flow, help_text

REPO = Path(__file__).resolve().parents[2]


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", HELD_OUT)
def test_prepare_data_writes_a_held_out_kind(tmp_path, kind):
    out = tmp_path / kind
    p = _run("flows/prepare_data.py", "--out", str(out), "--synthetic", kind, "--n-train", "20", "--n-val", "10",
             "--image-size", "24")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"wrote 20 train + 10 val rows, 10 classes, to {out}"
    meta = read_meta(str(out))
    assert meta.class_names == class_names(kind) and meta.counts == {"train": 20, "val": 10}
    x, y = load_split(str(out), "train", image_size=24)
    assert x.shape == (20, 3, 24, 24) and len(set(y.tolist())) == 10


def test_prepare_data_kinds_and_the_old_colour_flag(tmp_path, capsys):
    mod = flow("prepare_data")
    parse_args = mod.parse_args
    assert tuple(mod.KINDS) == tuple(KINDS)  # the flow offers the library's kinds
    assert parse_args(["--out", "x"]).synthetic == "shapes"
    assert parse_args(["--out", "x", "--colour", "class"]).synthetic == "hues"
    assert parse_args(["--out", "x", "--colour", "random"]).synthetic == "shapes"
    p = _run("flows/prepare_data.py", "--out", str(tmp_path / "x"), "--synthetic", "stripes")
    assert p.returncode == 2 and "invalid choice: 'stripes'" in p.stderr
    code, out = help_text(capsys, "prepare_data")
    assert code == 0 and "--synthetic KIND" in out and "glyphs" in out


def test_cue_conflict_dry_run():
    p = _run("bench/cue_conflict.py", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "kind shapes" in p.stdout and "| E |" in p.stdout and "| judge |" in p.stdout and "shape bias" in p.stdout
