"""The published DeePSiM generators (Dosovitskiy & Brox 2016) from a local file, and their code bounds.

    G = load_deepsim("upconvGAN_fc6.pt", "fc6")            # a dgn Generator (preset "deepsim"), RGB [0, 1] out
    G, stats = deepsim_prior("deepsim:fc6=upconvGAN_fc6.pt", bounds="fc6.txt", image_size=227)

The file is a PyTorch state dict in the community ``upconvGAN`` layout
(greentfrapp/lucent ``lucent/optvis/param/gan.py``, also
Animadversio/ActMax-Optimizer-Dev): ``defc7, defc6, defc5`` (Linear; fc8's
``defc7`` takes 1000 inputs) or ``Rconv6, Rconv7, Rconv8`` (pool5: Conv2d
256 → 512 → 512 → 512, the last unpadded, 6×6 → 4×4), then ``deconv5,
conv5_1, deconv4, conv4_1, deconv3, conv3_1, deconv2, deconv1, deconv0`` —
all ConvTranspose2d (4×4 stride 2 pad 1; the ``conv*_1`` are 3×3 stride 1
pad 1), LeakyReLU 0.3 after every layer but ``deconv0``, a linear 256-px BGR
output on Caffe's 0–255 scale with the ImageNet mean subtracted. Keys may
carry a stray ``.1.`` (``defc7.1.weight``) or the module prefix ``G.``; both
are accepted. Each is a ``.weight`` and a ``.bias``.

The weights go into dgn's own :class:`~dgn.nets.generator.Generator`
(preset ``deepsim``: the paper layout with the 3×3 layers transposed, as in
the Caffe release), so DGN-AM, the atlas and its actors use it like a
trained G. Conventions (BGR → RGB, mean, crop): :mod:`dgn.nets.conventions`.

Code bounds (DGN-AM clips each code unit to [0, upper]):

- the reference's ``act_range/3x/fc6.txt`` format: whitespace-separated numbers,
  one upper bound per code unit (pool5: one per unit of 256×6×6, or one per
  channel); the lower bound is 0;
- or computed from a local image folder through an encoder (mean + 3σ per unit),
  see :func:`bounds_from_images`.

The reference starts AM from N(0, 1) noise, so the returned stats are
mean 0, std 1 with the bounds as ``upper``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dgn.data.imagefolder import _images
from dgn.errors import DGNError
from dgn.nets.generator import Generator, generator_config
from dgn.nets.weights import _load_state

DEEPSIM_PREFIX = "deepsim:"
CODE_SHAPES = {"fc6": (4096,), "fc7": (4096,), "fc8": (1000,), "pool5": (256, 6, 6)}
FC_FRONT = ("defc7", "defc6", "defc5")
POOL5_FRONT = ("Rconv6", "Rconv7", "Rconv8")
STACK = ("deconv5", "conv5_1", "deconv4", "conv4_1", "deconv3", "conv3_1", "deconv2", "deconv1", "deconv0")


def layer_names(layer: str) -> tuple[str, ...]:
    """The published layer names of the ``layer`` generator, input to output."""
    return (POOL5_FRONT if layer == "pool5" else FC_FRONT) + STACK


def check_layer(layer: str) -> None:
    if layer not in CODE_SHAPES:
        raise DGNError(f"unknown DeePSiM generator {layer!r}; valid: {', '.join(CODE_SHAPES)}")


def build_deepsim(layer: str, image_size: int = 227, *, device=None) -> Generator:
    """An untrained DeePSiM-layout generator for the ``layer`` code, centre-cropping its 256 px to ``image_size``
    (``device="meta"``: shapes only, no memory, no init)."""
    check_layer(layer)
    if not 1 <= image_size <= 256:
        raise DGNError(f"a DeePSiM image is 256 px; it can be cropped to at most 256, not {image_size}")
    with torch.device(device or "cpu"):
        return Generator(generator_config("deepsim", CODE_SHAPES[layer], image_size=image_size))


def _param_modules(g: Generator) -> list:
    return [m for m in list(g.front) + list(g.stack) if getattr(m, "weight", None) is not None]


def published_shapes(layer: str) -> "OrderedDict[str, tuple]":
    """``{published key: shape}`` in file order: what a ``layer`` file must hold."""
    g = build_deepsim(layer, 256, device="meta")
    out = OrderedDict()
    for name, m in zip(layer_names(layer), _param_modules(g), strict=True):
        out[f"{name}.weight"] = tuple(m.weight.shape)
        out[f"{name}.bias"] = tuple(m.bias.shape)
    return out


def published_state(g: Generator, layer: str) -> "OrderedDict[str, torch.Tensor]":
    """``g``'s weights under the published keys (what :func:`load_deepsim` reads)."""
    out = OrderedDict()
    for name, m in zip(layer_names(layer), _param_modules(g), strict=True):
        out[f"{name}.weight"] = m.weight.detach().clone()
        out[f"{name}.bias"] = m.bias.detach().clone()
    return out


