"""run_atlas: plan → actor pool → manifest → static atlas → MLflow (driver only)."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import torch
from torch import nn

from dgn.am.dgn_am import AM_PAPER, AMConfig
from dgn.atlas.config import COMBINE, DEFAULT_LAYERS, AtlasConfig, parse_spec, spec_for, unit_specs
from dgn.atlas.manifest import Manifest
from dgn.atlas.plan import Source, make_items, select_epochs, sources
from dgn.atlas.pool import ActorPool
from dgn.atlas.results import collect
from dgn.atlas.site import grid_image, write_group, write_html, write_plots
from dgn.atlas.worker import AtlasWorker, open_target
from dgn.cluster import init_ray
from dgn.data import read_meta
from dgn.data.uri import is_s3, join, resolve
from dgn.errors import DGNError
from dgn.nets.adapters import TargetNet, layer_names
from dgn.nets.conventions import crop_size, imagenet_class_names
from dgn.nets.deepsim import (
    CODE_SHAPES,
    bounds_from_images,
    build_deepsim,
    check_deepsim_file,
    load_bounds,
    save_bounds,
)
from dgn.nets.deepsim import parse_spec as parse_generator_spec
from dgn.nets.objectives import Objective, check_objectives
from dgn.storage import exists
from dgn.tracking.atlas import log_group, log_site, log_summary
from dgn.train import load_classifier, load_generator

# a published prior gets the reference's settings (act_max.py: 200 steps, lr 8 → 1e-10, clip to [0, bound] then
# code × 0.99, the last iterate) from the reference's start, N(0, 1) noise (dgn.nets.deepsim.reference_stats)
DEEPSIM_AM = {**AM_PAPER, "init": "noise", "noise_std": 1.0}


def am_config(cfg: AtlasConfig) -> AMConfig:
    """A run's G: the product's DGN-AM (AMConfig's defaults); a published prior: the reference's; then ``cfg.am``."""
    return AMConfig(**{**(DEEPSIM_AM if cfg.published else {}), **cfg.am})


def settings(cfg: AtlasConfig) -> dict:
    """What makes two atlases the same (a rerun with other settings may not reuse the manifest)."""
    out = {"target": cfg.target, "target_weights": cfg.target_weights, "generators": cfg.generators,
           "generator_layer": cfg.generator_layer, "am": am_config(cfg).to_dict(), "starts": cfg.starts,
           "seed": cfg.seed, "n_real": cfg.n_real}
    if cfg.published:
        out.update(generator=cfg.generator, bounds=cfg.bounds, data=cfg.data)
    return out


def _published_sources(cfg: AtlasConfig) -> list[Source]:
    return [Source(epoch=0, target=cfg.target, generator=cfg.generator, run_target=False)]


def class_layer_of(target) -> str | None:
    """The layer whose units are the 1000 ImageNet classes: the last 1000-wide Linear (fc8, fc, classifier.6, …),
    else a TorchScript model's 1000-wide ``output``."""
    last = None
    for name, m in target.model.named_modules():
        if isinstance(m, nn.Linear) and m.out_features == 1000:
            last = name
    if last is None and "output" in dict(target.model.named_modules()):
        try:
            if target.layer_shapes(["output"], 64)["output"] == (1000,):
                last = "output"
        except Exception:  # noqa: BLE001 — a model that cannot run at 64 px has no names here
            pass
    return last


def resolve_bounds(cfg: AtlasConfig, target) -> torch.Tensor:
    """The deepsim G's upper code bounds: read from the file, or mean + 3σ over an image folder through the target
    (which must have the G's code layer, e.g. torchvision:alexnet's fc6); a copy goes beside the atlas."""
    layer, _ = parse_generator_spec(cfg.generator)
    if cfg.bounds.startswith("imagefolder:"):
        shapes = target.layer_shapes([layer], 227) if layer in dict(target.model.named_modules()) else {}
        if tuple(shapes.get(layer, ())) != CODE_SHAPES[layer]:
            raise DGNError(f"--bounds imagefolder: needs the target to have the {layer} code layer "
                           f"{CODE_SHAPES[layer]} (e.g. torchvision:alexnet); {cfg.target!r} has "
                           f"{shapes.get(layer, 'no such layer')}")
        upper = bounds_from_images(cfg.bounds.removeprefix("imagefolder:"), target, layer)
    else:
        upper = load_bounds(cfg.bounds, CODE_SHAPES[layer])
    if not is_s3(cfg.out_uri):
        save_bounds(upper, Path(cfg.out_uri.removeprefix("file://")) / f"bounds-{layer}.txt")
    return upper


def _context(cfg: AtlasConfig, first: Source) -> dict:
    """Data URI, judge, class names, layer shapes: what the driver checks before any work starts."""
    if cfg.published:
        return _published_context(cfg, first)
    g, _ = load_generator(first.generator)
    data = cfg.data
    if first.run_target:  # the run's classifier checkpoint, read once (0.7 GB for the 227-px caffenet)
        net, ck = load_classifier(first.target)
        target = TargetNet.caffenet(net, name=f"classifier {first.key}")
        data = data or ck.get("data", "")
    else:
        target = open_target(first, cfg.target_weights)
    if not data or not exists(join(data, "val"), folder=True):
        data = join(cfg.storage, "data")
    meta = read_meta(data)
    judge = join(cfg.storage, "judge", "judge.pt")
    return _wanted(cfg, first, target, g.config.image_size, {
        "data": data, "judge": judge if exists(judge) else "", "class_names": meta.class_names,
        "class_layer": "fc8" if first.run_target else None, "unit_names": {}})


def _published_context(cfg: AtlasConfig, first: Source) -> dict:
    """A deepsim G: no run, no judge. Best-real activations from --data if given (else ratios are NaN); ImageNet
    class names beside the class layer's units."""
    layer, path = parse_generator_spec(first.generator)
    check_deepsim_file(path, layer)  # a wrong file: one line now, not in every actor
    target = open_target(first, cfg.target_weights)
    size = crop_size(target.input_size)
    g = build_deepsim(layer, size, device="meta")
    if cfg.data:
        read_meta(cfg.data)  # readable, or one line
    cls = class_layer_of(target)  # no judge: a run's judge knows the run's classes, not ImageNet's
    ctx = {"data": cfg.data, "judge": "", "class_names": [],
           "class_layer": None, "unit_names": {cls: imagenet_class_names()} if cls else {},
           "bounds": resolve_bounds(cfg, target), "image_size": size}
    return _wanted(cfg, first, target, g.config.image_size, ctx)


def _wanted(cfg: AtlasConfig, first: Source, target, image_size: int, ctx: dict) -> dict:
    if cfg.layers is None and not first.run_target and target.relu_layers == frozenset():
        names = layer_names(target)
        raise DGNError(f"target {cfg.target!r} has no Caffe layer names; choose --layers among its modules: "
                       + ", ".join(names[:40]) + (f", … ({len(names)} in all)" if len(names) > 40 else ""))
    layers = list(cfg.layers if cfg.layers is not None else DEFAULT_LAYERS)
    combos = [Objective.parse(c) for c in cfg.combine]
    needed = sorted(set(layers) | {l for o in combos for l in o.layers})
    shapes = target.layer_shapes(needed, image_size)
    check_objectives(combos, shapes)
    specs = unit_specs(cfg.units)
    stray = sorted(set(specs) - set(layers) - {"*"})
    if stray:
        raise DGNError(f"units given for layer(s) {stray} that are not rendered; layers: {', '.join(layers)}")
    wanted: dict[str, list] = {l: parse_spec(spec_for(specs, l), shapes[l][0], layer=l) for l in layers}
    if combos:
        wanted[COMBINE] = [str(o) for o in combos]
    return {**ctx, "wanted": wanted}


def _make_pool(cfg: AtlasConfig, ctx: dict, token: str) -> ActorPool:
    import ray

    res = ray.available_resources()
    cpus = max(res.get("CPU", 1.0), 1.0)
    per = 1.0 if cfg.actors <= cpus else round(cpus / cfg.actors, 3)
    threads = cfg.threads or max(1, int(cpus // cfg.actors))
    gpus = (min(1.0, res.get("GPU", 0.0) / cfg.actors) if cfg.device == "cuda" else 0)
    if cfg.device == "cuda" and not gpus:
        raise DGNError("device cuda was asked for but the Ray cluster has no GPU")
    remote = ray.remote(AtlasWorker)
    kwargs = dict(judge=ctx["judge"], data=ctx["data"], am=am_config(cfg).to_dict(), starts=cfg.starts, seed=cfg.seed,
                  n_real=cfg.n_real, device=cfg.device, threads=threads, target_weights=cfg.target_weights,
                  bounds=ctx.get("bounds"))

    def make(i: int):
        return remote.options(name=f"dgn-atlas-{token}-{i}", num_cpus=per, num_gpus=gpus,
                              max_restarts=0).remote(**kwargs)

    return ActorPool(make, cfg.actors)


def _site_root(cfg: AtlasConfig) -> tuple[Path, bool]:
    """Where the static atlas is written: ``<out>/html`` locally; a temp dir (uploaded after) for s3://."""
    if is_s3(cfg.out_uri):
        return Path(tempfile.mkdtemp(prefix="dgn-atlas-")), True
    return Path(cfg.out_uri.removeprefix("file://")) / "html", False


def _upload(root: Path, uri: str) -> None:
    fs, path = resolve(uri)
    pafs.copy_files(str(root), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def run_atlas(cfg: AtlasConfig, *, run=None, log=print) -> dict:
    """Render the atlas of ``cfg`` (skipping finished items), write it, log it to ``run``; returns a summary."""
    cfg.validate()
    t0 = time.time()
    if cfg.published:
        srcs = _published_sources(cfg)
    else:
        srcs = select_epochs(sources(cfg.storage, target=cfg.target, generators=cfg.generators,
                                     generator_layer=cfg.generator_layer), cfg.epochs)
    ctx = _context(cfg, srcs[0])
    out = cfg.out_uri
    manifest = Manifest.open(out, settings(cfg))
    skipped = len(manifest.items)
    items = make_items(srcs, ctx["wanted"], manifest.done_units(), chunk=cfg.chunk)
    n_units = sum(len(it.units) for it in items)
    log(f"atlas: {len(srcs)} checkpoint(s) × {', '.join(f'{l} ({len(u)})' for l, u in ctx['wanted'].items())}: "
        f"{len(items)} item(s), {n_units} unit(s) to render, {skipped} item(s) already done in {out}")
    stats = {"target_loads": 0, "replaced": 0, "units": 0}
    t_pool = time.time()
    if items:
        import ray

        started = init_ray()
        pool = _make_pool(cfg, ctx, uuid.uuid4().hex[:8])
        n_done = [0]

        def on_result(item, result, slot):
            meta = result.pop("meta")
            manifest.add(item, result, meta={"seconds": float(meta[0]), "actor": slot})
            stats["target_loads"] += int(meta[1])
            stats["units"] += len(item.units)
            n_done[0] += 1
            log(f"atlas: [{n_done[0]}/{len(items)}] {item.source.key} {item.layer} {len(item.units)} unit(s) "
                f"on actor {slot} in {meta[0]:.1f}s")

        try:
            pool.run(items, on_result, log=log)
        finally:
            pool.shutdown()
            stats["replaced"] = pool.replaced
            if started:
                ray.shutdown()
    pool_seconds = time.time() - t_pool

    # the static atlas and MLflow, from everything the manifest holds
    what = "G epoch" if cfg.generators == "all" else "epoch"
    prefix = "atlas-by-generator" if cfg.generators == "all" else "atlas"
    groups = collect(manifest, class_names=ctx["class_names"], class_layer=ctx["class_layer"],
                     unit_names=ctx["unit_names"])
    root, remote = _site_root(cfg)
    run_id = getattr(run, "run_id", None)
    for g in groups.values():
        folder = write_group(root, g, what=what)
        logged_key = f"{prefix}/{g.key}#{g.signature()}"  # a group that grew (more --units) is logged again
        if run is not None and not manifest.was_logged(run_id, logged_key):
            log_group(run, g, folder, grid_image(g, what=what), prefix=prefix)
            manifest.mark_logged(run_id, logged_key)
    write_plots(root, groups, what=what)
    title = f"DGN-AM atlas of {cfg.target} with {cfg.generator.split('=')[0]}" if cfg.published else \
        f"DGN-AM atlas of {cfg.storage}"
    index = write_html(root, groups, title=title, what=what) if cfg.html else None
    if remote:
        _upload(root, join(out, "html"))
    summary = _summary(cfg, groups, ctx, items=items, skipped=skipped, stats=stats, pool_seconds=pool_seconds,
                       seconds=time.time() - t0, html=str(index) if not remote else join(out, "html", "index.html"))
    if run is not None:
        log_site(run, root, prefix=prefix)
        log_summary(run, summary, prefix=prefix)
    if remote:  # the s3:// site's local copy, uploaded and logged by now
        shutil.rmtree(root, ignore_errors=True)
    log(f"atlas: done: {summary['items_done']} item(s) rendered, {summary['items_skipped']} skipped, "
        f"{summary['units_per_s']:.2f} units/s; html at {summary['html']}")
    return summary


def _summary(cfg, groups, ctx, *, items, skipped, stats, pool_seconds, seconds, html) -> dict:
    layers = {}
    for (layer, _), g in groups.items():  # ordered by epoch: the last one wins
        layers[layer] = {"epoch": g.epoch, "units": len(g.units), "median_ratio": g.median_ratio(),
                         "recognisability": g.recognisability(), "dead_units": g.dead_units()}
    fc8 = layers.get(ctx["class_layer"] or "", {})
    return {
        "items_done": len(items), "items_skipped": skipped, "units_rendered": stats["units"],
        "units_per_s": stats["units"] / pool_seconds if stats["units"] else 0.0,
        "target_loads": stats["target_loads"], "actors_replaced": stats["replaced"],
        "recognisability": fc8.get("recognisability", float("nan")),
        "layers": layers, "seconds": seconds, "out": cfg.out_uri, "html": html,
        "device": cfg.device, "actors": cfg.actors, "torch_threads": torch.get_num_threads(),
    }
