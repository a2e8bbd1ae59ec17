"""bench/realism_headline.py keeps each run's row in the run's storage and reads it back for the same settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import realism_headline  # a bench script, importable once bench/ is on the path


def test_a_scored_run_is_read_back_not_rescored(tmp_path):
    run = tmp_path / "glyphs-seed1"  # no checkpoints: scoring it would fail
    run.mkdir()
    row = {"run": "elsewhere", "recognisability": 0.5, "recog_lo": 0.3, "recog_hi": 0.7, "n": 200.0, "fd": 9.0,
           "floor_fd": 1.0, "precision": 0.2, "floor_precision": 0.9, "recall": 0.3, "floor_recall": 0.9,
           "seconds": 1.0}
    (run / "realism_headline-s20-a0.json").write_text(json.dumps(row))
    assert realism_headline.score(str(run), starts=20, am_over={}) == {**row, "run": str(run)}
    with pytest.raises(SystemExit, match="holds no classifier checkpoints"):  # other settings: scored, and fails
        realism_headline.score(str(run), starts=4, am_over={})
