"""Training: classifiers (E, judge) and the generator G, one process at a time."""

from dgn.train.batches import tensor_batches
from dgn.train.checkpoint import load_checkpoint, save_checkpoint
from dgn.train.classifier import evaluate, load_classifier, load_judge, train_epoch
from dgn.train.codestats import code_stats
from dgn.train.gan import GANConfig, GANTrainer, load_generator

__all__ = ["tensor_batches", "load_checkpoint", "save_checkpoint", "evaluate", "load_classifier", "load_judge",
           "train_epoch", "code_stats", "GANConfig", "GANTrainer", "load_generator"]
