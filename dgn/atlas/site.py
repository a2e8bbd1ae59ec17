"""The static atlas: a folder of PNGs, tables, plots and HTML pages, browsable without MLflow.

    <root>/index.html                       layers, with per-epoch numbers and the plots
    <root>/<layer>/index.html               the layer's grid at every epoch, links to units
    <root>/<layer>/unit-0003.html           one unit across epochs, with its numbers
    <root>/<layer>/epoch=0003/grid.png      the labelled grid (also MLflow's stepped image)
    <root>/<layer>/epoch=0003/unit-0003.png a unit's preferred input
    <root>/<layer>/epoch=0003/table.csv     unit, activation, ratio, judge label/prob, dead
    <root>/plots/activation_ratio.png, recognisability.png

The same tree is what MLflow holds under ``atlas/``.
"""

from __future__ import annotations

import csv
import html
import math
from pathlib import Path

from PIL import Image

from dgn.atlas.grid import FRAME, fmt, labelled_grid
from dgn.atlas.results import Group

CSS = (f"body{{font-family:sans-serif;margin:1.5em;background:#fafafa}} h1,h2{{color:rgb{FRAME}}} "
       "table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 8px;text-align:right} "
       "img.u{width:128px;image-rendering:pixelated} .dead{color:#c00;font-weight:bold} "
       "figure{display:inline-block;margin:4px;text-align:center;font-size:12px}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def grid_image(g: Group, *, what: str = "epoch") -> Image.Image:
    subs = [("DEAD" if r["dead"] else f"r={fmt(r['activation_ratio'])} "
             f"{r['class_name'][:12] if r.get('class_name') else r['judge_label'][:8]}") for r in g.rows]
    names = [(n if len(n) <= 14 else n[:13] + "…") for n in (g.unit_name(i) for i in range(len(g.units)))]
    return labelled_grid(g.images, names, subs, dead=[r["dead"] for r in g.rows],
                         title=f"{g.layer} · {what} {g.epoch}")


def write_group(root: Path, g: Group, *, what: str = "epoch") -> Path:
    """PNGs, table and grid of one (layer, epoch) under ``root/<layer>/epoch=NNNN``; returns that folder."""
    d = root / g.layer / f"epoch={g.epoch:04d}"
    d.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(g.images):
        Image.fromarray(img).save(d / g.file_name(i))
    grid_image(g, what=what).save(d / "grid.png")
    with open(d / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(g.rows[0]))
        w.writeheader()
        w.writerows(g.rows)
    return d


def write_plots(root: Path, groups: dict, *, what: str = "epoch") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = root / "plots"
    out.mkdir(parents=True, exist_ok=True)
    layers = sorted({g.layer for g in groups.values()})
    paths = []
    for name, fn, ylabel in (("activation_ratio", Group.median_ratio, "median activation ratio (preferred / best real)"),
                             ("recognisability", Group.recognisability, "share recognised by the judge")):
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        for layer in layers:
            pts = [(g.epoch, fn(g)) for g in groups.values() if g.layer == layer]
            pts = [(e, v) for e, v in pts if not math.isnan(v)]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=layer)
        ax.set_xlabel(what)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        fig.tight_layout()
        p = out / f"{name}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths


def write_html(root: Path, groups: dict, *, title: str, what: str = "epoch") -> Path:
    layers = sorted({g.layer for g in groups.values()})
    rows = "".join(
        f"<tr><td style='text-align:left'><a href='{html.escape(g.layer)}/index.html'>{html.escape(g.layer)}</a></td>"
        f"<td>{g.epoch}</td><td>{len(g.units)}</td><td>{fmt(g.median_ratio())}</td><td>{fmt(g.recognisability())}</td>"
        f"<td>{len(g.dead_units())}</td></tr>" for g in groups.values())
    body = (f"<h1>{html.escape(title)}</h1><p>Preferred inputs (DGN-AM) of every unit, per {what}. Ratio: activation "
            "on the preferred input / the best activation over real validation images. Dead: never fires on a real "
            "image and has no gradient.</p><ul>"
            + "".join(f"<li><a href='{html.escape(l)}/index.html'>{html.escape(l)}</a></li>" for l in layers) + "</ul>"
            f"<table><tr><th>layer</th><th>{what}</th><th>units</th><th>median ratio</th><th>recognisability</th>"
            f"<th>dead</th></tr>{rows}</table>"
            "<p><img src='plots/activation_ratio.png'> <img src='plots/recognisability.png'></p>")
    (root / "index.html").write_text(_page(title, body))
    for layer in layers:
        gs = [g for g in groups.values() if g.layer == layer]
        _layer_pages(root / layer, layer, gs, what=what)
    return root / "index.html"


def _cell(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return fmt(v, ".3f") if isinstance(v, float) else str(v)


def _unit_page_name(g: Group, i: int) -> str:
    return g.file_name(i).replace(".png", ".html")


def _layer_pages(d: Path, layer: str, gs: list[Group], *, what: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    latest = gs[-1]
    units = "".join(
        f"<figure><a href='{_unit_page_name(latest, i)}'><img class='u' src='epoch={latest.epoch:04d}/"
        f"{latest.file_name(i)}'></a><br>{html.escape(latest.unit_name(i))}"
        + (f" <i>{html.escape(latest.rows[i]['class_name'])}</i>" if latest.rows[i].get("class_name") else "")
        + (" <span class='dead'>dead</span>" if latest.rows[i]["dead"] else "") + "</figure>"
        for i in range(len(latest.units)))
    grids = "".join(f"<h2>{what} {g.epoch}</h2><img src='epoch={g.epoch:04d}/grid.png'>" for g in reversed(gs))
    body = (f"<p><a href='../index.html'>all layers</a></p><h1>{html.escape(layer)}</h1>"
            f"<h2>units ({what} {latest.epoch})</h2>{units}{grids}")
    (d / "index.html").write_text(_page(layer, body))
    by_unit: dict = {}
    for g in gs:
        for i, u in enumerate(g.units):
            by_unit.setdefault(u, []).append((g, i))
    for u, seq in by_unit.items():
        g0, i0 = seq[-1]
        figs = "".join(f"<figure><img class='u' src='epoch={g.epoch:04d}/{g.file_name(i)}'><br>{what} {g.epoch}"
                       f"</figure>" for g, i in seq)
        cols = ["activation", "best_real", "activation_ratio", "judge_label", "judge_prob", "recognised", "dead"]
        cols += ["class_name"] if "class_name" in g0.rows[i0] else []
        trs = "".join("<tr><td>" + str(g.epoch) + "</td>" + "".join(
            f"<td class='{'dead' if c == 'dead' and g.rows[i]['dead'] else ''}'>"
            f"{html.escape(_cell(g.rows[i][c]))}</td>"
            for c in cols) + "</tr>" for g, i in seq)
        body = (f"<p><a href='index.html'>{html.escape(layer)}</a> · <a href='../index.html'>all layers</a></p>"
                f"<h1>{html.escape(g0.unit_name(i0))} {html.escape(g0.rows[i0].get('class_name', ''))}</h1>{figs}<table><tr><th>{what}</th>"
                + "".join(f"<th>{c}</th>" for c in cols) + f"</tr>{trs}</table>")
        (d / _unit_page_name(g0, i0)).write_text(_page(g0.unit_name(i0), body))
