"""Atlas fixtures: one tiny training run per session (seconds) and one local Ray cluster per module."""

from __future__ import annotations

import os

import pytest

from dgn.atlas.demo import write_tiny_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run with two classifier epochs, two G epochs and a dead unit fc7:5 in every classifier."""
    return write_tiny_run(str(tmp_path_factory.mktemp("run")), classifier_epochs=2, gan_epochs=2, dead=("fc7:5",))


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200_000_000, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
