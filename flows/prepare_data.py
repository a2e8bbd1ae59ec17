"""Write a dataset (Parquet train/ and val/) to a local directory or an s3:// prefix.

A synthetic dataset (10 classes told apart by shape alone, deterministic per seed; docs/datasets.md):
--synthetic shapes (the embedded default, the development set), glyphs or icons (held out: nothing is
tuned on them), or hues (the earlier default, a base hue per class: the colour-reading control).

    python flows/prepare_data.py --out data/shapes
    python flows/prepare_data.py --out data/glyphs --synthetic glyphs
    python flows/prepare_data.py --out s3://my-bucket/icons --synthetic icons --n-train 20000 --seed 1
    python flows/prepare_data.py --out data/shapes-96 --image-size 96

An ImageNet-style folder tree (root/train/<class>/*.JPEG and root/val/<class>/...,
or just root/<class>/..., split 90/10 by file-name hash):

    python flows/prepare_data.py --out s3://my-bucket/imagenet --source imagefolder:/data/imagenet

On a Ray cluster:

    ray job submit --working-dir . -- python flows/prepare_data.py --out s3://my-bucket/shapes

S3 settings come from the AWS environment variables (AWS_ENDPOINT_URL for MinIO
or moto, AWS_DEFAULT_REGION, credentials). Exits 2 with one line on stderr
for a bad argument or bad input data.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace

from dgn.cli import log, run_flow
from dgn.data import convert_imagefolder, write_synthetic
from dgn.data.synthetic import KINDS
from dgn.data.uri import absolute, check_writable
from dgn.errors import DGNError


@dataclass(frozen=True)
class PrepareConfig:
    out: str
    source: str = "synthetic"       # "synthetic" or "imagefolder:DIR"
    synthetic: str = "shapes"       # synthetic only: the kind (dgn.data.synthetic.KINDS)
    n_train: int = 8000             # synthetic only
    n_val: int = 1000               # synthetic only
    seed: int = 0                   # synthetic only
    image_size: int = 64            # synthetic only; image folders keep their files' sizes


COLOUR_ALIASES = {"class": "hues", "random": "shapes"}  # the earlier --colour flag


def parse_args(argv: list[str] | None = None) -> PrepareConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset location: a directory or s3://bucket/prefix")
    p.add_argument("--source", default="synthetic", help="'synthetic' (default) or 'imagefolder:DIR'")
    p.add_argument("--synthetic", choices=KINDS, default=None, metavar="KIND",
                   help=f"synthetic kind: {', '.join(KINDS)} (default shapes)")
    p.add_argument("--n-train", type=int, default=PrepareConfig.n_train, help="synthetic train rows (default 8000)")
    p.add_argument("--n-val", type=int, default=PrepareConfig.n_val, help="synthetic val rows (default 1000)")
    p.add_argument("--seed", type=int, default=PrepareConfig.seed, help="synthetic seed (default 0)")
    p.add_argument("--image-size", type=int, default=PrepareConfig.image_size, help="synthetic image side in pixels")
    p.add_argument("--colour", choices=tuple(COLOUR_ALIASES), default=None,
                   help="the earlier spelling of --synthetic: class = hues, random = shapes")
    a = p.parse_args(argv)
    if a.colour and a.synthetic and COLOUR_ALIASES[a.colour] != a.synthetic:
        p.error(f"--colour {a.colour} means --synthetic {COLOUR_ALIASES[a.colour]}, not {a.synthetic}; give one of them")
    if a.source != "synthetic" and (a.synthetic or a.colour):
        p.error(f"--synthetic / --colour apply to --source synthetic only, not {a.source!r}")
    kind = a.synthetic or COLOUR_ALIASES.get(a.colour or "", PrepareConfig.synthetic)
    return PrepareConfig(out=a.out, source=a.source, synthetic=kind, n_train=a.n_train, n_val=a.n_val, seed=a.seed,
                         image_size=a.image_size)


def run(cfg: PrepareConfig):
    """Write the dataset described by ``cfg``; returns its DatasetMeta."""
    if cfg.source == "synthetic":
        return write_synthetic(cfg.out, kind=cfg.synthetic, n_train=cfg.n_train, n_val=cfg.n_val, seed=cfg.seed,
                               image_size=cfg.image_size)
    kind, _, arg = cfg.source.partition(":")
    if kind == "imagefolder" and arg:
        return convert_imagefolder(arg, cfg.out)
    raise DGNError(f"--source {cfg.source!r} is not valid; use 'synthetic' or 'imagefolder:DIR'.")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)

    def work() -> int:
        check_writable(cfg.out, "dataset location")
        meta = run(replace(cfg, out=absolute(cfg.out)))
        log(f"wrote {meta.counts['train']} train + {meta.counts['val']} val rows, "
            f"{meta.num_classes} classes, to {cfg.out}")
        return 0

    return run_flow(work)


if __name__ == "__main__":
    sys.exit(main())
