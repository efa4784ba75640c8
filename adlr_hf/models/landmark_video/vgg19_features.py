"""VGG19 features for the landmark model's perceptual loss, from a local weights file (never downloaded).

Reference: NVIDIA/UnsupervisedLandmarkLearning, `models/losses.py` (`Vgg19PerceptualLoss`): torchvision
`vgg19(pretrained=True).features[:23]` (conv1_1 … relu4_2), frozen. The file is a torchvision VGG19 state dict
(`features.N.weight` …, classifier entries ignored) or one of the features alone (`N.weight` …), e.g. the file
torchvision caches as `vgg19-dcbb9e9d.pth`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ...layers.vgg_features import _read

__all__ = ["VGG19_END", "check_vgg19_file", "load_vgg19_features"]

VGG19_END = 23  # features[:23]: to relu4_2


def _features() -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["E"])[:VGG19_END]


def _state(path) -> dict[str, torch.Tensor]:
    if not Path(os.path.expanduser(os.fspath(path))).is_file():
        raise FileNotFoundError(f"VGG19 weights {str(path)!r} do not exist; pass a local torchvision VGG19 state dict "
                                "(e.g. vgg19-dcbb9e9d.pth), or leave --vgg19-weights off (L1 + SSIM loss)")
    state = _read(path)  # the shared reader: a clear error for unreadable files
    if any(k.startswith("features.") for k in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in _features().state_dict().items()}
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != expected[k])
    if missing or wrong:
        raise ValueError(f"{str(path)!r} is not a VGG19 state dict: missing {missing[:4]}, wrong shapes {wrong[:4]} "
                         "(a torchvision vgg19 state dict, e.g. vgg19-dcbb9e9d.pth, is expected)")
    return {k: state[k] for k in expected}


def check_vgg19_file(path) -> None:
    """Raise the error `load_vgg19_features` would, without building the network."""
    _state(path)


def load_vgg19_features(path) -> nn.Sequential:
    """VGG19 `features[:23]` with the file's weights, in eval mode, without gradients."""
    state = _state(path)
    with torch.device("meta"):
        features = _features()
    features.load_state_dict({k: v.float().clone() for k, v in state.items()}, assign=True)
    return features.eval().requires_grad_(False)
