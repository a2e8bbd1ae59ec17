"""Running a flow's ``main(argv)`` in this process (argparse to exit code) and reading its one-line error."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FLOWS: dict[str, object] = {}


def flow(name: str):
    """The module flows/<name>.py (loaded once)."""
    if name not in _FLOWS:
        spec = importlib.util.spec_from_file_location(f"flow_{name}", ROOT / "flows" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
        _FLOWS[name] = mod
    return _FLOWS[name]


def run_main(capsys, name: str, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``flows/<name>.py argv`` run in this process."""
    capsys.readouterr()
    code = flow(name).main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def help_text(capsys, name: str) -> tuple[int | str | None, str]:
    """(exit code, stdout) of ``flows/<name>.py --help`` run in this process (argparse prints it and exits)."""
    capsys.readouterr()
    try:
        flow(name).main(["--help"])
        code = None  # main returned: --help did not exit
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().out


def run_process(name: str, *argv: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flows" / f"{name}.py"), *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


# MLflow's own notice when it creates a local SQLite store ("... INFO mlflow.store.db.utils: Creating initial ...")
_MLFLOW_NOTICE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO mlflow\.")


def one_line_error(code: int, err: str) -> str:
    """The single ``error: ...`` line of a failed flow (exit 2, no traceback, nothing else on stderr but MLflow's
    store-creation notices)."""
    lines = [line for line in err.strip().splitlines() if line.strip() and not _MLFLOW_NOTICE.match(line)]
    assert code == 2, f"exit code {code}, stderr: {err[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err
    return lines[0]


def tree(path: Path) -> list[str]:
    """Every file and folder under ``path`` (empty when it does not exist)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def live_runs(db: Path) -> list[tuple[str, str]]:
    """(run name, status) of every run in a local MLflow SQLite store that is not FAILED (none if no store)."""
    if not db.exists():
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return [(r.info.run_name, r.info.status) for r in client.search_runs(exps) if r.info.status != "FAILED"]


def listening_addresses(port: int) -> set[str]:
    """The local addresses (``127.0.0.1``, ``0.0.0.0``, ``::``, ...) with a TCP socket listening on ``port``."""
    import ipaddress

    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state != "0A" or int(p, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))  # each 32-bit word is little-endian
            found.add(str(ipaddress.ip_address(raw)))
    return found
