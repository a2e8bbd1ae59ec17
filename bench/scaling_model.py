"""FLOP and memory model of full-scale DGN training and atlases, checked against a CPU run of the same code.

    python bench/scaling_model.py                       # model + CPU check, ~2 min on 2 cores
    python bench/scaling_model.py --gpus 1 8 64 --batch 64 --util 0.25 --json scaling.json
    python bench/scaling_model.py --skip-check --decode-rate 962        # the tables of docs/scaling.md
    python bench/scaling_model.py --dry-run      # the model at batch 1, the embedded cases of the check at b=2

Full scale: E = C = the 227-px ``caffenet`` preset (C is E up to pool5), G = the
paper's fc6 generator (``paper`` preset), D = the 227-px discriminator — the
networks :class:`dgn.train.gan.GANTrainer` builds for ``--preset paper``.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the
real modules (matmuls and convolutions, forward and backward; elementwise ops
are not counted). Memory: parameter, gradient and Adam-state bytes, and the
bytes autograd saves for backward per image (a ``saved_tensors_hooks`` count).

Predictions (assumptions in ``GPUS`` below, printed with the results):

    t_compute(step) = b · F_step / (peak · util)
    t_allreduce     = 2 (N−1)/N · 4 · (P_G + P_D) / busbw       (ring all-reduce of fp32 grads)
    t_step          ∈ [max(t_compute, t_allreduce), t_compute + t_allreduce]   (full / no overlap)
    epoch           = ⌈1 281 167 / (b N)⌉ · t_step

Check: the same code at small scale on this CPU — a G step of the embedded
preset and of the full-scale nets, and a batched DGN-AM step — timed beside a
fp32 matmul that measures the CPU's peak in the same run; printed as measured
time / (FLOPs / matmul peak), i.e. 1 / the share of peak reached.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from common import parse_args
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from dgn.am import AMConfig, TargetNet, as_objective, dgn_am
from dgn.data import decode_image, render
from dgn.nets import build_caffenet
from dgn.timing import matmul_probe
from dgn.train.gan import PAPER, GANConfig, GANTrainer

IMAGENET_TRAIN = 1_281_167
ADAM_BYTES_PER_PARAM = 28  # torch's foreach Adam reads p, g, m, v and writes p, m, v (fp32): memory-bound
ATLAS_STEPS = 200
# Peak dense bf16 tensor FLOP/s (vendor datasheets, no sparsity) and the all-reduce bus bandwidth a ring reaches
# inside one node (NVLink) and across nodes (per-GPU share of the node's network). Utilisation: CNN training in
# bf16 reaches ~20-30% of peak (ResNet-50 on A100: ~2700 img/s × 24.6 GFLOP = 66 TFLOP/s = 21%); 0.25 assumed.
# busbw is all-reduce bus bandwidth as nccl-tests reports it (a ring's per-rank rate): assumed, below the links'
# nominal rates (NVLink 4: 450 GB/s, NVLink 3: 300 GB/s; EFA 3.2 Tb/s = 400 GB/s, 400 Gb/s = 50 GB/s per node).
# vcpus: host vCPUs per GPU that decode JPEGs for the loader. hbm: memory bandwidth, for Adam's update.
GPUS = {
    "h100": dict(name="H100 SXM (p5.48xlarge: 8/node, NVLink, 3.2 Tb/s EFA)", peak=989e12, hbm=3.35e12,
                 intra=360e9, inter=300e9, per_node=8, vcpus=24),
    "a100": dict(name="A100 SXM 40 GB (p4d.24xlarge: 8/node, NVLink, 400 Gb/s EFA)", peak=312e12, hbm=1.555e12,
                 intra=230e9, inter=40e9, per_node=8, vcpus=12),
    "a10g": dict(name="A10G (g5.xlarge: 1/node, up to 10 Gb/s)", peak=70e12, hbm=0.6e12,
                 intra=0, inter=1.0e9, per_node=1, vcpus=4),
    "a10g-x4": dict(name="A10G (g5.12xlarge, as in ray_cluster.yaml: 4/node, PCIe, 40 Gb/s)", peak=70e12,
                    hbm=0.6e12, intra=12e9, inter=4e9, per_node=4, vcpus=12),
}


# helpers


def flops(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def saved_bytes(fn, *nets: torch.nn.Module) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs (each storage once).

    Weights of ``nets`` (saved as views for the input gradient) are state, counted elsewhere.
    """
    weights = {p.untyped_storage().data_ptr() for n in nets for p in n.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def copy_bandwidth(mib: int = 256, reps: int = 5) -> float:
    """Bytes/s read + written by a large tensor copy: the memory roofline of elementwise work."""
    a, b = torch.empty(mib * 2**18), torch.randn(mib * 2**18)
    a.copy_(b)
    t = timed(lambda: a.copy_(b), reps)
    return 2 * a.numel() * 4 / t


def timed(fn, reps: int = 1) -> float:
    """Best of ``reps`` wall times (neighbours on a shared machine only ever slow a run down)."""
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def gbytes(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


# the full-scale networks


ATLAS_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def full_scale(batch: int = 2, atlas_layers: tuple[str, ...] = ATLAS_LAYERS) -> dict:
    """FLOPs per image of E, C, G, D forward/backward as used in a G step, memory, and the whole step; the
    DGN-AM unit-step of ``atlas_layers``."""
    torch.manual_seed(0)
    e = build_caffenet("caffenet").eval()
    tr = GANTrainer(e, GANConfig(**PAPER))
    G, D = tr.G, tr.D
    x = torch.rand(batch, 3, 227, 227)  # (B, 3, 227, 227)
    y = tr.code(x)  # (B, 4096)
    b = float(batch)
    out: dict = {"params": {"E": n_params(e), "G": n_params(G), "D": n_params(D)}}

    f = {}
    f["E fwd (code, to fc6)"] = flops(lambda: tr.code(x)) / b
    with torch.no_grad():
        f["C fwd (real, to pool5)"] = flops(lambda: e.blob(x, "pool5")) / b
    fake = G(y)
    f["G fwd"] = flops(lambda: G(y)) / b
    xf = fake.detach().requires_grad_(True)

    def c_fb():
        e.blob(xf, "pool5").pow(2).sum().backward()

    cfb = flops(c_fb) / b
    f["C fwd (fake)"] = f["C fwd (real, to pool5)"]
    f["C bwd (to the image)"] = cfb - f["C fwd (fake)"]
    f["D fwd"] = flops(lambda: D(xf, y)) / b

    def d_fb():
        D(xf, y).sum().backward()

    f["D bwd (params + image)"] = flops(d_fb) / b - f["D fwd"]

    def g_fb():
        G(y).sum().backward()

    f["G bwd (params)"] = flops(g_fb) / b - f["G fwd"]
    out["per_image_gflop"] = {k: v / 1e9 for k, v in f.items()}

    tr2 = GANTrainer(e, GANConfig(**PAPER))
    step = flops(lambda: tr2.step(x)) / b
    out["g_step_gflop_per_image"] = step / 1e9
    # activations autograd keeps for G's backward (G, C on the fake, D on the fake) and for D's own step; one G
    # forward feeds C and D, as in GANTrainer.step (G's saved activations counted once)
    def g_loss():
        fake = G(y)
        return tr2.cfg.w_feature * e.blob(fake, "pool5").sum() + D(fake, y).sum()

    g_graph = saved_bytes(g_loss, e, G, D) / b
    d_graph = saved_bytes(lambda: D(torch.cat([fake.detach(), x]), torch.cat([y, y])).sum(), e, G, D) / b
    out["activation_bytes_per_image"] = {"G step": g_graph, "D step": d_graph}
    p_g, p_d, p_e = out["params"]["G"], out["params"]["D"], out["params"]["E"]
    # fp32 weights + grads + Adam (m, v) for G and D; E/C frozen: weights only
    out["state_bytes"] = 16 * (p_g + p_d) + 4 * p_e
    out["allreduce_bytes"] = 4 * (p_g + p_d)
    out["adam_bytes"] = ADAM_BYTES_PER_PARAM * (p_g + p_d)

    # DGN-AM: one unit-step per layer (G fwd + target fwd to the layer + backward to the code)
    target = TargetNet.caffenet(e)
    for p in G.parameters():
        p.requires_grad_(False)
    G.eval()
    am = {}
    for layer in atlas_layers:
        objs = [as_objective(f"{layer}:0")]

        def unit_step():
            code = torch.rand(1, 4096, requires_grad=True)
            obj, _ = target.values(G(code), objs)
            obj.sum().backward()

        am[layer] = {"units": int(getattr(e, layer).out_channels if layer.startswith("conv")
                                  else getattr(e, layer).out_features),
                     "gflop_per_unit_step": flops(unit_step) / 1e9,
                     "activation_bytes_per_unit": saved_bytes(unit_step, e, G)}
    out["atlas"] = am
    return out


def predict_epoch(model: dict, gpu: dict, n: int, batch: int, util: float, decode_rate: float) -> dict:
    """One epoch of G training on ``n`` GPUs; the loader decodes on the GPU's vCPUs in parallel with compute."""
    f_step = model["g_step_gflop_per_image"] * 1e9
    t_comp = batch * f_step / (gpu["peak"] * util) + model["adam_bytes"] / gpu["hbm"]
    busbw = gpu["intra"] if n <= gpu["per_node"] else gpu["inter"]
    t_comm = 0.0 if n == 1 else 2 * (n - 1) / n * model["allreduce_bytes"] / busbw
    t_data = batch / (decode_rate * gpu["vcpus"])
    steps = math.ceil(IMAGENET_TRAIN / (batch * n))
    t_fast, t_slow = max(t_comp, t_comm, t_data), max(t_comp + t_comm, t_data)
    return {"gpus": n, "steps": steps, "t_compute_ms": 1e3 * t_comp, "t_allreduce_ms": 1e3 * t_comm,
            "t_data_ms": 1e3 * t_data, "epoch_min_overlap": steps * t_fast / 60,
            "epoch_min_serial": steps * t_slow / 60, "images_per_s": batch * n / t_fast,
            "bound": ("compute", "allreduce", "data")[[t_comp, t_comm, t_data].index(t_fast)]}


def atlas_cost(model: dict, gpu: dict, util: float) -> dict:
    per_layer = {k: v["units"] * ATLAS_STEPS * v["gflop_per_unit_step"] * 1e9 for k, v in model["atlas"].items()}
    total = sum(per_layer.values())
    return {"units": sum(v["units"] for v in model["atlas"].values()), "pflop": total / 1e15,
            "gpu_hours": total / (gpu["peak"] * util) / 3600,
            "per_layer_gpu_minutes": {k: v / (gpu["peak"] * util) / 60 for k, v in per_layer.items()}}


# the CPU check


def cpu_check(reps: int, *, batch: int = 32, am_units: int = 32, am_steps: int = 10, full: bool = True
              ) -> list[dict]:
    """Counted FLOPs and Adam bytes of the same code at small scale, its measured wall time, and the CPU's matmul
    rate and copy bandwidth measured just before and just after it (neighbours' load drifts; the mean of the two
    readings is what the case saw). ``full``: the full-scale cases too (else the embedded preset's only)."""
    rows = []
    torch.manual_seed(0)

    def timed_case(fn):
        p0, b0 = matmul_probe(1024, 3) * 1e9, copy_bandwidth()
        t = timed(fn, reps)
        p1, b1 = matmul_probe(1024, 3) * 1e9, copy_bandwidth()
        return t, (p0 + p1) / 2, (b0 + b1) / 2

    def g_step_case(name, e, cfg, batch, size):
        tr = GANTrainer(e, cfg)
        x = torch.rand(batch, 3, size, size)
        tr.step(x)  # warm-up (allocations, first-call dispatch)
        fresh = GANTrainer(e, cfg)
        f = flops(lambda: fresh.step(x))
        def full_step():
            tr.train_d = tr.train_g = True  # the D/G balance may pause one: time the full step that was counted
            tr.step(x)

        t, peak, bw = timed_case(full_step)
        adam = ADAM_BYTES_PER_PARAM * (n_params(tr.G) + n_params(tr.D))
        rows.append({"case": name, "gflop": f / 1e9, "adam_bytes": adam, "measured_s": t, "peak": peak, "bw": bw})

    small_e = build_caffenet("small").eval()
    g_step_case(f"G step, embedded preset (64 px, b={batch})", small_e, GANConfig(warmup_steps=0, w_adv=0.01),
                batch, 64)
    big_e = build_caffenet("caffenet").eval() if full else None
    if full:
        g_step_case("G step, full scale (227 px, paper G, b=2)", big_e, GANConfig(**PAPER), 2, 227)

    def am_case(name, e, g, units, steps):
        target = TargetNet.caffenet(e)
        stats = {k: torch.full(g.config.code_shape, v) for k, v in (("mean", 0.5), ("std", 0.5), ("upper", 2.0))}
        cfg = AMConfig(steps=steps)  # the product's AM; its FLOPs do not depend on the settings
        objs = [as_objective(u) for u in units]
        for p in g.parameters():
            p.requires_grad_(False)
        code = torch.rand(len(units), *g.config.code_shape)

        def one_step():  # what each of dgn_am's steps runs (autograd.grad cannot run under FlopCounterMode)
            c = code.clone().requires_grad_(True)
            target.values(g(c), objs)[0].sum().backward()

        def final():  # dgn_am's last evaluation and render
            with torch.no_grad():
                target.values(g(code), objs)
                g(code)

        f = steps * flops(one_step) + flops(final)
        dgn_am(g, target, units[:2], code_stats=stats, config=AMConfig(steps=1))  # warm-up
        t, peak, bw = timed_case(lambda: dgn_am(g, target, units, code_stats=stats, config=cfg))
        rows.append({"case": name, "gflop": f / 1e9, "adam_bytes": 0, "measured_s": t, "peak": peak, "bw": bw})

    sg = GANTrainer(small_e, GANConfig()).generator.eval()
    am_case(f"DGN-AM, embedded preset ({am_units} fc8/fc6 units × {am_steps} steps)", small_e, sg,
            [f"fc8:{k % 10}" if k < 10 else f"fc6:{k}" for k in range(am_units)], am_steps)
    if full:
        bg = GANTrainer(big_e, GANConfig(**PAPER)).generator.eval()
        am_case("DGN-AM, full scale (4 fc8 units × 3 steps)", big_e, bg, [f"fc8:{k}" for k in range(4)], 3)
    return rows


def data_decode_rate(n: int = 100) -> float:
    """Images/s one CPU core decodes (+ crop + resize to 227) from ~500×375 JPEGs, ImageNet's typical size."""
    torch.set_num_threads(1)
    img = Image.fromarray(render(3, np.random.default_rng(0), image_size=375)).resize((500, 375))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    t = timed(lambda: [decode_image(data, 227, where="bench") for _ in range(n)], 2)
    return n / t


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 8, 32, 64])
    p.add_argument("--batch", type=int, default=64, help="images per GPU per step (the paper's G: 64)")
    p.add_argument("--util", type=float, default=0.25, help="share of the GPU's bf16 peak reached")
    p.add_argument("--reps", type=int, default=2, help="timed repetitions on the CPU (best is kept)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-check", action="store_true", help="model only, no CPU timing")
    p.add_argument("--decode-rate", type=float, default=0.0,
                   help="JPEG decodes/s per core to assume (0: measure here; neighbours' load lowers it)")
    p.add_argument("--json", help="write every figure to this file")
    a = parse_args(p, argv, gpus=[1, 8], reps=1, threads=1)
    # dry run: the model at batch 1 (atlas: conv1 and fc8); the check on the embedded preset only (G step b=2,
    # 4 units × 2 AM steps)
    check = {"batch": 2, "am_units": 4, "am_steps": 2, "full": False} if a.dry_run else {}

    rate = a.decode_rate or data_decode_rate(5 if a.dry_run else 100)
    torch.set_num_threads(a.threads)
    model = full_scale(1, ("conv1", "fc8")) if a.dry_run else full_scale()
    model["decode_images_per_s_per_core"] = rate
    print("== full-scale networks (E = C: caffenet 227 px, G: paper fc6, D: 227 px)")
    for k, v in model["params"].items():
        print(f"  params {k}: {v / 1e6:.1f} M")
    print("  FLOPs per image in one G step (GFLOP):")
    for k, v in model["per_image_gflop"].items():
        print(f"    {k:28s} {v:7.3f}")
    print(f"    {'whole G+D step (counted)':28s} {model['g_step_gflop_per_image']:7.3f}")
    act = model["activation_bytes_per_image"]
    print(f"  activations saved for backward, per image: G step {act['G step'] / 2**20:.1f} MiB, "
          f"D step {act['D step'] / 2**20:.1f} MiB (fp32; bf16 autocast roughly halves them)")
    print(f"  weights+grads+Adam of G and D, E frozen: {gbytes(model['state_bytes'])}; "
          f"all-reduced per step: {model['allreduce_bytes'] / 2**20:.0f} MiB fp32")
    print(f"  per GPU at b={a.batch}: {gbytes(model['state_bytes'] + a.batch * act['G step'])} "
          f"(state + G-step activations)")

    model["epochs"] = {}
    for key, gpu in GPUS.items():
        print(f"== ImageNet epoch of G training ({IMAGENET_TRAIN} images), {gpu['name']}, "
              f"{gpu['peak'] / 1e12:.0f} TFLOP/s bf16 peak × {a.util:.0%}, b={a.batch}/GPU")
        print(f"   loader: {gpu['vcpus']} vCPUs/GPU × {rate:.0f} JPEG decodes/s per core "
              f"({'assumed' if a.decode_rate else 'measured here'})")
        print("   GPUs   compute/step  allreduce/step  data/step   epoch (overlap..serial)   images/s  bound")
        rows = []
        for n in a.gpus:
            r = predict_epoch(model, gpu, n, a.batch, a.util, rate)
            rows.append(r)
            print(f"  {n:5d}   {r['t_compute_ms']:9.1f} ms  {r['t_allreduce_ms']:11.1f} ms  {r['t_data_ms']:6.1f} ms"
                  f"   {r['epoch_min_overlap']:7.1f} .. {r['epoch_min_serial']:7.1f} min  {r['images_per_s']:9.0f}"
                  f"  {r['bound']}")
        model["epochs"][key] = rows

    print(f"== atlas of every CaffeNet unit per checkpoint ({ATLAS_STEPS} steps each)")
    for layer, v in model["atlas"].items():
        print(f"  {layer:6s} {v['units']:5d} units × {v['gflop_per_unit_step']:.2f} GFLOP/unit-step, "
              f"{v['activation_bytes_per_unit'] / 2**20:.0f} MiB activations/unit")
    model["atlas_cost"] = {}
    for key, gpu in GPUS.items():
        c = atlas_cost(model, gpu, a.util)
        model["atlas_cost"][key] = c
        print(f"  {key}: {c['units']} units, {c['pflop']:.1f} PFLOP = {c['gpu_hours']:.2f} GPU-hours per checkpoint "
              f"at {a.util:.0%} of peak")

    if not a.skip_check:
        print("== check on this CPU: the model's time (FLOPs / matmul peak + Adam bytes / copy bandwidth, both "
              "measured in this run) vs the measured time of the same code")
        rows = cpu_check(a.reps, **check)
        print(f"  ({torch.get_num_threads()} threads; fp32 matmul rate and copy bandwidth measured around each case)")
        for r in rows:
            r["predicted_s"] = r["gflop"] * 1e9 / r["peak"] + r["adam_bytes"] / r["bw"]
            r["measured_over_predicted"] = r["measured_s"] / r["predicted_s"]
            print(f"  {r['case']:55s} {r['gflop']:7.2f} GFLOP  matmul {r['peak'] / 1e9:5.1f} GFLOP/s  "
                  f"copy {r['bw'] / 1e9:5.1f} GB/s  predicted {r['predicted_s']:6.3f} s  "
                  f"measured {r['measured_s']:6.3f} s  measured/predicted {r['measured_over_predicted']:5.2f}")
        model["cpu_check"] = {"rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(model, indent=1))


if __name__ == "__main__":
    main()
