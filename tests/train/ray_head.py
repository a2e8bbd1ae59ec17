"""A private ``ray start --head`` cluster on 127.0.0.1 with free ports (others' clusters share this machine)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from contextlib import contextmanager

from tests.support.servers import free_port, wait_http

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@contextmanager
def ray_head(num_cpus: int = 2, *, dashboard: bool = True):
    """Yields (gcs address, dashboard URL); ``ray stop`` is never run: only this cluster's processes are ended."""
    ports = {name: free_port() for name in ("port", "dashboard-port", "ray-client-server-port", "node-manager-port",
                                             "object-manager-port", "dashboard-agent-listen-port",
                                             "dashboard-agent-grpc-port", "metrics-export-port",
                                             "runtime-env-agent-port")}
    temp = tempfile.mkdtemp(prefix="rayh-", dir="/tmp")  # short: Ray's socket paths have a length limit
    cmd = ["ray", "start", "--head", "--node-ip-address", "127.0.0.1", f"--num-cpus={num_cpus}",
           "--object-store-memory=200000000", f"--temp-dir={temp}", "--disable-usage-stats",
           f"--include-dashboard={'true' if dashboard else 'false'}", "--dashboard-host=127.0.0.1",
           *[f"--{k}={v}" for k, v in ports.items()]]
    env = {**os.environ, **RAY_ENV}
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, timeout=180)
    address = f"127.0.0.1:{ports['port']}"
    url = f"http://127.0.0.1:{ports['dashboard-port']}"
    try:
        if dashboard:
            wait_http(url + "/api/version", timeout=120)
        yield address, url
    finally:
        # end only this cluster's processes: everything whose command line names its private temp dir
        out = subprocess.run(["pgrep", "-f", temp], capture_output=True, text=True).stdout.split()
        for pid in out:
            try:
                os.kill(int(pid), 15)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(2)
        for pid in subprocess.run(["pgrep", "-f", temp], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
