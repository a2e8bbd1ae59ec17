"""Training input memory and speed: the split held in memory vs streamed from Parquet, over dataset sizes.

    python bench/data_memory.py                  # 2k, 16k, 64k images at 64 px, 40 steps; data under runs/data-memory
    python bench/data_memory.py --sizes 2000,64000 --paths memory,stream,stream-ray --window 4096
    python bench/data_memory.py --dry-run        # tiny sets, a few steps (a smoke test)

Each (dataset size, input path) trains one short classifier stage (dgn.train.loops.classifier_loop through
``fit_local``, the job's loop) in a fresh process, so that process's peak RSS (``ru_maxrss``) is that worker's
alone. ``memory`` decodes the worker's whole shard before the first step (the path small datasets take);
``stream`` reads it a window at a time (dgn.data.streaming, the path of datasets above ``stream_above_mb``).
``stream-ray`` is ``stream`` with the windows decoded by Ray Data tasks on a local Ray of --threads CPUs (the
path of a cluster with spare CPUs): its RSS is the training process's only — the decoding runs in Ray's
worker processes and the windows pass through the object store (capped at 500 MB here). The datasets are the
synthetic shapes set (``write_synthetic(kind="shapes")``), written once under --out and
reused. One worker with all --threads; with W workers each holds 1/W of the in-memory shard and the same
streaming windows.

Prints per run: peak RSS, its rise over the process's RSS just before the stage, the set-up seconds (the
stage's wall before its first step: decoding the shard in memory, opening files when streaming), training
images/s (the steps' own time) and the wall; then the ratios the design promises: streaming peak RSS does not
grow with the dataset (largest / smallest ≤ 1.10), and streaming trains at ≥ 0.80 × the in-memory images/s on
the smallest set. The matmul probe (dgn.timing.matmul_probe) is printed at the start and the end: times on a
shared machine move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import parse_args

HEADER = "| images | input | peak RSS MB | RSS rise MB | set-up s | train images/s | wall s |"
# (stream_above_mb, stream_decode) of each input path: None never streams, 0 always
PATHS = {"memory": (None, None), "stream": (0, "threads"), "stream-ray": (0, "ray")}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def child(spec: dict) -> dict:
    """One stage in this (fresh) process; its peak RSS and times."""
    import torch

    from dgn.data import read_meta
    from dgn.train.loops import fit_local

    torch.set_num_threads(spec["threads"])
    above, decode = PATHS[spec["path"]]
    if decode == "ray":
        import ray

        ray.init(address="local", num_cpus=spec["threads"], include_dashboard=False, object_store_memory=500_000_000,
                 log_to_driver=False)
    meta = read_meta(spec["data"])
    cfg = dict(kind="classifier", data=spec["data"], storage=spec["storage"], image_size=spec["image_size"],
               arch="small", num_classes=meta.num_classes, class_names=meta.class_names,
               n_train=meta.counts["train"], steps=spec["steps"], checkpoints=1, lr=3e-3,
               batch_size=spec["batch_size"], seed=0, learned_factor=0.0,
               stream_above_mb=above, stream_decode=decode, stream_window=spec["window"])
    events = []
    before = _rss_mb()
    t = time.time()
    fit_local([(cfg["kind"], cfg)], on_event=events.append, threads=spec["threads"])
    wall = time.time() - t
    train_s = sum(e["seconds"] for e in events if "epoch" in e)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    notes = [e["note"] for e in events if "note" in e]
    return {"peak": peak, "rise": peak - before, "setup": wall - train_s, "ips": spec["steps"] * spec["batch_size"]
            / train_s, "wall": wall, "note": notes[0] if notes else ""}


def dataset(out: Path, n: int, image_size: int, n_val: int) -> str:
    """The shapes set of ``n`` training images under ``out``, written on first use."""
    from dgn.data import read_meta, write_synthetic
    from dgn.errors import DGNError

    uri = str(out / f"shapes-{n}-{image_size}px")
    try:
        if read_meta(uri).counts == {"train": n, "val": n_val}:
            return uri
    except DGNError:
        pass
    t = time.time()
    write_synthetic(uri, kind="shapes", n_train=n, n_val=n_val, image_size=image_size, seed=0)
    print(f"wrote {uri} in {time.time() - t:.0f}s", flush=True)
    return uri


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print("RESULT " + json.dumps(child(json.loads(argv[1]))), flush=True)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/data-memory", help="where the datasets are cached")
    p.add_argument("--sizes", default="2000,16000,64000", help="training images per dataset, comma-separated")
    p.add_argument("--paths", default="memory,stream", help=f"input paths: {', '.join(PATHS)}")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--window", type=int, default=2048, help="streaming window (rows shuffled and decoded at once)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parse_args(p, argv, out=lambda: tempfile.mkdtemp(prefix="dgn-bench-mem-"), sizes="200,400",
                      image_size=32, n_val=20, steps=4, batch_size=16, window=64, threads=1)

    from dgn.timing import matmul_probe

    sizes = [int(s) for s in args.sizes.split(",") if s]
    paths = [s for s in args.paths.split(",") if s]
    bad = [s for s in paths if s not in PATHS]
    if bad:
        sys.exit(f"error: unknown input path(s) {bad}; valid: {', '.join(PATHS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    probe0 = matmul_probe()
    print(f"matmul probe at start: {probe0:.0f} GFLOP/s", flush=True)
    rows = {}
    for n in sizes:
        data = dataset(out, n, args.image_size, args.n_val)
        for path in paths:
            spec = dict(data=data, storage=tempfile.mkdtemp(prefix="dgn-bench-mem-run-"), path=path,
                        image_size=args.image_size, steps=args.steps, batch_size=args.batch_size,
                        window=args.window, threads=args.threads)
            r = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, check=False,
                               text=True)
            got = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
            if r.returncode or not got:
                sys.exit(f"error: the {path} run on {n} images failed:\n{(r.stdout + r.stderr)[-3000:]}")
            rows[n, path] = res = json.loads(got[-1][len("RESULT "):])
            print(f"{n} images, {path}: {res['note']}", flush=True)
    probe1 = matmul_probe()
    print(f"\nmatmul probe: {probe0:.0f} GFLOP/s at start, {probe1:.0f} at end (2048² fp32, "
          f"{args.threads} thread(s)); {args.steps} steps of {args.batch_size} at {args.image_size} px, "
          f"1 worker × {args.threads} thread(s), window {args.window}\n")
    print(HEADER)
    print("|---:|---|---:|---:|---:|---:|---:|")
    for (n, path), r in rows.items():
        print(f"| {n} | {path} | {r['peak']:.0f} | {r['rise']:.0f} | {r['setup']:.1f} | {r['ips']:.0f} | "
              f"{r['wall']:.1f} |")
    print()
    lo, hi = min(sizes), max(sizes)
    for path in paths:
        print(f"{path}: peak RSS on {hi} / on {lo} images: {rows[hi, path]['peak'] / rows[lo, path]['peak']:.2f}"
              + ("  (target ≤ 1.10)" if path != "memory" else ""))
    for path in [s for s in paths if s != "memory"] if "memory" in paths else []:
        print(f"{path} / memory train images/s on {lo} images: "
              f"{rows[lo, path]['ips'] / rows[lo, 'memory']['ips']:.2f}  (target ≥ 0.80); wall "
              f"{rows[lo, path]['wall'] / rows[lo, 'memory']['wall']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
