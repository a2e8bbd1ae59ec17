"""Batched DGN-AM against one unit at a time, and the FLOP rate against a matmul peak — one run.

    python bench/am_throughput.py                 # 64 fc8/fc6 units, 20 steps each way
    python bench/am_throughput.py --units 64 --steps 50 --threads 2
    python bench/am_throughput.py --dry-run       # 4 units, 2 steps, 1 thread (seconds; a smoke test)

Prints units·steps per second for the 64 units optimised together (one
forward/backward per step) and for the same 64 units one at a time, their
ratio, the FLOPs of one unit-step (counted by torch's FlopCounterMode), and the
achieved FLOP rate as a share of an fp32 matrix-multiply peak measured in the
same process. Networks are randomly initialised: speed does not depend on
the weights.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import parse_args
from torch.utils.flop_counter import FlopCounterMode

from dgn.am import AMConfig, TargetNet, as_objective, dgn_am
from dgn.nets import Generator, build_caffenet, generator_config
from dgn.timing import matmul_probe
from dgn.train.gan import GANConfig


def unit_step_flops(g, target, units) -> float:
    """FLOPs of one DGN-AM step (G + target forward, backward to the code) per unit."""
    code = torch.rand(len(units), *g.config.code_shape, requires_grad=True)
    objs = [as_objective(u) for u in units]
    for q in g.parameters():
        q.requires_grad_(False)  # as during AM: only the code gets a gradient
    with FlopCounterMode(display=False) as fc:
        obj, _ = target.values(g(code), objs)
        obj.sum().backward()
    return fc.get_total_flops() / len(units)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = parse_args(p, argv, units=4, steps=2, threads=1)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    e = build_caffenet("small").eval()
    g = Generator(generator_config("small", e.code_shape("fc6"), **GANConfig().generator_overrides)).eval()
    target = TargetNet.caffenet(e)
    units = [f"fc8:{k % 10}" if k < 10 else f"fc6:{k}" for k in range(a.units)]
    stats = {"mean": torch.full((512,), 0.5), "std": torch.full((512,), 0.5), "upper": torch.full((512,), 2.0)}
    cfg = AMConfig(steps=a.steps)  # the product's AM; speed does not depend on its settings

    peak = matmul_probe(1024) * 1e9  # FLOP/s
    flops = unit_step_flops(g, target, units)
    dgn_am(g, target, units[:4], code_stats=stats, config=AMConfig(steps=2))  # warm-up

    t = time.perf_counter()
    dgn_am(g, target, units, code_stats=stats, config=cfg)
    batched = a.units * a.steps / (time.perf_counter() - t)

    t = time.perf_counter()
    for u in units:
        dgn_am(g, target, [u], code_stats=stats, config=cfg)
    single = a.units * a.steps / (time.perf_counter() - t)
    peak = max(peak, matmul_probe(1024) * 1e9)
    print(f"threads                  {torch.get_num_threads()}")
    print(f"FLOPs per unit-step      {flops / 1e6:.0f} MFLOP (G + E forward, backward to the code)")
    print(f"matmul peak (fp32)       {peak / 1e9:.1f} GFLOP/s")
    print(f"batched ({a.units} units)       {batched:.1f} unit-steps/s = {batched * flops / 1e9:.1f} GFLOP/s "
          f"= {batched * flops / peak:.0%} of peak")
    print(f"one unit at a time       {single:.1f} unit-steps/s = {single * flops / 1e9:.1f} GFLOP/s "
          f"= {single * flops / peak:.0%} of peak")
    print(f"batched / one at a time  {batched / single:.1f}x")


if __name__ == "__main__":
    main()
