"""RAFT optical flow (torchvision's `raft_small` / `raft_large`) from a weights file the user supplies.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py` (frozen FlowNet2 on
(I_{i+1}, I_i)).
Deviation from the reference: torchvision's RAFT (Teed & Deng 2020) replaces FlowNet2, frozen and run without
gradients like it; recompute the normalisation statistics (`flow_statistics`) for it.

Weights are never downloaded here: pass the path of a state dict (e.g. torchvision's Raft_Small_Weights.C_T_V2 or
Raft_Large_Weights.C_T_SKHT_V2 file, fetched once by you), loaded with `torch.load(weights_only=True)` or safetensors.
A randomly initialised RAFT outputs meaningless flow, so building one without weights is refused. Frames are scaled
from [0, 255] to [-1, 1] (the weights' transforms); H and W must be multiples of 8 and at least 128 (its
correlation pyramid); the last refinement is returned.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .base import FlowSource

__all__ = ["RAFT_VARIANTS", "RAFTFlow"]

RAFT_VARIANTS = ("small", "large")


def _load_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # unpickling errors come in many types
            raise ValueError(f"RAFT weights {str(path)!r} cannot be loaded with torch.load(weights_only=True) "
                             f"({type(err).__name__}: {err}); pass a state-dict file (.pth/.pt) or .safetensors"
                             ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"RAFT weights {str(path)!r} hold no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


class RAFTFlow(FlowSource):
    """flow_source "raft-small" / "raft-large": torchvision RAFT with weights from `weights` (a local file)."""

    def __init__(self, variant: str = "small", weights: str | os.PathLike | None = None, *,
                 num_flow_updates: int = 12, device: str | torch.device | None = None):
        if variant not in RAFT_VARIANTS:
            raise ValueError(f"variant={variant!r} is not one of {RAFT_VARIANTS}")
        self.name = f"raft-{variant}"
        if weights is None:
            named = "Raft_Small_Weights.C_T_V2" if variant == "small" else "Raft_Large_Weights.C_T_SKHT_V2"
            raise ValueError(f"{self.name} needs trained weights: a randomly initialised RAFT gives meaningless flow. "
                             f"Pass weights=PATH to a raft_{variant} state dict (e.g. torchvision's {named} file, "
                             "downloaded once by you), or use flow_source 'opencv-dis', which needs no weights")
        if isinstance(num_flow_updates, bool) or not isinstance(num_flow_updates, int) or num_flow_updates < 1:
            raise ValueError(f"num_flow_updates={num_flow_updates!r} must be an int >= 1 (12 is RAFT's default)")
        path = Path(os.path.expanduser(os.fspath(weights)))
        if not path.is_file():
            raise FileNotFoundError(f"RAFT weights file {str(path)!r} does not exist")
        from torchvision.models.optical_flow import raft_large, raft_small

        model = (raft_small if variant == "small" else raft_large)(weights=None, progress=False)
        state = _load_state_dict(path)
        missing, unexpected = model.state_dict().keys() - state.keys(), state.keys() - model.state_dict().keys()
        if missing or unexpected:
            other = "large" if variant == "small" else "small"
            raise ValueError(f"RAFT weights {str(path)!r} do not fit raft_{variant}: {len(missing)} missing and "
                             f"{len(unexpected)} unexpected keys (e.g. {sorted(missing or unexpected)[:3]}); is it a "
                             f"raft_{other} file? Then use flow_source 'raft-{other}'")
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"RAFT weights {str(path)!r} do not fit raft_{variant}: {err}") from None
        self.model = model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)
        self.num_flow_updates = num_flow_updates
        self.weights = str(path)

    def compute(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        height, width = first.shape[-2:]
        if height % 8 or width % 8:
            raise ValueError(f"frames of {height}x{width} (HxW): RAFT needs H and W divisible by 8; crop to "
                             f"{height // 8 * 8}x{width // 8 * 8} or pad to {-(-height // 8) * 8}x{-(-width // 8) * 8}")
        levels = getattr(getattr(self.model, "corr_block", None), "num_levels", 4)
        smallest = 8 * 2 * 2 ** (levels - 1)  # the correlation pyramid halves the 1/8-size features levels-1 times
        if height < smallest or width < smallest:
            raise ValueError(f"frames of {height}x{width} (HxW): {self.name} needs H and W of at least {smallest}; "
                             f"pad or resize the frames to at least {smallest}x{smallest}")
        device = next(self.model.parameters()).device
        with torch.no_grad():
            flows = self.model(first.to(device) / 127.5 - 1.0, second.to(device) / 127.5 - 1.0,
                               num_flow_updates=self.num_flow_updates)
        return flows[-1]
