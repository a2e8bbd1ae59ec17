"""The fixed scoring rule, the weight grid, and bad input to the sweep flow (no Ray needed)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from dgn.errors import DGNError
from dgn.sweep import score, sweep_config, weight_sets
from dgn.sweep.report import per_layer, verdict, verdict_line
from tests.faults.helpers import flow, help_text

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"am_recognisability": 0.9, "am_median_activation_ratio": 1.2, "am_realism_fd": 50.0, "recon_image_mse": 0.02}


def test_score_is_the_documented_rule():
    # 0.4·0.9 + 0.2·0.6 + 0.2·(1/1.5) + 0.2·(1/1.4)
    assert score(GOOD) == pytest.approx(0.36 + 0.12 + 0.2 / 1.5 + 0.2 / 1.4)
    perfect = {"am_recognisability": 1.0, "am_median_activation_ratio": 5.0, "am_realism_fd": 0.0, "recon_image_mse": 0.0}
    assert score(perfect) == pytest.approx(1.0)


@pytest.mark.parametrize("key,worse", [("am_recognisability", 0.5), ("am_median_activation_ratio", 0.3),
                                       ("am_realism_fd", 200.0), ("recon_image_mse", 0.1)])
def test_each_term_moves_the_score_the_right_way(key, worse):
    assert score({**GOOD, key: worse}) < score(GOOD)


def test_nan_metrics_count_as_worst_not_as_nan():
    s = score({**GOOD, "am_median_activation_ratio": float("nan"), "am_realism_fd": float("inf")})
    assert math.isfinite(s) and s < score(GOOD)


def test_weight_sets_start_at_the_reference_and_stay_within_the_spread():
    cfg = sweep_config("default", samples=5, spread=3.0)
    sets = weight_sets(cfg)
    assert sets[0] == {"w_image": 1.0, "w_feature": 0.1, "w_adv": 0.01}
    assert len(sets) == 5 and len({tuple(s.values()) for s in sets}) == 5
    for s in sets[1:]:
        for k, ref in sets[0].items():
            assert ref / 3.0 <= s[k] <= ref * 3.0
    assert weight_sets(cfg) == sets  # seeded: the same grid on resume


def test_verdict_names_the_winner_and_its_margin():
    rows = [{"layer": "fc6", "trial": "a", "score": 0.6, "score_epoch1": 0.3, "epochs": 4},
            {"layer": "fc6", "trial": "b", "score": 0.5, "score_epoch1": 0.35, "epochs": 2},
            {"layer": "conv3", "trial": "c", "score": 0.45, "score_epoch1": 0.2, "epochs": 1},
            {"layer": "fc8", "trial": "d", "score": float("nan"), "score_epoch1": float("nan"), "epochs": 0}]
    summary = per_layer(rows, ("conv3", "fc6", "fc8"))
    v = verdict(summary)
    assert v["best_layer"] == "fc6" and v["runner_up"] == "conv3" and v["fc6_wins"]
    assert v["margin"] == pytest.approx(0.15)
    assert summary[1]["mean_score_epoch1"] == pytest.approx(0.325)
    assert "fc6 wins" in verdict_line(v)


def test_bad_layer_is_one_sentence():
    with pytest.raises(DGNError, match="fc9"):
        sweep_config("default", layers=("fc6", "fc9"))
    with pytest.raises(DGNError, match="conv1"):  # a real layer, but not one G can be trained on here
        sweep_config("default", layers=("conv1",))


def test_flow_rejects_bad_input_without_traceback_or_output(tmp_path, capsys):
    storage = tmp_path / "s"
    main = flow("sweep_layers").main
    for args in (["--trial-epochs", "0"], ["--cpus-per-trial", "4", "--num-cpus", "2"], ["--layers", ""]):
        assert main(["--dry-run", "--no-tracking", "--storage", str(storage), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
    # and as a process: exit status 2, one line, no traceback
    p = subprocess.run([sys.executable, str(ROOT / "flows/sweep_layers.py"), "--dry-run", "--no-tracking",
                        "--storage", str(storage), "--layers", "fc6,fc9"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "fc9" in p.stderr and "Traceback" not in p.stderr
    assert not storage.exists()  # nothing half-done


def test_help_shows_the_usage(capsys):
    code, out = help_text(capsys, "sweep_layers")
    assert code == 0 and "ray job submit" in out and "--dry-run" in out
