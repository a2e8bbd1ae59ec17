"""What every trial shares: the dataset, E and the judge — trained once, before the sweep.

Either taken from a finished ``flows/train.py`` storage (``run``: the last
``classifier/epoch=*.pt`` and ``judge/judge.pt``), or trained here with the
pipeline's stages and saved in the same layout under the sweep's storage, so
that a resumed sweep reuses them instead of training them again. Trials load
E and the judge from these checkpoints and get the images through Ray's object
store (``tune.with_parameters``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dgn.data import load_split, read_meta
from dgn.errors import DGNError
from dgn.nets import Judge, build_caffenet
from dgn.storage import RunLayout, exists
from dgn.sweep.config import SweepConfig
from dgn.train.checkpoint import save_checkpoint
from dgn.train.classifier import classifier_checkpoint, judge_checkpoint, load_classifier, load_judge

Log = Callable[[str], None]


@dataclass
class Base:
    data: str  # dataset URI
    classifier: str  # E's checkpoint URI
    judge: str  # the judge's checkpoint URI
    image_size: int
    num_classes: int
    class_names: list[str]
    trained_here: bool


def last_classifier(storage: str) -> str | None:
    """URI of the highest ``classifier/epoch=NNNN.pt`` under ``storage``, or None."""
    found = RunLayout(storage).checkpoints("classifier")
    return found[-1] if found else None


def from_run(run: str, data: str = "") -> Base:
    e_uri = last_classifier(run)
    if e_uri is None:
        raise DGNError(f"run {run!r} holds no classifier/epoch=*.pt; give the storage of a finished flows/train.py run")
    j_uri = RunLayout(run).judge
    if not exists(j_uri):
        raise DGNError(f"run {run!r} holds no judge/judge.pt; give the storage of a finished flows/train.py run")
    net, ck = load_classifier(e_uri)
    data = data or ck.get("data", "")
    if not data:
        raise DGNError(f"classifier {e_uri!r} does not name its dataset; pass --data")
    meta = read_meta(data)
    return Base(data=data, classifier=e_uri, judge=j_uri, image_size=net.config.image_size,
                num_classes=meta.num_classes, class_names=list(meta.class_names), trained_here=False)


def prepare_base(cfg: SweepConfig, log: Log = print) -> Base:
    """The shared E and judge: from ``cfg.run``, or reused from / trained into ``cfg.storage``."""
    if cfg.run:
        base = from_run(cfg.run, cfg.data)
        log(f"base: E {base.classifier}, judge {base.judge} (from --run), data {base.data}")
        return base
    from dgn.pipeline import preset_config, prepare_data, train_classifier

    pcfg = preset_config("default", data=cfg.data, storage=cfg.storage, image_size=cfg.image_size,
                         n_train=cfg.n_train, n_val=cfg.n_val, seed=cfg.seed)
    data = prepare_data(pcfg, log)
    meta = read_meta(data)
    layout = RunLayout(cfg.storage)
    e_uri, j_uri = layout.checkpoint("classifier", cfg.classifier_epochs), layout.judge
    if exists(e_uri) and exists(j_uri):
        log(f"base: reusing E {e_uri} and judge {j_uri}")
        return Base(data=data, classifier=e_uri, judge=j_uri, image_size=cfg.image_size,
                    num_classes=meta.num_classes, class_names=list(meta.class_names), trained_here=True)
    train = load_split(data, "train", image_size=cfg.image_size)
    val = load_split(data, "val", image_size=cfg.image_size)
    t = time.time()
    torch.manual_seed(cfg.seed)
    encoder = build_caffenet("small", num_classes=meta.num_classes, image_size=cfg.image_size)

    def save_e(epoch, m, model, opt):
        save_checkpoint(classifier_checkpoint(model, opt, epoch=epoch, metrics=m, class_names=meta.class_names,
                                              data=data), layout.checkpoint("classifier", epoch))
        log(f"base: classifier epoch {epoch}/{cfg.classifier_epochs}: val acc {m['val_acc']:.3f}")

    train_classifier(encoder, train, val, epochs=cfg.classifier_epochs, lr=cfg.classifier_lr,
                     batch_size=cfg.batch_size, seed=cfg.seed, on_epoch=save_e)
    judge_seed = cfg.seed + 1234  # its own seed and architecture: never E
    torch.manual_seed(judge_seed)
    judge = Judge(num_classes=meta.num_classes, image_size=cfg.image_size)
    jm = train_classifier(judge, train, val, epochs=cfg.judge_epochs, lr=cfg.classifier_lr,
                          batch_size=cfg.batch_size, seed=judge_seed)
    save_checkpoint(judge_checkpoint(judge, epoch=cfg.judge_epochs, metrics=jm, seed=judge_seed), j_uri)
    log(f"base: judge val acc {jm['val_acc']:.3f}; E and judge trained in {time.time() - t:.0f}s")
    return Base(data=data, classifier=e_uri, judge=j_uri, image_size=cfg.image_size, num_classes=meta.num_classes,
                class_names=list(meta.class_names), trained_here=True)


def load_images(base: Base, cfg: SweepConfig) -> dict[str, torch.Tensor]:
    """{"train": uint8 (N, 3, S, S), "val": uint8 (M, 3, S, S), "val_labels": int64 (M,)} for the object store."""
    train, _ = load_split(base.data, "train", image_size=base.image_size, limit=None if cfg.run else cfg.n_train)
    xv, yv = load_split(base.data, "val", image_size=base.image_size, limit=cfg.n_val)
    return {"train": train, "val": xv, "val_labels": yv}


def load_nets(base: Base):
    """(E, judge) in eval mode."""
    encoder, _ = load_classifier(base.classifier)
    return encoder, load_judge(base.judge)
