"""What an atlas puts in a real `mlflow server` on 127.0.0.1, and what the MLflow UI shows in headless Chromium.

The UI checks drive Debian's chromium over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: NUL-terminated JSON on fds 3 and 4), so they
need nothing beyond the standard library.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgn.atlas import AtlasConfig, run_atlas
from dgn.atlas.grid import FRAME


@pytest.fixture(scope="module")
def logged(tiny_run, ray_cluster, mlflow_url, tmp_path_factory):
    """An atlas of fc8 units 0-3 at both epochs, logged into its own run on the server."""
    from dgn.tracking.atlas import open_atlas_run

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_url)
        mp.setenv("DGN_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = AtlasConfig(storage=tiny_run, out=str(tmp_path_factory.mktemp("atlas")), layers=("fc8",), units="0-3",
                          actors=1, am={"steps": 3})
        with open_atlas_run(storage=tiny_run, params={"atlas": cfg.to_dict()}) as run:  # as flows/atlas.py does
            summary = run_atlas(cfg, run=run, log=lambda m: None)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(mlflow_url)
        yield {"cfg": cfg, "summary": summary, "run": run, "client": client, "url": mlflow_url, "mp": mp}


def _paths(client, run_id, path=None):
    out = []
    for a in client.list_artifacts(run_id, path):
        out += _paths(client, run_id, a.path) if a.is_dir else [a.path]
    return out


def test_server_holds_grids_pngs_tables_plots_and_html(logged):
    client, run_id = logged["client"], logged["run"].run_id
    paths = set(_paths(client, run_id))
    # one stepped grid per epoch under the key atlas-fc8
    pngs = sorted(p for p in paths if p.startswith("images/atlas-fc8+step+") and p.endswith(".png")
                  and "compressed" not in p)  # sorted: a step's images in the order logged (by timestamp)
    step_png = {int(p.split("+step+")[1].split("+")[0]): p for p in pngs}  # a step's last image: the one the UI shows
    assert sorted(step_png) == [0, 1, 2]  # step 0: the newest epoch again, where MLflow's image card opens
    for step, epoch in ((0, 2), (1, 1), (2, 2)):
        local = client.download_artifacts(run_id, step_png[step], str(Path(logged["cfg"].out, "dl", str(step))))
        assert np.array_equal(_rgb(local), _rgb(_grid_png(logged, epoch))), (step, epoch)
    # the config is an artifact, not params (an image card prints every param above its image)
    assert client.get_run(run_id).data.params == {}
    local = client.download_artifacts(run_id, "atlas/config.json", str(Path(logged["cfg"].out, "dl")))
    assert json.loads(Path(local).read_text())["atlas"]["units"] == "0-3"
    for e in (1, 2):
        d = f"atlas/fc8/epoch={e:04d}"
        assert {f"{d}/unit-{k:04d}.png" for k in range(4)} | {f"{d}/grid.png", f"{d}/table.json"} <= paths
    assert {"atlas/plots/activation_ratio.png", "atlas/plots/recognisability.png", "atlas/index.html",
            "atlas/fc8/index.html", "atlas/fc8/unit-0002.html", "atlas/summary.json"} <= paths
    local = client.download_artifacts(run_id, "atlas/fc8/epoch=0002/table.json", str(Path(logged["cfg"].out, "dl")))
    table = json.loads(Path(local).read_text())
    assert table["columns"][:6] == ["unit", "activation", "best_real", "activation_ratio", "judge_label", "judge_prob"]
    assert [r[0] for r in table["data"]] == ["fc8:0", "fc8:1", "fc8:2", "fc8:3"]
    hist = client.get_metric_history(run_id, "atlas_fc8_median_ratio")
    assert sorted(m.step for m in hist) == [1, 2]


def test_rerun_into_the_same_run_logs_nothing_twice(logged, monkeypatch):
    from dgn.tracking.atlas import open_atlas_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["url"])

    client, run_id = logged["client"], logged["run"].run_id
    before = [p for p in _paths(client, run_id) if p.startswith("images/")]
    with open_atlas_run(storage=logged["cfg"].storage, run_id=run_id) as run:
        again = run_atlas(logged["cfg"], run=run, log=lambda m: None)
    assert again["items_done"] == 0
    assert [p for p in _paths(client, run_id) if p.startswith("images/")] == before
    assert len(client.get_metric_history(run_id, "atlas_fc8_median_ratio")) == 2


def test_mlflow_ui_shows_the_atlas_grid_in_headless_chromium(logged, tmp_path):
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed (apt-get install chromium; see .ci/run)"
    run = logged["client"].get_run(logged["run"].run_id)
    url = (f"{logged['url']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
           "/artifacts/atlas/fc8/epoch=0002/grid.png")
    shot = tmp_path / "ui.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,1100",
           "--virtual-time-budget=30000", "--hide-scrollbars", url]
    subprocess.run(cmd, capture_output=True, timeout=150)
    assert shot.is_file(), "chromium wrote no screenshot"
    page = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    grid = np.asarray(Image.open(Path(logged["summary"]["html"]).parent / "fc8" / "epoch=0002" / "grid.png")
                      .convert("RGB")).astype(int)
    # the grid's frame colour, which nothing else in MLflow's UI uses, fills a box of the grid's size
    ys, xs = np.nonzero((np.abs(page - FRAME).sum(-1) <= 6))
    assert len(ys) > 0.3 * (np.abs(grid - FRAME).sum(-1) <= 6).sum(), "the atlas grid is not on the page"
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert abs(h - grid.shape[0]) <= 4 and abs(w - grid.shape[1]) <= 4, (h, w, grid.shape)
    # and the page shows the grid's pixels there: the rendered tiles match the file
    y0, x0 = ys.min(), xs.min()
    shown = page[y0:y0 + grid.shape[0], x0:x0 + grid.shape[1]]
    assert shown.shape == grid.shape and np.abs(shown - grid).mean() < 12


def test_step_zero_holds_the_newest_image_also_when_a_run_is_continued(logged, monkeypatch):
    from dgn.tracking import open_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["url"])
    client = logged["client"]

    def shown_at_zero(run_id):  # what the UI shows at a step: the last image logged there
        last = sorted(p for p in _paths(client, run_id) if p.startswith("images/k+step+0+") and p.endswith(".png"))[-1]
        return int(_rgb(client.download_artifacts(run_id, last))[0, 0, 0])

    def img(v):
        return np.full((8, 8, 3), v, np.uint8)

    with open_run(experiment="steps", run_name="s") as run:
        run.log_image(img(20), key="k", step=2)
        run.log_image(img(10), key="k", step=1)  # older than what step 0 holds: step 0 keeps epoch 2
    assert shown_at_zero(run.run_id) == 20
    with open_run(experiment="steps", run_name="s") as again:  # a new process would see only the server
        again.log_image(img(11), key="k", step=1)
        assert shown_at_zero(run.run_id) == 20
        again.log_image(img(30), key="k", step=3)
    assert shown_at_zero(run.run_id) == 30


# MLflow's run page, Model metrics tab: the stepped image cards


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _grid_png(logged, epoch: int) -> Path:
    return Path(logged["summary"]["html"]).parent / "fc8" / f"epoch={epoch:04d}" / "grid.png"


class _Chromium:
    """Headless chromium driven over the DevTools protocol on a pipe (one page)."""

    def __init__(self, profile: Path, size=(1400, 1100)):
        browser = shutil.which("chromium")
        assert browser, "Debian's chromium is needed (apt-get install chromium; see .ci/run)"
        to_chrome, from_chrome = os.pipe(), os.pipe()
        # chromium reads fd 3 and writes fd 4: dup the ends above 10 first, so no dup2 below clobbers another
        rd, wr = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome[0], from_chrome[1]))
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={size[0]},{size[1]}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(cmd, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=lambda: (os.dup2(rd, 3), os.dup2(wr, 4)))  # noqa: PLW1509 (2 dup2s)
        for fd in (*to_chrome[:1], from_chrome[1], rd, wr):
            os.close(fd)
        self.w, self.r = os.fdopen(to_chrome[1], "wb", buffering=0), os.fdopen(from_chrome[0], "rb", buffering=0)
        self.buf, self.n, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")

    def call(self, method: str, **params) -> dict:
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params} | ({"sessionId": self.session} if self.session else {})
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = self.r.read(1 << 16)
                assert chunk, f"chromium closed its pipe during {method}"
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.n:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})

    def js(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def wait(self, expr: str, timeout: float = 45.0):
        t = time.time()
        while not (value := self.js(expr)):
            assert time.time() - t < timeout, f"the page never got to: {expr[:200]}"
            time.sleep(0.25)
        return value

    def key(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code)

    def shot(self, box: dict) -> np.ndarray:
        """The pixels of a CSS-pixel box of the page as shown (device scale 1)."""
        clip = {"x": box["left"], "y": box["top"], "width": box["width"], "height": box["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip)["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")).astype(int)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# The image card whose title is KEY, once its image has loaded: its text, its slider, the image's
# box and the box of the card's own scroll area (what shows without scrolling), in CSS pixels.
_CARD = """(() => {
  const title = [...document.querySelectorAll('*')].find(e => e.children.length === 0 && e.textContent === KEY);
  if (!title) return null;
  title.scrollIntoView({block: 'center'});  // cards out of the window are not drawn
  let card = title;
  while (card && !(card.querySelector('[role=slider]') && card.querySelector('img[src*=compressed]')))
    card = card.parentElement;
  if (!card) return null;
  const img = card.querySelector('img[src*=compressed]');
  if (!img.complete || !img.naturalWidth) return null;
  let area = img.parentElement;
  while (area !== card && !['auto', 'scroll'].includes(getComputedStyle(area).overflowY)) area = area.parentElement;
  const r = e => { const b = e.getBoundingClientRect();
                   return {left: b.left, top: b.top, right: b.right, bottom: b.bottom,
                           width: b.width, height: b.height}; };
  const slider = card.querySelector('[role=slider]');
  return {text: card.innerText, src: decodeURIComponent(img.src), img: r(img), area: r(area),
          view: {width: innerWidth, height: innerHeight}, scroll: area.scrollTop,
          step: slider.getAttribute('aria-valuenow'), min: slider.getAttribute('aria-valuemin'),
          max: slider.getAttribute('aria-valuemax')};
})()"""


def _card(page: _Chromium, key: str, *, src_has: str = "") -> dict:
    try:
        return page.wait(f"(c => c && c.src.includes({json.dumps(src_has)}) ? c : null)"
                         f"({_CARD.replace('KEY', json.dumps(key))})")
    except AssertionError:
        shown = page.js(f"""(() => {{ let e = [...document.querySelectorAll('*')].find(
            e => e.children.length === 0 && e.textContent === {json.dumps(key)});
            for (let i = 0; e && i < 8 && !e.querySelector('[role=slider]'); i++) e = e.parentElement;
            return e ? e.innerText : 'no card titled ' + {json.dumps(key)}; }})()""")
        raise AssertionError(f"the {key} card never showed an image{' of ' + src_has if src_has else ''}; "
                             f"it shows: {shown!r}") from None


def _shown_whole(card: dict) -> None:
    """The image lies inside the card's scroll area, unscrolled, and inside the window."""
    img, area = card["img"], card["area"]
    assert card["scroll"] == 0
    assert img["top"] >= area["top"] - 1 and img["bottom"] <= area["bottom"] + 1, (img, area)
    assert img["left"] >= area["left"] - 1 and img["right"] <= area["right"] + 1, (img, area)
    assert img["bottom"] <= card["view"]["height"] and img["right"] <= card["view"]["width"], (img, card["view"])


