"""Wall time and CPU-seconds per stage of a job, beside a matmul probe run in the same process.

Machines here differ from each other by 1.5× or more, and a neighbour's load
slows a job without changing the work it does. So each stage is measured two
ways:

- wall seconds, as a user waits;
- CPU-seconds of the job's whole process tree (the driver, and on a local Ray
  its raylet, Ray Train workers and atlas actors), which a neighbour's load
  does not change: :class:`CpuMeter` samples ``/proc`` once a second and keeps
  the last reading of every process, so a worker that exits loses at most its
  last second. (Joining a cluster through ``RAY_ADDRESS``, remote workers are
  not in the tree: the figure then counts the driver only.)

The probe — a 2048² fp32 matmul on all the process's threads, best of a few
runs, at the start and the end of the job — says how fast this machine's
cores are; ``wall × probe / REFERENCE_GFLOPS`` is the wall time a machine whose
probe reads :data:`REFERENCE_GFLOPS` would need *if both ran unloaded* (the
README's budget is for that machine).
"""

from __future__ import annotations

import os
import threading
import time

import torch

REFERENCE_GFLOPS = 140.0  # the probe on the 2-core machine the default job's 10-minute budget is set for
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def matmul_probe(n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an ``n``×``n`` fp32 matmul on this process's torch threads (best of ``reps``, after a warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, user + system CPU-seconds) of every process readable in /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone, or not ours to read
            continue
        out[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return out


class CpuMeter:
    """CPU-seconds used so far by this process and all its descendants, sampled in a daemon thread."""

    def __init__(self, interval: float = 1.0):
        self.root = os.getpid()
        self.last: dict[int, float] = {}
        self.available = os.path.isdir("/proc/self")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sample()
        self._thread = threading.Thread(target=self._run, args=(interval,), name="cpu-meter", daemon=True)
        if self.available:
            self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.sample()

    def sample(self) -> float:
        if not self.available:
            return float("nan")
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        tree, todo = set(), [self.root]
        while todo:
            pid = todo.pop()
            if pid in tree:
                continue
            tree.add(pid)
            todo.extend(children.get(pid, ()))
        with self._lock:
            for pid in tree & table.keys():
                self.last[pid] = max(self.last.get(pid, 0.0), table[pid][1])
            return sum(self.last.values())

    def stop(self) -> None:
        self._stop.set()


class StageClock:
    """Wall seconds and CPU-seconds per named stage, in the order stages first appear.

    :meth:`mark` gives a stage everything since the previous mark; a stage marked again adds to its total.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.t0 = self._t = time.time()
        self.cpu = CpuMeter()
        self._c = self.cpu.sample()
        self.probes: list[float] = []

    def mark(self, stage: str) -> None:
        t, c = time.time(), self.cpu.sample()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + t - self._t
        self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + c - self._c
        self._t, self._c = t, c

    def probe(self) -> float:
        """Run the probe (≈ 1 s, not counted in any stage); returns the best reading of the job so far."""
        t, c = time.time(), self.cpu.sample()
        self.probes.append(matmul_probe())
        self._t += time.time() - t
        self._c += self.cpu.sample() - c
        return self.probe_gflops

    @property
    def probe_gflops(self) -> float:
        return max(self.probes, default=0.0)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def at_reference(self, seconds: float) -> float:
        """Wall ``seconds`` on this machine, unloaded → on the reference machine, unloaded."""
        return seconds * self.probe_gflops / REFERENCE_GFLOPS if self.probe_gflops else float("nan")

    def summary(self) -> dict:
        return {"probe_gflops": self.probe_gflops, "probes_gflops": list(self.probes),
                "reference_gflops": REFERENCE_GFLOPS, "stage_seconds": dict(self.seconds),
                "stage_cpu_seconds": dict(self.cpu_seconds), "total_seconds": self.total,
                "total_cpu_seconds": sum(self.cpu_seconds.values()),
                "total_seconds_at_reference": self.at_reference(self.total)}

    def lines(self) -> list[str]:
        """The table the job ends with."""
        ref = f"{REFERENCE_GFLOPS:.0f}"
        probes = ", ".join(f"{p:.0f}" for p in self.probes)
        out = [f"time per stage (2048² fp32 matmul probe here: {probes} GFLOP/s at start and end; 'at {ref}': "
               f"the wall time on an unloaded machine whose probe reads {ref}):",
               f"  {'stage':<24s} {'wall':>8s} {'CPU':>8s} {'at ' + ref:>8s}"]
        for name, s in self.seconds.items():
            out.append(f"  {name:<24s} {s:7.1f}s {self.cpu_seconds[name]:7.1f}s {self.at_reference(s):7.1f}s")
        out.append(f"  {'total':<24s} {self.total:7.1f}s {sum(self.cpu_seconds.values()):7.1f}s "
                   f"{self.at_reference(self.total):7.1f}s")
        return out
