"""One local Ray cluster for a test module (the suite's rule: share one cluster per module, no xdist)."""

import os
from contextlib import contextmanager

import ray


@contextmanager
def local_ray(num_cpus: int = 2):
    """A fresh local Ray on 127.0.0.1 with a small object store, shut down on exit."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, object_store_memory=200_000_000,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