def _scaled(path, shown: np.ndarray) -> np.ndarray:
    img = Image.open(path).convert("RGB").resize((shown.shape[1], shown.shape[0]), Image.BILINEAR)
    return np.asarray(img).astype(int)


def _like(shown: np.ndarray, path) -> float:
    """Mean absolute difference between what the page shows and an image file scaled to its size."""
    return float(np.abs(shown - _scaled(path, shown)).mean())


def _which(shown: np.ndarray, right, wrong) -> tuple[float, float]:
    """Where two grids differ (their titles' epoch, their numbers): how far the page is from each, there."""
    a, b = _scaled(right, shown), _scaled(wrong, shown)
    where = np.abs(a - b).sum(-1) > 90
    assert where.sum() >= 10, "the two epochs' grids look alike at this size"
    return float(np.abs(shown - a)[where].mean()), float(np.abs(shown - b)[where].mean())


def _open_card(server: str, run, key: str, profile: Path):
    """(the browser, the image card ``key``) on the run's Model metrics page."""
    page = _Chromium(profile)
    try:
        page.call("Page.navigate", url=f"{server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
                  "/model-metrics")
        return page, _card(page, key)
    except BaseException:
        page.close()
        raise


def test_model_metrics_card_opens_on_the_grid_and_its_slider_steps_through_epochs(logged, tmp_path):
    run = logged["client"].get_run(logged["run"].run_id)
    page, card = _open_card(logged["url"], run, "atlas-fc8", tmp_path / "profile")
    try:
        # above the grid only the run's name (a run's params are printed there, all of them)
        assert "=" not in card["text"] and "atlas.storage" not in card["text"], card["text"]
        # the card opens at step 0, the newest epoch's grid, and shows it whole at its default size
        assert (card["step"], card["min"], card["max"]) == ("0", "0", "2"), card
        assert "atlas-fc8+step+0+" in card["src"], card["src"]
        _shown_whole(card)
        shown = page.shot(card["img"])
        assert shown.shape[0] > 100 and shown.shape[1] > 100, shown.shape  # not a thumbnail
        frame = (np.abs(shown - FRAME).sum(-1) <= 12).mean()
        grid = _rgb(_grid_png(logged, 2))
        assert abs(frame - (np.abs(grid - FRAME).sum(-1) <= 12).mean()) < 0.15, frame
        assert _like(shown, _grid_png(logged, 2)) < 12
        near, far = _which(shown, _grid_png(logged, 2), _grid_png(logged, 1))
        assert near < 0.7 * far, (near, far)

        # one step right on the slider: epoch 1's grid, in the same place
        page.js(_CARD.replace("KEY", '"atlas-fc8"').replace("return {text", "slider.focus(); return {text"))
        page.key("ArrowRight", 39)
        moved = _card(page, "atlas-fc8", src_has="atlas-fc8+step+1+")
        assert moved["step"] == "1", moved
        _shown_whole(moved)
        after = page.shot(moved["img"])
        assert after.shape == shown.shape
        assert (np.abs(after - shown).sum(-1) > 60).sum() > 20, "the image area did not change"
        assert _like(after, _grid_png(logged, 1)) < 12
        near, far = _which(after, _grid_png(logged, 1), _grid_png(logged, 2))
        assert near < 0.7 * far, (near, far)
    finally:
        page.close()


