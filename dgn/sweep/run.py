"""The sweep end to end, in the driver: shared E and judge → Tune → table, figure, verdict → MLflow."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dgn.sweep.base import load_nets, prepare_base
from dgn.sweep.config import SweepConfig
from dgn.sweep.figure import layer_figure, render_layers
from dgn.sweep.report import per_layer, per_layer_seeds, seed_verdict, seed_verdict_line, verdict, verdict_line, write_tables
from dgn.sweep.tuner import forget_sweep, init_ray, run_tuner
from dgn.tracking import browse_hint
from dgn.tracking.sweep import LiveTrials, log_sweep, open_parent

Log = Callable[[str], None]


def run_sweep(cfg: SweepConfig, log: Log = print, *, fresh: bool = False) -> dict:
    """Run (or resume) the sweep; returns {"interrupted", "verdict", "rows", "summary", "files", ...}.

    ``fresh``: forget this sweep's Tune state (local or s3://) and start over, in a new MLflow parent run;
    E and the judge are kept.
    """
    import ray

    cfg.validate()
    if fresh:
        forget_sweep(cfg, log)
    t0 = time.time()
    started = init_ray(cfg)
    parent = live = None

    def end_live(status: str) -> None:  # an interrupted or failed sweep never leaves runs looking live or complete
        if parent is not None:
            live.close(status)
            parent.finish(status)

    try:
        base = prepare_base(cfg, log)
        if cfg.tracking:  # the parent run exists (RUNNING) from the first trial on; children fill in live
            parent = open_parent(experiment=cfg.experiment, name=cfg.name, params=cfg.to_dict(), resume=not fresh)
            live = LiveTrials(experiment=cfg.experiment, name=cfg.name, parent_run_id=parent.run_id)
            log(f"mlflow: sweep run {cfg.name!r} (id {parent.run_id}), a child per trial as it reports; {browse_hint()}")
        out = run_tuner(cfg, base, log, None if live is None else [live])
    except BaseException as e:
        end_live("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        if started:
            ray.shutdown()
    if out.interrupted:
        end_live("KILLED")
        log(f"sweep: interrupted; run the same command again to resume ({out.experiment_path})")
        return {"interrupted": True, "rows": out.rows, "seconds": time.time() - t0}

    summary = per_layer(out.rows, cfg.layers)
    v = search = verdict(summary)  # the search's best trial; with several seeds the verdict is over seeds (below)
    seeds = verdicts = None
    lines = [verdict_line(v)]
    if len(cfg.trial_seeds) > 1:  # the fair protocol: the verdict rests on the means over seeds, with and without X
        seeds = per_layer_seeds(out.rows, cfg.layers)
        verdicts = [seed_verdict(seeds, "score"), seed_verdict(seeds, "score_no_x")]
        v = {**verdicts[0], "without_x": verdicts[1], "fc6_wins": verdicts[0]["best_layer"] == "fc6"}
        lines = [seed_verdict_line(sv) for sv in verdicts]
    out_dir = Path(cfg.storage) if "://" not in cfg.storage else Path(_scratch())
    files = write_tables(out.rows, summary, search, out_dir, seeds, verdicts)
    # the figure: each layer's best trial, or with several seeds its first seed's (no pick by score)
    pick = {s["layer"]: s["best_trial"] for s in summary} if seeds is None else \
        {s["layer"]: s["first_seed_trial"] for s in seeds}
    best = {layer: out.checkpoints[t] for layer, t in pick.items() if t in out.checkpoints}
    if best:
        encoder, _ = load_nets(base)
        images = render_layers(encoder, best, num_classes=base.num_classes, steps=cfg.am_steps, lr=cfg.am_lr,
                               seed=cfg.seed)
        files.append(layer_figure(images, class_names=base.class_names, path=out_dir / "sweep_layers.png",
                                  scores={s["layer"]: s["best_score"] for s in summary} if seeds is None else
                                  {s["layer"]: s["score_mean"] for s in seeds}))
    result = {"interrupted": False, "verdict": v, "verdict_lines": lines, "rows": out.rows, "summary": summary,
              "seed_summary": seeds, "files": [str(f) for f in files], "seconds": time.time() - t0,
              "restored": out.restored}
    (out_dir / "sweep_result.json").write_text(json.dumps(
        {k: result[k] for k in ("verdict", "verdict_lines", "summary", "seed_summary", "seconds")}, indent=1, default=str))
    files.append(out_dir / "sweep_result.json")
    for line in lines:
        log(line)
    if cfg.tracking:
        result["mlflow_run_id"] = log_sweep(experiment=cfg.experiment, name=cfg.name, params=cfg.to_dict(),
                                            rows=out.rows, histories=out.histories, summary=summary, verdict=v,
                                            files=files)
    return result


def _scratch() -> str:
    return tempfile.mkdtemp(prefix="dgn-sweep-")
