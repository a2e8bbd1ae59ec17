"""A tiny training run's storage, made in seconds: for ``flows/atlas.py --dry-run``, tests and benches.

Same layout as the main job writes (dgn.storage: data/, classifier/epoch=NNNN.pt,
judge/judge.pt, generator/fc6/epoch=NNNN.pt), from a few training steps per
checkpoint with the job's own step functions: the networks are barely trained,
which is all the atlas machinery needs.
``dead`` names units (``"fc7:5"``) made dead in every classifier checkpoint:
zero weights and a negative bias, so they never fire and have no gradient.
"""

from __future__ import annotations

import torch

from dgn.data import join, load_split, read_meta, write_synthetic
from dgn.nets import Judge, build_caffenet, parse_unit
from dgn.train import GANConfig, GANTrainer, code_stats, save_checkpoint, tensor_batches, train_epoch
from dgn.train.classifier import classifier_checkpoint, judge_checkpoint, make_optimizer
from dgn.train.loops import generator_round
from dgn.train.worker import Worker


def _kill(net, unit: str) -> None:
    u = parse_unit(unit)
    layer = getattr(net, u.layer)
    with torch.no_grad():
        layer.weight[u.channel] = 0
        layer.bias[u.channel] = -1.0


def write_tiny_run(storage: str, *, classifier_epochs: int = 2, gan_epochs: int = 1, n_train: int = 96,
                   n_val: int = 48, steps: int = 2, dead: tuple[str, ...] = (), seed: int = 0,
                   g_widths: tuple[int, ...] = (32, 16, 8, 8)) -> str:
    """Write a tiny run under ``storage``; returns ``storage``. ``g_widths`` (128, 64, 32, 16): the embedded G's size."""
    data = join(storage, "data")
    write_synthetic(data, n_train=n_train, n_val=n_val, seed=seed, image_size=64)
    meta = read_meta(data)
    xt, yt = load_split(data, "train", image_size=64)
    xt = xt.float() / 255
    torch.manual_seed(seed)
    net = build_caffenet("small", num_classes=meta.num_classes, image_size=64)
    opt = make_optimizer(net, 3e-3)
    for epoch in range(1, classifier_epochs + 1):
        train_epoch(net, opt, list(tensor_batches(xt, yt, batch_size=32, shuffle=True, seed=epoch))[:steps])
        for u in dead:
            _kill(net, u)
        save_checkpoint(classifier_checkpoint(net, None, epoch=epoch, class_names=meta.class_names, data=data),
                        join(storage, "classifier", f"epoch={epoch:04d}.pt"))
    net.eval()
    judge = Judge(num_classes=meta.num_classes, image_size=64)
    train_epoch(judge, make_optimizer(judge, 3e-3), list(tensor_batches(xt, yt, batch_size=32))[:steps])
    save_checkpoint(judge_checkpoint(judge.eval(), epoch=1), join(storage, "judge", "judge.pt"))
    stats = code_stats(net, "fc6", tensor_batches(xt, batch_size=64))
    gan = GANTrainer(net, GANConfig(w_adv=0.0, feature_layer="conv3", generator_overrides={"widths": tuple(g_widths)}),
                     code_stats=stats, seed=seed)
    for epoch in range(1, gan_epochs + 1):
        generator_round(gan, list(tensor_batches(xt, batch_size=32, shuffle=True, seed=epoch))[:steps],
                        Worker({"context": "local"}))
        save_checkpoint(gan.state(epoch=epoch), join(storage, "generator", "fc6", f"epoch={epoch:04d}.pt"))
    return storage
