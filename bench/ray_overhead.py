"""Ray Train's overhead: the same training loop under Ray Train and under plain PyTorch DDP, side by side.

    python bench/ray_overhead.py                       # 1 and 2 workers, 2000 images, 5 classifier epochs
    python bench/ray_overhead.py --workers 2 --epochs 6 --n-train 4000
    python bench/ray_overhead.py --dry-run             # 1 worker, 2 tiny epochs, 1 repeat (a smoke test)

Both harnesses run dgn.train.loops.classifier_loop unchanged (shard loading,
DDP, a checkpoint per epoch, events to the driver): once as a TorchTrainer on a
local Ray cluster (dgn.train.ray_fit, as the job), once in processes started
with torch.multiprocessing in a gloo process group (the loop's ``"local"``
context) — the same number of processes and threads per process, at the same
CPU priority. An epoch is one checkpoint of one pass over the training set
(``steps`` = epochs × images // batch). Per-epoch time is measured inside the
loop; epoch 1 is start-up and is left out. Prints the ratio (target: Ray ≤
1.15 × plain).
Timings on a shared machine are noisy: the two runs are interleaved
(plain, Ray, plain, Ray …) and the medians compared.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import parse_args

from dgn.data import read_meta, write_synthetic

HEADER = "workers  threads/worker  plain s/epoch  ray s/epoch  ray/plain"


# Ray's imports are inside the functions: a spawned plain worker re-imports this file, and its start-up must
# not pay for them.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plain_worker(rank: int, world: int, port: int, cfg: dict, queue) -> None:
    import torch.distributed as dist

    from dgn.train.loops import classifier_loop

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        classifier_loop({**cfg, "context": "local", "queue": queue})
    finally:
        if world > 1:
            dist.destroy_process_group()


def run_plain(cfg: dict, workers: int, threads: int) -> tuple[list[float], float]:
    import torch.multiprocessing as mp

    t = time.time()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_plain_worker, args=(workers, free_port(), {**cfg, "threads": threads}, queue),
                       nprocs=workers, join=True, start_method="spawn")
    events = []
    while not queue.empty():
        events.append(queue.get())
    return [e["seconds"] for e in events if "epoch" in e], time.time() - t


def run_ray(cfg: dict, workers: int, threads: int, ray_storage: str) -> tuple[list[float], float]:
    from dgn.train.ray_fit import Scaling, fit_stages

    t = time.time()
    events = []
    fit_stages([("classifier", cfg)], name=f"bench-{time.time_ns()}", on_event=events.append,
               scaling=Scaling(workers=workers, cpus_per_worker=threads, max_failures=0, ray_storage=ray_storage))
    return [e["seconds"] for e in events if "epoch" in e], time.time() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="interleaved (plain, Ray) pairs per worker count")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parse_args(p, argv, workers="1", epochs=2, n_train=64, image_size=32, batch_size=16, repeats=1)

    from dgn.cluster import init_ray

    tmp = Path(tempfile.mkdtemp(prefix="dgn-bench-ray-"))
    data = str(tmp / "data")
    write_synthetic(data, n_train=args.n_train, n_val=min(200, args.n_train), seed=0, image_size=args.image_size)
    meta = read_meta(data)
    init_ray(args.cpus)
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        threads = max(1, args.cpus // workers)
        per = {"plain": [], "ray": []}
        wall = {"plain": [], "ray": []}
        for rep in range(args.repeats):
            for kind in ("plain", "ray"):
                cfg = dict(kind="classifier", data=data, storage=str(tmp / f"{kind}-{workers}-{rep}"),
                           image_size=args.image_size, arch="small", num_classes=meta.num_classes,
                           class_names=meta.class_names, n_train=args.n_train, lr=3e-3, batch_size=args.batch_size,
                           steps=args.epochs * (args.n_train // args.batch_size), checkpoints=args.epochs, seed=0)
                secs, w = run_plain(cfg, workers, threads) if kind == "plain" else \
                    run_ray(cfg, workers, threads, str(tmp / "ray"))
                per[kind] += secs[1:]  # epoch 1 holds start-up (first touch, allocator warm-up)
                wall[kind].append(w - sum(secs[1:]))
                print(f"{kind:5s} workers={workers} rep={rep}: epochs {', '.join(f'{s:.2f}' for s in secs)} s, "
                      f"wall {w:.1f} s", flush=True)
        med = {k: statistics.median(v) for k, v in per.items()}
        rows.append((workers, threads, med["plain"], med["ray"], med["ray"] / med["plain"],
                     statistics.median(wall["plain"]), statistics.median(wall["ray"])))
    print(f"\n{HEADER}  start-up+epoch1 plain  ray")
    for w, t, a, b, r, sa, sb in rows:
        print(f"{w:7d}  {t:14d}  {a:13.2f}  {b:11.2f}  {r:9.3f}  {sa:21.1f}  {sb:4.1f}")
    print("target: ray/plain ≤ 1.15 per epoch after start-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