def _normalise_keys(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        k = k.removeprefix("G.").replace(".1.", ".")  # upconvGAN's module prefix; the stray ".1." of some files
        out[k] = v
    return out


def fill_deepsim(g: Generator, state: dict, layer: str, *, where: str = "state dict") -> Generator:
    """Copy a published-layout ``state`` into ``g``; a one-line DGNError names the first missing or mis-shaped key."""
    state = _normalise_keys(state)
    expected = published_shapes(layer)
    for key, shape in expected.items():
        if key not in state:
            raise DGNError(f"{where} is not a DeePSiM {layer} generator: key {key!r} is missing (expected "
                           f"{len(expected)} keys {next(iter(expected))!r} … {list(expected)[-1]!r})")
        got = state[key]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
            what = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise DGNError(f"{where} does not fit the DeePSiM {layer} generator: key {key!r} has shape {what}, "
                           f"expected {shape}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise DGNError(f"{where} is not a DeePSiM {layer} generator: unexpected key {extra[0]!r}"
                       + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    with torch.no_grad():
        for name, m in zip(layer_names(layer), _param_modules(g), strict=True):
            m.weight.copy_(state[f"{name}.weight"])
            m.bias.copy_(state[f"{name}.bias"])
    return g.eval()


def load_deepsim(path: str | Path, layer: str, *, image_size: int = 227) -> Generator:
    """The DeePSiM ``layer`` generator (fc6, fc7, fc8, pool5) from a local ``upconvGAN`` state-dict file."""
    check_layer(layer)
    state = _load_state(path)
    g = build_deepsim(layer, image_size, device="meta").to_empty(device="cpu")  # no random init: all is overwritten
    return fill_deepsim(g, state, layer, where=f"weights file {str(path)!r}")


def check_deepsim_file(path: str | Path, layer: str) -> None:
    """Keys and shapes of a weights file, checked without building the network (the driver, before any work)."""
    check_layer(layer)
    fill_deepsim(build_deepsim(layer, 256, device="meta"), _load_state(path), layer, where=f"weights file {str(path)!r}")


def parse_spec(spec: str) -> tuple[str, str]:
    """``deepsim:fc6=FILE`` → ("fc6", FILE)."""
    body = spec.removeprefix(DEEPSIM_PREFIX)
    if not spec.startswith(DEEPSIM_PREFIX) or "=" not in body:
        raise DGNError(f"bad generator {spec!r}; write deepsim:LAYER=FILE, e.g. deepsim:fc6=upconvGAN_fc6.pt "
                       f"(LAYER one of {', '.join(CODE_SHAPES)})")
    layer, path = body.split("=", 1)
    check_layer(layer.strip())
    return layer.strip(), path.strip()


def is_deepsim(spec: str) -> bool:
    return str(spec).startswith(DEEPSIM_PREFIX)


# code bounds

def load_bounds(path: str | Path, code_shape) -> torch.Tensor:
    """Upper bounds from the reference's ``act_range`` format (whitespace-separated numbers) → a code-shaped tensor."""
    code_shape = tuple(code_shape)
    path = Path(path)
    if not path.is_file():
        raise DGNError(f"bounds file {str(path)!r} does not exist")
    try:
        values = [float(v) for v in path.read_text().split()]
    except (ValueError, UnicodeDecodeError) as e:
        raise DGNError(f"bounds file {str(path)!r} is not whitespace-separated numbers ({type(e).__name__})") from None
    n = math.prod(code_shape)
    t = torch.tensor(values, dtype=torch.float32)
    if len(values) == n:
        t = t.view(code_shape)
    elif len(code_shape) == 3 and len(values) == code_shape[0]:
        t = t.view(-1, 1, 1).expand(code_shape).clone()  # one bound per channel
    else:
        per = f" or {code_shape[0]} (one per channel)" if len(code_shape) == 3 else ""
        raise DGNError(f"bounds file {str(path)!r} holds {len(values)} numbers; the {code_shape} code needs {n}{per}")
    if not torch.isfinite(t).all() or (t < 0).any():
        raise DGNError(f"bounds file {str(path)!r} holds a negative or non-finite bound; upper bounds are ≥ 0")
    return t


def save_bounds(upper: torch.Tensor, path: str | Path) -> Path:
    """Write ``upper`` in the reference's format (one line, space-separated)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(" ".join(f"{v:.6g}" for v in upper.flatten().tolist()) + "\n")
    return path


def bounds_from_images(folder: str | Path, encoder, layer: str, *, image_size: int = 227, limit: int = 0,
                       sigmas: float = 3.0, batch_size: int = 32) -> torch.Tensor:
    """mean + ``sigmas``·σ per code unit of ``encoder`` (a TargetNet: reported, i.e. post-ReLU, values of ``layer``)
    over the images under ``folder`` (any ImageFolder tree; each resized to ``image_size``, as the reference's
    get_code does)."""
    folder = str(folder)
    if not Path(folder).is_dir():
        raise DGNError(f"image folder {folder!r} does not exist")
    files = _images(folder)[:limit or None]
    if len(files) < 2:
        raise DGNError(f"image folder {folder!r} holds {len(files)} image(s); code bounds need at least 2")
    s1 = s2 = None
    n = 0
    with torch.no_grad():
        for i in range(0, len(files), batch_size):
            batch = []
            for rel in files[i:i + batch_size]:
                try:
                    with Image.open(Path(folder, rel)) as im:
                        im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                        batch.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
                except Exception as e:  # noqa: BLE001 — PIL raises many types
                    raise DGNError(f"image {str(Path(folder, rel))!r} cannot be read ({type(e).__name__})") from None
            x = torch.stack(batch).float() / 255
            y = encoder.report(layer, encoder.activations(x, [layer])[layer]).double()
            s1 = y.sum(0) if s1 is None else s1 + y.sum(0)
            s2 = (y * y).sum(0) if s2 is None else s2 + (y * y).sum(0)
            n += len(batch)
    mean = s1 / n
    std = (s2 / n - mean * mean).clamp_min(0).sqrt()
    return (mean + sigmas * std).float()


def reference_stats(upper: torch.Tensor) -> dict[str, torch.Tensor]:
    """AM's code stats for a published prior: start from N(0, 1) (the reference), clip to [0, upper]."""
    return {"mean": torch.zeros_like(upper), "std": torch.ones_like(upper), "upper": upper.float()}


def deepsim_prior(spec: str, *, bounds: str | Path, image_size: int = 227) -> tuple[Generator, dict]:
    """``deepsim:LAYER=FILE`` + a bounds file → (G, code stats) for :func:`dgn.am.dgn_am.dgn_am`."""
    layer, path = parse_spec(spec)
    if not bounds:
        raise DGNError(f"generator {spec!r} needs code bounds: --bounds FILE (the reference's act_range/3x/"
                       f"{layer}.txt) or --bounds imagefolder:DIR")
    upper = load_bounds(bounds, CODE_SHAPES[layer])
    return load_deepsim(path, layer, image_size=image_size), reference_stats(upper)
