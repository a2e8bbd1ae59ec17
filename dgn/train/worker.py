"""One training process as the loops see it: rank, world, device, collectives and the driver's event queue.

The same loops (dgn.train.loops) run in three places, and only this object differs:

- ``context="ray"`` (default): a Ray Train worker; rank and world from ``ray.train.get_context()``, models wrapped
  by ``ray.train.torch.prepare_model`` (DDP when the world is > 1), metrics reported to Ray Train.
- ``context="local"``: this process (the sweep's base, benches, tests), or a plain ``torch.distributed`` process
  group it is already in (bench/ray_overhead.py compares the two); ``queue`` is then any object with ``put``.

Workers never talk to MLflow: they ``put`` events that the driver turns into logging (dgn.tracking.training).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dgn.errors import DGNError

CONTEXTS = ("ray", "local")


class Worker:
    """Rank, world, device and the collective helpers of one training process."""

    def __init__(self, cfg: dict):
        self.context = cfg.get("context") or "ray"
        if self.context not in CONTEXTS:
            raise DGNError(f"unknown worker context {self.context!r}; valid: {', '.join(CONTEXTS)}")
        if self.context == "ray":
            import ray.train
            import ray.train.torch

            ctx = ray.train.get_context()
            self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
            self.device = ray.train.torch.get_device() if cfg.get("gpu") else torch.device("cpu")
        else:
            init = dist.is_available() and dist.is_initialized()
            self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if init else (0, 1)
            self.device = torch.device("cuda" if cfg.get("gpu") else "cpu")
        self.queue = cfg.get("queue")
        if cfg.get("threads"):  # Ray Train workers always get theirs (dgn.train.ray_fit); elsewhere: as it is
            torch.set_num_threads(max(1, int(cfg["threads"])))

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all workers."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([float(flag)])[0] > 0

    def report(self, metrics: dict) -> None:
        """``ray.train.report`` from every worker (Ray Train expects all ranks to report); nothing elsewhere."""
        if self.context == "ray":
            import ray.train

            ray.train.report({k: v for k, v in metrics.items() if isinstance(v, (int, float))})

    def put(self, event: dict, *, any_rank: bool = False) -> None:
        if (self.rank == 0 or any_rank) and self.queue is not None:
            self.queue.put(event)

    def agree(self, stage: str, error: DGNError | None) -> bool:
        """True when no rank hit a user error in its set-up; else every rank learns it and the stage ends at once.

        A user error (missing dataset, undecodable image, bad layer) is not a crash: restarting the worker
        group (``--max-failures``) would only meet it again, so the rank that saw it sends its sentence to
        the driver and every rank returns, before any collective that the others would wait in forever.
        """
        if error is not None:
            self.put({"stage": stage, "diverged": str(error)}, any_rank=True)
        return not self.any(error is not None)

    def wrap(self, module: torch.nn.Module, *, sync_bn: bool = False) -> torch.nn.Module:
        """DDP (and SyncBatchNorm on GPUs) when there are several workers; else the module on the device."""
        if sync_bn and self.world > 1 and self.device.type == "cuda":
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        if self.context == "local":
            module = module.to(self.device)
            return torch.nn.parallel.DistributedDataParallel(module) if self.world > 1 else module
        import ray.train.torch

        return ray.train.torch.prepare_model(module, move_to_device=self.device, parallel_strategy="ddp"
                                             if self.world > 1 else None)


class Events:
    """A queue for ``context="local"``: each event goes straight to a callback (the driver's ``on_event``)."""

    def __init__(self, on_event):
        self.on_event = on_event

    def put(self, event: dict) -> None:
        self.on_event(event)
