"""dgn: DGN-AM (Nguyen et al., NIPS 2016) — preferred inputs of every neuron, at scale."""

from dgn.errors import DGNError

__all__ = ["DGNError"]
__version__ = "0.1.0"
