"""flows/train.py end to end on its fast path, and its handling of bad input."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "flows" / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_dry_run_end_to_end(tmp_path):
    storage = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("classifier_epochs: 2\ngan:\n  w_adv: 0.02\n")
    r = _run("--dry-run", "--storage", str(storage), "--config", str(cfg))
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (storage / "classifier").iterdir()) == ["epoch=0001.pt", "epoch=0002.pt"]
    assert (storage / "generator" / "fc6" / "epoch=0001.pt").is_file()
    assert (storage / "judge" / "judge.pt").is_file()
    q = json.loads((storage / "quality.json").read_text())
    assert q["config"]["gan"]["w_adv"] == 0.02 and q["config"]["classifier_epochs"] == 2
    for k in ("recon_judge_acc", "am_recognisability", "am_median_activation_ratio", "am_realism_fd"):
        assert k in q
    assert (storage / "montage-dgn-am-fc8.png").is_file()
    assert "done:" in r.stdout


def test_help_exits_zero():
    r = _run("--help")
    assert r.returncode == 0 and "--encoder-layer" in r.stdout


def _one_line_error(r):
    assert r.returncode == 2
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_bad_values_fail_before_any_work(tmp_path):
    storage = tmp_path / "run"
    line = _one_line_error(_run("--dry-run", "--storage", str(storage), "--encoder-layer", "fc9"))
    assert "'fc9'" in line and "fc6" in line
    line = _one_line_error(_run("--dry-run", "--storage", str(storage), "--gan-epochs", "-1"))
    assert "gan-epochs must be ≥ 0" in line
    line = _one_line_error(_run("--dry-run", "--storage", str(storage), "--data", str(tmp_path / "missing")))
    assert "missing" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text("gan:\n  w_pixel: 1\n")
    line = _one_line_error(_run("--dry-run", "--storage", str(storage), "--config", str(bad)))
    assert "w_pixel" in line
    assert not storage.exists(), "nothing is written when the input is bad"


def test_paper_preset_runs_end_to_end(tmp_path):
    r = _run("--dry-run", "--preset", "paper", "--storage", str(tmp_path / "paper"))
    assert r.returncode == 0, r.stderr[-2000:]
    q = json.loads((tmp_path / "paper" / "quality.json").read_text())
    assert q["config"]["gan"]["reduction"] == "caffe" and q["config"]["gan"]["w_adv"] == 100.0
    assert q["config"]["am"]["lr"] == 8.0
