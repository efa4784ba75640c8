"""VGG16 convolutional features from a local weights file, for perceptual losses: `features[:end]` of torchvision's
VGG16 (configuration "D"), frozen, never downloaded.

The frame-interpolation reference (NVIDIA/unsupervised-video-interpolation, `models/HJSuperSloMo.py`, arXiv
1906.05928) uses `torchvision.models.vgg16(pretrained=True).features[:22]`: conv1_1 … conv4_3, before conv4_3's
ReLU. The weights file is a torchvision VGG16 state dict (`features.N.weight` …, classifier entries ignored) or a
state dict of the features alone (`N.weight` …), read with `torch.load(weights_only=True)`; e.g. the file torchvision
caches as `vgg16-397923af.pth`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["PERCEPTUAL_END", "check_vgg16_file", "load_vgg16_features"]

PERCEPTUAL_END = 22  # features[:22]: up to conv4_3, before its ReLU


def _features(end: int) -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["D"])[:end]


def _read(path) -> dict[str, torch.Tensor]:
    file = Path(os.path.expanduser(os.fspath(path)))
    if not file.is_file():
        raise FileNotFoundError(f"VGG16 weights {str(file)!r} do not exist; pass a local torchvision VGG16 state dict "
                                "(e.g. vgg16-397923af.pth), or leave the perceptual term off")
    try:
        try:  # memory-mapped: checking a 500 MB file reads only what is used
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files in torch's legacy format (torchvision's own vgg16-397923af.pth) cannot be mapped
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt, truncated or not a torch file: one clear error
        raise ValueError(f"{str(file)!r} is not a readable PyTorch weights file ({type(err).__name__}: "
                         f"{(str(err).splitlines() or [''])[0][:200]}); pass a torchvision VGG16 state dict") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{str(file)!r} holds a {type(state).__name__}, not a VGG16 state dict")
    return state


def _features_state(path, end: int) -> dict[str, torch.Tensor]:
    """The entries of `features[:end]` in the file, checked against VGG16's shapes; one error naming what is off."""
    state = _read(path)
    if any(k.startswith("features.") for k in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in _features(end).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != expected[k])
    if missing or wrong:
        raise ValueError(f"{str(path)!r} is not a VGG16 state dict: missing {missing[:4]}, wrong shapes {wrong[:4]} "
                         f"(features[:{end}] needs {sorted(expected)[:4]} …)")
    return {k: state[k] for k in expected}


def check_vgg16_file(path, end: int = PERCEPTUAL_END) -> None:
    """Raise the error `load_vgg16_features` would, without building the network (memory-mapped read)."""
    _features_state(path, end)


def load_vgg16_features(path, end: int = PERCEPTUAL_END) -> nn.Sequential:
    """VGG16 `features[:end]` with the file's weights, in eval mode, without gradients."""
    state = _features_state(path, end)
    with torch.device("meta"):
        features = _features(end)
    features.load_state_dict({k: v.float().clone() for k, v in state.items()}, assign=True)
    return features.eval().requires_grad_(False)
