"""Per-step time and peak memory of the 227-px configuration's E step and G step on this CPU, beside the scaling
model's prediction (bench/scaling_model.py, docs/scaling.md).

    python bench/caffenet_227.py                          # batches 2 and 8, reps 2, 2 threads: ~3-5 min on 2 cores
    python bench/caffenet_227.py --batches 2 4 8 --reps 3 --threads 2
    python bench/caffenet_227.py --dry-run                # batch 1, one rep, one thread

E step: one ``classifier_step`` of the ``caffenet`` preset (227 px, fc 4096, ``--num-classes`` 1000 as on ImageNet)
with the classifier stage's AdamW. G step: one ``GANTrainer.step`` with ``--preset paper``'s GANConfig (the paper G:
9 layers to 256 px, centre crop 227; the paper D; C = E to pool5): D's update on the real and the generated batch,
then G's.

The model (the scaling model's functions; its CPU check's form, with this machine's measured rates):

    time   = b · FLOPs per image (FlopCounterMode) / fp32 matmul rate + 28 B · trained params / copy bandwidth (Adam)
    memory = 16 B · trained params (weights, grads, Adam m, v) + 4 B · frozen params + b · bytes saved for backward

The G step's figures are ``scaling_model.full_scale`` itself (what docs/scaling.md prints); the E step's are counted
with the same ``flops`` / ``saved_bytes`` / ``n_params`` on the classifier step. The matmul rate is
``dgn.timing.matmul_probe`` (2048² fp32, this run's threads) and the copy bandwidth ``scaling_model.copy_bandwidth``,
both measured just before and just after each case (the mean is what the case saw; neighbours' load drifts).

Measured: each case runs in a fresh process (``--case``), so that one case's freed memory does not hide the next
one's; memory is the process's peak RSS while it builds the networks and runs the steps (VmHWM, reset through
/proc/self/clear_refs after the probes) above its RSS before the networks were built; time is the best of
``--reps`` steps after a warm-up step (allocations, Adam's state).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from common import parse_args
from scaling_model import (
    ADAM_BYTES_PER_PARAM,
    GPUS,
    copy_bandwidth,
    flops,
    full_scale,
    n_params,
    predict_epoch,
    saved_bytes,
    timed,
)

from dgn.nets import build_caffenet
from dgn.timing import matmul_probe
from dgn.train.classifier import classifier_step, make_optimizer
from dgn.train.gan import PAPER, GANConfig, GANTrainer

SIZE = 227
MIB = 2**20


# measuring one case, in its own process


def _status(key: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS (Linux ≥ 4.0)


def _rates() -> tuple[float, float]:
    return matmul_probe() * 1e9, copy_bandwidth()


def measure(case: str, batch: int, reps: int, num_classes: int) -> dict:
    """Seconds per step (best of ``reps`` after a warm-up) and peak RSS above the RSS before the networks."""
    torch.manual_seed(0)
    p0, b0 = _rates()
    rss0 = _status("VmRSS")
    _reset_peak()
    x = torch.rand(batch, 3, SIZE, SIZE)  # (b, 3, 227, 227) in [0, 1]
    if case == "E":
        e = build_caffenet("caffenet", num_classes=num_classes).train()
        opt = make_optimizer(e, 3e-3)
        y = torch.randint(0, num_classes, (batch,))
        step = lambda: classifier_step(e, opt, x, y)  # noqa: E731
    else:
        tr = GANTrainer(build_caffenet("caffenet").eval(), GANConfig(**PAPER))

        def step():
            tr.train_d = tr.train_g = True  # the D/G balance may pause one: time the full step the model counts
            tr.step(x)
    step()  # warm-up: first-call dispatch, Adam's moments
    t = timed(step, reps)
    peak = _status("VmHWM") - rss0
    p1, b1 = _rates()
    return {"case": case, "batch": batch, "measured_s": t, "measured_peak": peak, "peak": (p0 + p1) / 2,
            "bw": (b0 + b1) / 2, "threads": torch.get_num_threads()}


# the model


def e_model(num_classes: int) -> dict:
    """The scaling model's figures for the classifier step of caffenet at 227 px, per image."""
    torch.manual_seed(0)
    e = build_caffenet("caffenet", num_classes=num_classes).train()
    opt = make_optimizer(e, 3e-3)
    x, y = torch.rand(1, 3, SIZE, SIZE), torch.zeros(1, dtype=torch.long)
    p = n_params(e)
    return {"gflop_per_image": flops(lambda: classifier_step(e, opt, x, y)) / 1e9,
            "activation_bytes_per_image": saved_bytes(lambda: F.cross_entropy(e(x), y), e),
            "state_bytes": 16 * p, "adam_bytes": ADAM_BYTES_PER_PARAM * p, "params": p}


