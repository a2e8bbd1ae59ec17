"""Atlas throughput: units/s through the actor pool with 2 actors vs 1, and vs one unit per process — one run.

    python bench/atlas_throughput.py                       # 32 units (fc8 0-9, fc7 0-21), 50 DGN-AM steps
    python bench/atlas_throughput.py --steps 200 --units 64 --reference-units 4
    python bench/atlas_throughput.py --storage runs/default  # a real run's networks instead of a fresh tiny one
    python bench/atlas_throughput.py --dry-run               # a smoke test: tiny G, 2 units, 2 steps, no warm-up

Networks are the embedded default's sizes (small CaffeNet, G widths 128-64-32-16);
speed does not depend on how well they are trained. Three ways over the same
units of one checkpoint:

- pool, 1 actor (all CPU threads), via dgn.atlas.run_atlas;
- pool, 2 actors (threads split), via dgn.atlas.run_atlas;
- the reference code's way: one process per unit that loads G and the target
  and runs DGN-AM on that one unit (only --reference-units of them: it is slow).

Each figure includes its own start-up (actor creation, process start), as a
user would see it. Prints units/s, the ratios, and what a full atlas (every
unit of fc8, fc7, fc6, conv5 at every classifier epoch of the embedded default)
costs at the 2-actor rate with 200 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch
from common import parse_args, tiny_run

from dgn.atlas import AtlasConfig, run_atlas
from dgn.atlas.plan import Item, generator_dir, list_epochs, sources
from dgn.atlas.worker import AtlasWorker
from dgn.cluster import init_ray
from dgn.storage import RunLayout

REFERENCE = r"""
import sys, torch
from dgn.am import AMConfig, TargetNet, dgn_am
from dgn.train import load_classifier, load_generator
torch.set_num_threads(int(sys.argv[4]))
g, ck = load_generator(sys.argv[1])
net, _ = load_classifier(sys.argv[2])
dgn_am(g, TargetNet.caffenet(net), [sys.argv[3]], code_stats=ck["code_stats"], config=AMConfig(steps=int(sys.argv[5])))
"""
HEADER = "| way | units/s |"


def cpu_cost(storage: str, steps: int, n: int) -> float:
    """CPU seconds per unit of one batched item in this process, one torch thread (fc8 then fc7 units)."""
    torch.set_num_threads(1)
    src = sources(storage, target="run", generators="latest")[-1]
    layout = RunLayout(storage)
    w = AtlasWorker(judge=layout.judge, data=layout.data, am={"steps": steps}, n_real=200, threads=1)
    w.render(Item(src, "fc8", (0,)))  # loads, best-real activations: not the per-unit cost
    t = time.process_time()
    w.render(Item(src, "fc7", tuple(range(n))))
    return (time.process_time() - t) / n


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", help="a training run to use (default: a fresh tiny run at the embedded sizes)")
    p.add_argument("--units", type=int, default=32, help="units per way: fc8 0-9 then fc7 0..")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--reference-units", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2, help="pool runs per way, alternating; the best counts")
    a = parse_args(p, argv, units=2, steps=2, repeats=1, reference_units=1)
    widths = (32, 16, 8, 8) if a.dry_run else (128, 64, 32, 16)  # the embedded G's widths, unless a smoke test
    storage = a.storage or tiny_run("dgn-bench-atlas-", classifier_epochs=1, g_widths=widths)
    tmp = Path(tempfile.mkdtemp(prefix="dgn-bench-atlas-out-"))  # the atlases written here
    cpus = os.cpu_count() or 2
    cpu_per_unit = cpu_cost(storage, a.steps, min(a.units, 16))
    print(f"in-process, 1 thread: {cpu_per_unit:.3f} CPU-s per unit at {a.steps} steps "
          f"({cpu_per_unit / a.steps * 1000:.2f} CPU-ms per unit-step; robust to neighbours' load)", flush=True)
    init_ray(cpus)  # its workers at the driver's priority, as the reference processes below
    n8 = min(a.units, 10)
    units = f"fc8=0-{n8 - 1};fc7=0-{a.units - n8 - 1}" if a.units > 10 else f"fc8=0-{n8 - 1}"
    layers = ("fc8", "fc7") if a.units > 10 else ("fc8",)
    last = list_epochs(f"{storage}/classifier")[-1]
    rows: dict[str, float] = {}

    def pool(actors: int, out: str, n_units: str = units, steps: int = a.steps) -> dict:
        cfg = AtlasConfig(storage=storage, out=out, layers=layers, units=n_units, epochs="last", actors=actors,
                          threads=max(1, cpus // actors), chunk=a.chunk, am={"steps": steps}, html=False)
        return run_atlas(cfg, run=None, log=lambda m: None)

    if not a.dry_run:  # Ray's worker processes, imports
        pool(2, str(tmp / "warmup"), "fc8=0-1;fc7=0" if a.units > 10 else "0-1", 2)
    for rep in range(a.repeats):  # alternate the order: neighbours' load hits both alike
        for actors in ((1, 2) if rep % 2 == 0 else (2, 1)):
            s = pool(actors, str(tmp / f"atlas-{actors}-{rep}"))
            key = f"pool, {actors} actor(s)"
            rows[key] = max(rows.get(key, 0.0), s["units_per_s"])
            print(f"pool, {actors} actor(s), repeat {rep}: {s['units_rendered']} units at {s['units_per_s']:.3f} "
                  "units/s", flush=True)
    ray.shutdown()
    g = list_epochs(generator_dir(storage))[-1][1]
    t = time.time()
    for k in range(a.reference_units):
        subprocess.run([sys.executable, "-c", REFERENCE, g, last[1], f"fc8:{k}", str(cpus), str(a.steps)], check=True)
    ref = a.reference_units / (time.time() - t)
    rows["one unit per process"] = ref
    print(f"one unit per process (networks reloaded): {a.reference_units} units in {time.time() - t:.1f}s "
          f"= {ref:.3f} units/s", flush=True)
    two, one = rows["pool, 2 actor(s)"], rows["pool, 1 actor(s)"]
    full_units = (10 + 512 + 512 + 64) * 4
    out = {"steps": a.steps, "units": a.units, "cpu_s_per_unit_1_thread": cpu_per_unit, "units_per_s": rows, "ratio_2_vs_1_actor": two / one,
           "ratio_2_actors_vs_per_process": two / ref,
           "full_default_atlas_units": full_units,
           "full_default_atlas_seconds_at_200_steps": full_units / two * 200 / a.steps,
           "full_default_atlas_cpu_seconds_at_200_steps": full_units * cpu_per_unit * 200 / a.steps}
    print(f"\n{HEADER}\n|---|---|")
    for way, rate in rows.items():
        print(f"| {way} | {rate:.3f} |")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
