"""DGN-AM with the published DeePSiM fc6 prior on this machine: units/s and peak memory, beside a matmul probe.

    python bench/deepsim_throughput.py                    # batch 8 and 32, 200 steps (the reference's budget)
    python bench/deepsim_throughput.py --steps 10         # shorter: the 200-step rate is extrapolated
    python bench/deepsim_throughput.py --dry-run          # batch 2, 2 steps (seconds; a smoke test)

The path measured is the one flows/atlas.py --generator deepsim:fc6=FILE runs: the full-size fc6 G (3 FC 4096,
9 transposed convs, 256 px, LeakyReLU 0.3, Caffe output → RGB [0, 1]) centre-cropped to 227 px, into the
torchvision-AlexNet target (the CaffeNet ``alexnet`` preset) at fc8, with the reference's AM settings (lr 8 →
1e-10, code × 0.99, clip to [0, bound], N(0, 1) start). Weights are random: speed does not depend on them.

Each batch size runs in its own process, so ``peak_rss_mib`` (ru_maxrss) is that configuration's own peak.
``units_per_s`` = batch / (seconds of ``steps`` steps) × steps / 200: units finished per second at the
200-step budget (measured directly when --steps 200). The matmul probe (dgn.timing.matmul_probe, fp32
2048², this process's threads) says how fast this CPU is right now, so figures from a busy machine can be read.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

BUDGET = 200


def one(batch: int, steps: int, threads: int) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from dgn.am.dgn_am import AMConfig, TargetNet, dgn_am
    from dgn.nets.caffenet import CaffeNet, caffenet_config
    from dgn.nets.deepsim import build_deepsim, reference_stats
    from dgn.timing import matmul_probe

    torch.manual_seed(0)
    g = build_deepsim("fc6", 227)  # 256 → 227 crop for the AlexNet
    target = TargetNet.caffenet(CaffeNet(caffenet_config("alexnet")).eval(), name="alexnet")
    stats = reference_stats(torch.full((4096,), 12.0))
    cfg = AMConfig(steps=steps, init="noise", noise_std=1.0)
    units = [f"fc8:{u}" for u in range(batch)]
    probe = matmul_probe()
    dgn_am(g, target, units[:1], code_stats=stats, config=AMConfig(steps=1, init="noise"))  # warm-up
    t = time.perf_counter()
    dgn_am(g, target, units, code_stats=stats, config=cfg)
    sec = time.perf_counter() - t
    return {"batch": batch, "steps": steps, "seconds": round(sec, 2), "s_per_step": round(sec / steps, 3),
            "units_per_s": round(batch / sec * steps / BUDGET, 4), "peak_rss_mib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "threads": torch.get_num_threads(),
            "matmul_gflops": round(probe, 1), "image": "256 px G → 227 crop", "target": "alexnet fc8"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="8,32", help="comma-separated batch sizes (units optimised together)")
    p.add_argument("--steps", type=int, default=BUDGET)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--dry-run", action="store_true", help="batch 2, 2 steps")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one, a.steps, a.threads)))
        return 0
    batches = [2] if a.dry_run else [int(b) for b in a.batches.split(",")]
    steps = 2 if a.dry_run else a.steps
    rows = []
    for b in batches:
        r = subprocess.run([sys.executable, __file__, "--one", str(b), "--steps", str(steps), "--threads",
                            str(a.threads)], capture_output=True, text=True)
        if r.returncode:
            print(r.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        x = rows[-1]
        print(f"batch {b:3d}: {x['steps']} steps in {x['seconds']:.1f} s ({x['s_per_step']:.3f} s/step) → "
              f"{x['units_per_s']:.4f} units/s at {BUDGET} steps; peak RSS {x['peak_rss_mib']} MiB; "
              f"matmul probe {x['matmul_gflops']} GFLOP/s on {x['threads']} thread(s)", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
