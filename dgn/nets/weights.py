"""Real ImageNet weights from a local file: torchvision's AlexNet → the ``alexnet`` preset.

Nothing is ever downloaded: the user saves ``torchvision.models.alexnet(weights=...)
.state_dict()`` once, on a machine with internet, and passes the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dgn.errors import DGNError
from dgn.nets.caffenet import CaffeNet, caffenet_config

# torchvision AlexNet parameter prefix → CaffeNet layer name
TORCHVISION_ALEXNET = {
    "features.0": "conv1",
    "features.3": "conv2",
    "features.6": "conv3",
    "features.8": "conv4",
    "features.10": "conv5",
    "classifier.1": "fc6",
    "classifier.4": "fc7",
    "classifier.6": "fc8",
}


def _load_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DGNError(f"weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any unpickling failure is the user's file
        if "global" in str(e).lower():  # a pickled class or callable, refused by the weights-only unpickler
            raise DGNError(f"weights file {str(path)!r} holds Python objects besides tensors and was refused "
                           f"(files load with weights_only=True, so no code in them runs); save a plain state dict"
                           ) from None
        raise DGNError(f"weights file {str(path)!r} is not a readable torch state dict ({type(e).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DGNError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


def convert_torchvision_alexnet(state: dict, *, where: str = "state dict") -> dict:
    """Rename a torchvision AlexNet state dict's keys to CaffeNet's layer names."""
    out = {}
    for src, dst in TORCHVISION_ALEXNET.items():
        for p in ("weight", "bias"):
            key = f"{src}.{p}"
            if key not in state:
                raise DGNError(
                    f"{where} is not a torchvision AlexNet state dict: key {key!r} is missing "
                    f"(expected {', '.join(f'{k}.weight' for k in TORCHVISION_ALEXNET)})"
                )
            out[f"{dst}.{p}"] = state[key]
    return out


def load_torchvision_alexnet(path: str | Path) -> CaffeNet:
    """A CaffeNet (``alexnet`` preset) holding the weights of a local torchvision AlexNet file."""
    state = convert_torchvision_alexnet(_load_state(path), where=f"weights file {str(path)!r}")
    num_classes = state["fc8.weight"].shape[0]
    net = CaffeNet(caffenet_config("alexnet", num_classes=num_classes))
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise DGNError(f"weights file {str(path)!r} does not fit the alexnet preset: {str(e).splitlines()[0]}") from None
    return net.eval()
