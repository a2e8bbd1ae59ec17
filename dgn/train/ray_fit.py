"""Driver side of Ray Train: start (or join) Ray, fit one stage's TorchTrainer, hand its events to the driver.

``fit_stage`` runs ``TorchTrainer.fit()`` in a thread while the calling thread
drains the workers' event queue, so progress lines and MLflow logging happen
in the driver as epochs finish, not after the stage.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dgn.data.uri import resolve
from dgn.errors import DGNError
from dgn.train.loops import pipeline_loop

# the driver's S3 settings, given to workers that lack their own (a cluster's environment wins)
S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID",
          "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED")


@dataclass
class Scaling:
    workers: int = 1
    gpu: bool = False
    cpus_per_worker: int = 1  # also the worker's torch threads
    max_failures: int = 2  # worker-group restarts (from the last checkpoint) before a stage fails
    ray_storage: str = ""  # Ray Train's own run state (local dir or s3://); a stage's name is appended


def _storage(uri: str):
    """(storage_path, storage_filesystem) for RunConfig: S3 through the project's endpoint settings."""
    if uri.startswith("s3://"):
        fs, path = resolve(uri)
        return path, fs
    return os.path.abspath(uri), None


def fit_stages(stages: list[tuple[str, dict]], *, name: str, scaling: Scaling,
               on_event: Callable[[dict], None]) -> None:
    """Fit the (stage, loop config) pairs in order on one worker group; ``on_event`` gets every event in this thread.

    One TorchTrainer for all stages: Ray Train's start-up (~20 s here) is paid once, not per stage.
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Empty, Queue

    # the event queue lives on the driver's node, as Train V2's own controller does: a worker node lost mid-run
    # must not take it along (tests/cluster/test_multinode.py). A label selector, not a soft NodeAffinity: Ray
    # treats a soft affinity to a CPU-less head as unmet and places the actor on any node.
    here = {ray._raylet.RAY_NODE_ID_KEY: ray.get_runtime_context().get_node_id()}
    queue = Queue(actor_options={"num_cpus": 0, "label_selector": here})
    cfg = {"stages": stages, "queue": queue, "gpu": scaling.gpu, "threads": scaling.cpus_per_worker,
           "die": os.environ.get("DGN_TEST_WORKER_EXIT", ""),
           "env": {k: os.environ[k] for k in S3_ENV if os.environ.get(k)}}
    stage = "+".join(s for s, _ in stages)
    path, fs = _storage(scaling.ray_storage)
    trainer = TorchTrainer(
        pipeline_loop,
        train_loop_config=cfg,
        scaling_config=ray.train.ScalingConfig(num_workers=scaling.workers, use_gpu=scaling.gpu,
                                               resources_per_worker={"CPU": scaling.cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if scaling.gpu else "gloo"),
        run_config=ray.train.RunConfig(name=name, storage_path=path, storage_filesystem=fs,
                                       failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures)),
    )
    outcome: dict = {}

    def fit():
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001 — re-raised in the driver thread
            outcome["error"] = e

    th = threading.Thread(target=fit, name=f"fit-{stage}", daemon=True)
    th.start()
    try:
        while True:
            alive = th.is_alive()
            try:
                # get_nowait, not get(timeout=): Python 3.11's asyncio.wait_for inside the queue actor can drop
                # an item that arrives just as the timeout fires
                on_event(queue.get_nowait())
                continue
            except Empty:
                pass
            if not alive:  # fit() had ended before the queue was found empty: nothing more will come
                break
            time.sleep(0.25)
    finally:
        th.join(timeout=1)
        try:
            ray.kill(queue.actor)
        except Exception:  # noqa: BLE001 — already gone
            pass
    if "error" in outcome:
        e = outcome["error"]
        raise DGNError(f"training ({stage}) failed on Ray Train after {scaling.max_failures} restart(s): "
                       f"{_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    cause = [line for line in text if "Error" in line or "error" in line]
    return (cause[-1] if cause else (text[0] if text else type(e).__name__)).strip()[:300]