def test_training_run_cards_show_their_images_not_the_config(logged, monkeypatch, tmp_path):
    """The training run (reconstructions, and the atlas stage's grids): only a few headline params above the image."""
    from dgn.job import PipelineConfig
    from dgn.tracking import flatten
    from dgn.tracking.atlas import image_key
    from dgn.tracking.training import HEADLINE_PARAMS, TrainingTracker

    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["url"])
    storage = "s3://dgn-runs/runs/cards"  # nothing is written there; a path of the usual length
    cfg = PipelineConfig(storage=storage)
    tracker = TrainingTracker(experiment="dgn-train", run_name="cards", params=cfg.to_dict(), storage=storage,
                              log=lambda m: None)
    palette = {1: [(200, 40, 40), (240, 200, 40)], 2: [(40, 160, 60), (40, 90, 220)]}
    recon = {}  # a real row over a reconstructed row of 8 64-px tiles, other colours per epoch
    for e, (top, bottom) in palette.items():
        img = np.full((2 * 66 + 2, 8 * 66 + 2, 3), 255, np.uint8)
        for c in range(8):
            img[2:66, 2 + 66 * c:66 + 66 * c] = top if c % 2 else bottom
            img[68:132, 2 + 66 * c:66 + 66 * c] = bottom if c % 2 else top
        recon[e] = tmp_path / f"recon-{e}.png"
        Image.fromarray(img).save(recon[e])
    with tracker.open() as run:
        for e in (1, 2):
            m = {"g_loss": 1.0 / e, "image": 0.5, "feature": 0.2, "adversarial": 0.7, "d_acc": 0.5}
            tracker.on_event({"stage": "generator", "epoch": e, "epochs": 2, "seconds": 1.0, "metrics": m,
                              "checkpoint": f"{storage}/generator/fc6/epoch={e:04d}.pt",
                              "image": _rgb(recon[e]).astype(np.uint8)})
        for e in (1, 2):  # what the atlas stage logs into the training run
            run.log_image(Image.open(_grid_png(logged, e)), key=image_key("fc8"), step=e)
    client = logged["client"]
    got = client.get_run(run.run_id)
    assert got.data.params == {k: flatten(cfg.to_dict())[k] for k in HEADLINE_PARAMS}
    local = client.download_artifacts(run.run_id, "config.json", str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text()) == json.loads(json.dumps(cfg.to_dict(), default=str))

    page, card = _open_card(logged["url"], got, "reconstructions", tmp_path / "profile")
    try:
        assert "image_size=" not in card["text"] and "am.steps" not in card["text"], card["text"]
        assert (card["step"], card["max"]) == ("0", "2") and "reconstructions+step+0+" in card["src"], card
        _shown_whole(card)
        shown = page.shot(card["img"])
        assert _like(shown, recon[2]) < 12
        near, far = _which(shown, recon[2], recon[1])
        assert near < 0.5 * far, (near, far)

        # the atlas stage's grid, below the headline params: its top, whole width and most of its height
        card = _card(page, "atlas-fc8")
        printed = card["text"].splitlines()[-1].split(", ")
        assert sorted(p.split("=", 1)[0] for p in printed) == sorted(HEADLINE_PARAMS), card["text"]
        assert "atlas-fc8+step+0+" in card["src"], card["src"]
        img, area = card["img"], card["area"]
        assert card["scroll"] == 0 and area["top"] <= img["top"] < area["top"] + 80, (img, area)
        assert img["left"] >= area["left"] - 1 and img["right"] <= area["right"] + 1, (img, area)
        seen = min(img["bottom"], area["bottom"]) - img["top"]
        assert seen >= 0.8 * img["height"], (img, area)
        shown = page.shot({**img, "height": seen})
        full = _scaled(_grid_png(logged, 2), np.zeros((round(img["height"]), round(img["width"]), 3)))
        assert float(np.abs(shown - full[:shown.shape[0], :shown.shape[1]]).mean()) < 12
    finally:
        page.close()
