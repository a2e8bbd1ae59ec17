"""Networks: the CaffeNet family (E, C and targets), G, D, the judge, target hooks."""

from dgn.nets.caffenet import (
    LAYERS,
    RELU_LAYERS,
    CaffeNet,
    CaffeNetConfig,
    build_caffenet,
    caffenet_config,
    check_layer,
)
from dgn.nets.discriminator import Discriminator
from dgn.nets.generator import Generator, GeneratorConfig, generator_config
from dgn.nets.judge import Judge
from dgn.nets.target import Unit, capture, check_unit, parse_unit, resolve_module, unit_values
from dgn.nets.weights import load_torchvision_alexnet

__all__ = [
    "LAYERS", "RELU_LAYERS", "CaffeNet", "CaffeNetConfig", "build_caffenet", "caffenet_config", "check_layer",
    "Discriminator", "Generator", "GeneratorConfig", "generator_config", "Judge",
    "Unit", "capture", "check_unit", "parse_unit", "resolve_module", "unit_values", "load_torchvision_alexnet",
]
