"""Wall time per stage of a job, beside a matmul probe run in the same process.

Machines here differ from each other by 1.5× or more, and a neighbour's load
slows a job without changing it. So the job measures what this machine can do
right now — a 2048² fp32 matmul on all its threads, the best of a few runs —
and states each stage's wall time both as measured and scaled to a reference
machine whose probe reads :data:`REFERENCE_GFLOPS` (the 2-core machine the
README's budget is for): ``seconds × probe / REFERENCE_GFLOPS``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

REFERENCE_GFLOPS = 140.0  # the probe on the 2-core machine the default job's 10-minute budget is set for


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


class StageClock:
    """Wall seconds per named stage, in the order stages first appear."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.t0 = time.time()
        self.probe_gflops = 0.0

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.time()
        try:
            yield
        finally:
            self.add(name, time.time() - t)

    def probe(self) -> float:
        """Run the probe (≈ 1 s), keep the best reading of the job (a neighbour's load only lowers it)."""
        self.probe_gflops = max(self.probe_gflops, matmul_probe())
        return self.probe_gflops

    @property
    def total(self) -> float:
        return time.time() - self.t0

    def at_reference(self, seconds: float) -> float:
        """``seconds`` on this machine → the same work on the reference machine."""
        return seconds * self.probe_gflops / REFERENCE_GFLOPS if self.probe_gflops else float("nan")

    def summary(self) -> dict:
        return {"probe_gflops": self.probe_gflops, "reference_gflops": REFERENCE_GFLOPS,
                "stage_seconds": dict(self.seconds), "total_seconds": self.total,
                "total_seconds_at_reference": self.at_reference(self.total)}

    def lines(self) -> list[str]:
        """The table the job ends with."""
        out = [f"time per stage (this machine's 2048² fp32 matmul: {self.probe_gflops:.0f} GFLOP/s; "
               f"'at {REFERENCE_GFLOPS:.0f}' scales to the README's reference machine):"]
        for name, s in self.seconds.items():
            out.append(f"  {name:<22s} {s:7.1f} s   at {REFERENCE_GFLOPS:.0f}: {self.at_reference(s):7.1f} s")
        out.append(f"  {'total (wall)':<22s} {self.total:7.1f} s   at {REFERENCE_GFLOPS:.0f}: "
                   f"{self.at_reference(self.total):7.1f} s")
        return out