def g_model() -> dict:
    m = full_scale(1, ())  # G step FLOPs and activations per image, state and Adam bytes: docs/scaling.md's figures
    return {"gflop_per_image": m["g_step_gflop_per_image"], "activation_bytes_per_image":
            m["activation_bytes_per_image"]["G step"], "state_bytes": m["state_bytes"], "adam_bytes": m["adam_bytes"],
            "params": m["params"], "full_scale": m}


def predicted(model: dict, row: dict) -> tuple[float, float]:
    b = row["batch"]
    return (b * model["gflop_per_image"] * 1e9 / row["peak"] + model["adam_bytes"] / row["bw"],
            model["state_bytes"] + b * model["activation_bytes_per_image"])


def _run_case(case: str, batch: int, a: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--batch", str(batch), "--reps",
           str(a.reps), "--threads", str(a.threads), "--num-classes", str(a.num_classes)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        sys.exit(f"error: the {case} step at batch {batch} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[2, 8], help="images per step")
    p.add_argument("--reps", type=int, default=2, help="timed steps per case after a warm-up (best is kept)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num-classes", type=int, default=1000, help="E's fc8 width (ImageNet: 1000)")
    p.add_argument("--util", type=float, default=0.25, help="share of a GPU's bf16 peak, for the GPU lines")
    p.add_argument("--json", help="write every figure to this file")
    p.add_argument("--case", choices=("E", "G"), help=argparse.SUPPRESS)  # one measurement, in this process
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    a = parse_args(p, argv, batches=[1], reps=1, threads=1)
    torch.set_num_threads(a.threads)
    if a.case:
        print(json.dumps(measure(a.case, a.batch, a.reps, a.num_classes)))
        return

    probe = matmul_probe()
    print(f"== the 227-px configuration on this CPU ({a.threads} threads; 2048² fp32 matmul probe "
          f"{probe:.0f} GFLOP/s)")
    models = {"E": e_model(a.num_classes), "G": g_model()}
    print(f"  E step: caffenet, 227 px, {a.num_classes} classes, AdamW: {models['E']['params'] / 1e6:.1f} M params, "
          f"{models['E']['gflop_per_image']:.2f} GFLOP/image, {models['E']['activation_bytes_per_image'] / MIB:.1f} "
          f"MiB saved for backward per image")
    pg = models["G"]["params"]
    print(f"  G step: paper G {pg['G'] / 1e6:.1f} M + paper D {pg['D'] / 1e6:.1f} M trained, E {pg['E'] / 1e6:.1f} M "
          f"frozen: {models['G']['gflop_per_image']:.2f} GFLOP/image, "
          f"{models['G']['activation_bytes_per_image'] / MIB:.1f} MiB saved for backward per image "
          f"(scaling_model.full_scale)")
    rows = []
    for case in ("E", "G"):
        for b in a.batches:
            r = _run_case(case, b, a)
            r["predicted_s"], r["predicted_peak"] = predicted(models[case], r)
            r["gflop"] = b * models[case]["gflop_per_image"]
            rows.append(r)
    print()
    print("| step | batch | GFLOP/step | matmul probe GFLOP/s | copy GB/s | predicted s/step | measured s/step | "
          "measured/predicted | predicted peak MiB | measured peak MiB | measured/predicted |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['batch']} | {r['gflop']:.1f} | {r['peak'] / 1e9:.0f} | {r['bw'] / 1e9:.1f} | "
              f"{r['predicted_s']:.2f} | {r['measured_s']:.2f} | {r['measured_s'] / r['predicted_s']:.2f} | "
              f"{r['predicted_peak'] / MIB:.0f} | {r['measured_peak'] / MIB:.0f} | "
              f"{r['measured_peak'] / r['predicted_peak']:.2f} |")
    print()
    fs = models["G"]["full_scale"]
    print(f"the G step on GPUs, by the same model (compute only: bf16 peak × {a.util:.0%}, + Adam over HBM):")
    for key in ("h100", "a100", "a10g"):
        t = [predict_epoch(fs, GPUS[key], 1, b, a.util, 1e12)["t_compute_ms"] for b in a.batches]
        print(f"  {GPUS[key]['name']}: " + ", ".join(f"b={b} {ms:.1f} ms" for b, ms in zip(a.batches, t)))
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "models": {k: {kk: vv for kk, vv in v.items()
                                                                          if kk != "full_scale"}
                                                                      for k, v in models.items()},
                                            "probe_gflops": probe}, indent=1, default=float))


if __name__ == "__main__":
    main()
