"""Video processor of SDC-Net (arXiv 1811.00684; reference NVIDIA/semantic-segmentation, branch `sdcnet`,
`sdcnet/datasets/frame_loader.py`, which pads frames at the bottom and right with numpy's "reflect" to multiples of
`--stride` 64).

Frames in, `pixel_values_videos` (B, T, 3, H', W') in [0, 255] out, reflection-padded like the reference to
multiples of `size_divisor`, plus `original_sizes` for `post_process_frames` (the shared `PaddedVideoProcessor`).
Normalisation (per-sample mean, flows) happens inside the model, as in the reference.
"""

from __future__ import annotations

import torch

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.video_processing_padded import PaddedVideoProcessor
except ImportError:  # a remote-code copy: the published folder carries this file (symlinked in)
    from .video_processing_padded import PaddedVideoProcessor


def _reflect_index(size: int, length: int) -> torch.Tensor:
    """Indices 0 .. length-1 into an axis of `size` that continue past its end the way numpy's "reflect" pads
    (mirror without repeating the edge, as often as needed); a single-pixel axis repeats it."""
    index = torch.arange(length)
    if size == 1:
        return torch.zeros(length, dtype=torch.long)
    period = 2 * (size - 1)
    index = index % period
    return torch.where(index < size, index, period - index)


class SDCNetVideoProcessor(PaddedVideoProcessor):
    """Pads clips of RGB frames to multiples of `size_divisor` (64: the model's six stride-2 stages) at the bottom
    and right with reflection, as the reference's loader; no resizing, rescaling or normalisation."""

    @classmethod
    def for_config(cls, config, **kwargs) -> "SDCNetVideoProcessor":
        """The processor matching an `SDCNetConfig` (pads to its `size_divisor`)."""
        kwargs.setdefault("size_divisor", config.size_divisor)
        return cls(**kwargs)

    def pad_clip(self, clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
        rows = _reflect_index(clip.shape[-2], height).to(clip.device)
        cols = _reflect_index(clip.shape[-1], width).to(clip.device)
        return clip.index_select(-2, rows).index_select(-1, cols)


__all__ = ["SDCNetVideoProcessor"]
