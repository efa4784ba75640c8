"""The flow-source interface shared by every optical-flow backend, and its input convention.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py`, which runs FlowNet2 on the
pairs (I_{i+1}, I_i).

Direction: `source(first, second)` returns the flow f "from first to second", with first(x) ≈ second(x + f(x)), so
`warp(second, f)` ≈ first. The reference's convention is flow(I_{i+1}, I_i): call `source(frames[i + 1], frames[i])`
and `warp(frames[i], flow)` approximates frames[i + 1].

Frames: RGB torch tensors (B, 3, H, W) or one (3, H, W), uint8 or floating point in [0, 255] (the reference's
rgb_max = 255 range). Flow: float32 (B, 2, H, W) (or (2, H, W) for unbatched input) on the frames' device, channel 0 =
u (x displacement), channel 1 = v (y displacement), in pixels.
Deviation from the reference: frames are RGB (the reference feeds BGR frames to FlowNet2, which expects RGB; a FIXME
there).
"""

from __future__ import annotations

import torch

__all__ = ["FlowSource", "NoFlow", "check_frame_pair"]


def check_frame_pair(first, second) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate a pair of frame batches; returns them as float32 (B, 3, H, W) and whether the input was unbatched."""
    for name, frames in (("first", first), ("second", second)):
        if not isinstance(frames, torch.Tensor):
            raise ValueError(f"{name} frames must be a torch tensor (B, 3, H, W) or (3, H, W), RGB in [0, 255]; got "
                             f"{type(frames).__name__} (for an (H, W, 3) numpy image use "
                             "torch.from_numpy(image).permute(2, 0, 1))")
        if frames.dim() not in (3, 4) or frames.shape[-3] != 3:
            raise ValueError(f"{name} frames must be RGB (B, 3, H, W) or (3, H, W); got shape {tuple(frames.shape)}")
        if frames.dtype != torch.uint8 and not frames.is_floating_point():
            raise ValueError(f"{name} frames must be uint8 or floating point in [0, 255]; got dtype {frames.dtype}")
    if first.shape != second.shape:
        raise ValueError(f"first {tuple(first.shape)} and second {tuple(second.shape)} frames must have the same shape")
    if first.device != second.device:
        raise ValueError(f"first frames are on {first.device}, second on {second.device}; move them to one device")
    unbatched = first.dim() == 3
    pair = []
    for name, frames in (("first", first), ("second", second)):
        frames = frames.unsqueeze(0) if unbatched else frames
        if frames.is_floating_point():
            low, high = float(frames.min()), float(frames.max())
            if not (low >= -1e-3 and high <= 255.0 + 1e-3):
                raise ValueError(f"{name} frames hold values in [{low:.4g}, {high:.4g}]; flow sources take RGB in "
                                 "[0, 255] (multiply [0, 1] frames by 255; undo any mean/std normalisation)")
        pair.append(frames.to(torch.float32))
    return pair[0], pair[1], unbatched


class FlowSource:
    """A named optical-flow backend: `source(first, second)` -> flow from `first` to `second` (see the module doc)."""

    name = "base"
    #: False only for "none": the model then takes images only
    provides_flow = True

    def __call__(self, first, second) -> torch.Tensor:
        first, second, unbatched = check_frame_pair(first, second)
        flow = self.compute(first, second).to(device=first.device, dtype=torch.float32)
        return flow[0] if unbatched else flow

    def compute(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """float32 (B, 3, H, W) pairs in [0, 255] -> (B, 2, H, W) flow from first to second."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class NoFlow(FlowSource):
    """flow_source "none": no flow; the model takes the images only (3T input channels instead of 3T + 2(T-1))."""

    name = "none"
    provides_flow = False

    def __call__(self, first, second) -> None:
        check_frame_pair(first, second)
        return None
