"""flows/atlas.py end to end: --help, --dry-run, and bad input (one sentence, exit 2, nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.faults.helpers import help_text, one_line_error, run_main
from tests.support.mlflow_store import finished_runs, seed_store

ROOT = Path(__file__).resolve().parents[2]


def _flow(*args, env=None, timeout=400, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "flows" / "atlas.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})})


def test_help(capsys):
    code, out = help_text(capsys, "atlas")
    assert code == 0 and "ray job submit" in out and "--combine" in out


def test_dry_run_end_to_end(tmp_path, mlflow_template):
    home = tmp_path / "home"  # the default store: SQLite under $DGN_HOME (no server to start)
    seed_store(mlflow_template, home / "mlflow.db")  # an empty store, already migrated
    r = _flow("--dry-run", env={"DGN_HOME": str(home)}, cwd=tmp_path)  # its tiny run goes to ./runs/atlas-dry-run
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "runs" / "atlas-dry-run" / "atlas" / "manifest.json").is_file()
    assert "mlflow: logging into run" in r.stdout and finished_runs(home / "mlflow.db") == 1
    assert '"items_done": 12' in r.stdout and "done: the atlas is in" in r.stdout
    html = r.stdout.rsplit("(open ", 1)[1].split(")")[0]
    assert Path(html).is_file() and "fc8" in Path(html).read_text()


def test_bad_input_is_one_sentence_and_writes_nothing(tiny_run, tmp_path, capsys):
    # in this process (the flow's main(argv): argparse to exit code); one real process below for the exit status
    out = tmp_path / "atlas"
    for args, msg in ((["--layers", "fc8", "--units", "0-99"], "error: unit 99 is out of range of layer 'fc8'"),
                      (["--layers", "fc9"], "error: unknown layer 'fc9'"),
                      (["--combine", "fc8:1+"], "error: bad objective"),
                      (["--generators", "all", "--generator-layer", "conv3"], "error: no generator for layer 'conv3'")):
        code, _, err = run_main(capsys, "atlas", "--storage", tiny_run, "--out", str(out), "--no-tracking", *args)
        assert one_line_error(code, err).startswith(msg), (args, err)
        assert not out.exists()
    r = _flow("--no-tracking", timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: --storage is required")
