"""Starting or joining Ray, the one way every job does it (train, sweep, benches; the atlas next).

With ``RAY_ADDRESS`` set (``ray job submit`` sets it) the job joins that cluster; otherwise it starts a
new local one (``address="local"``: never one that someone else's ``ray start`` left on this machine)
with explicit CPUs, its workers at the driver's priority (Ray runs them at nice 15 by default, and
here they do all the work), no dashboard, and no log forwarding (the driver prints its own progress).
"""

from __future__ import annotations

import os

import ray


def init_ray(num_cpus: int = 0, *, object_store_memory: int = 200_000_000) -> bool:
    """Start (or join) Ray unless it is up; True if this call did it. ``num_cpus`` 0: all of this machine's."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 object_store_memory=object_store_memory, log_to_driver=False)
    return True
