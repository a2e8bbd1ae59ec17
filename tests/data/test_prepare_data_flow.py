"""flows/prepare_data.py end to end, as a user runs it."""

import subprocess
import sys
from pathlib import Path

from dgn.data import read_meta
from tests.faults.helpers import help_text

REPO = Path(__file__).resolve().parents[2]


def _run(*args, cwd=REPO):
    return subprocess.run([sys.executable, "flows/prepare_data.py", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_writes_synthetic_dataset(tmp_path):
    out = tmp_path / "shapes"
    p = _run("--out", str(out), "--n-train", "20", "--n-val", "10", "--image-size", "32", "--seed", "3")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"wrote 20 train + 10 val rows, 10 classes, to {out}"
    assert read_meta(str(out)).counts == {"train": 20, "val": 10}


def test_help(capsys):
    code, out = help_text(capsys, "prepare_data")
    assert code == 0 and "imagefolder:DIR" in out and "ray job submit" in out


def test_bad_source_is_one_line_without_traceback(tmp_path):
    p = _run("--out", str(tmp_path / "x"), "--source", "bogus:x")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and p.stderr.startswith("error: --source 'bogus:x'")
    assert "Traceback" not in p.stderr
    p = _run("--out", str(tmp_path / "x"), "--source", f"imagefolder:{tmp_path / 'none'}")
    assert p.returncode == 2 and p.stderr.startswith("error: image folder") and "Traceback" not in p.stderr
