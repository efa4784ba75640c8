"""Video processor of Super SloMo trained with cycle consistency (arXiv 1906.05928, Super SloMo arXiv 1712.00080;
reference NVIDIA/unsupervised-video-interpolation, `datasets/VideoInterp.py`, whose `pad_images` pads frames at the
bottom and right with zeros to multiples of `--stride` 64).

Frames in, `pixel_values_videos` (B, T, 3, H', W') in [0, 255] out, zero-padded like the reference to multiples of
`size_divisor`, plus `original_sizes` for `post_process_frames`, which crops interpolated frames back (the shared
`PaddedVideoProcessor`). Mean subtraction happens inside the model.
"""

from __future__ import annotations

import math

import torch

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.video_processing_padded import PaddedVideoProcessor
except ImportError:  # a remote-code copy: the published folder carries this file (symlinked in)
    from .video_processing_padded import PaddedVideoProcessor

REFERENCE_STRIDE = 64  # the reference's `--stride`


class CyclicInterpVideoProcessor(PaddedVideoProcessor):
    """Zero-pads clips of RGB frames at the bottom and right to multiples of `size_divisor` (64, the reference's
    stride); no resizing, rescaling or normalisation."""

    size_divisor = REFERENCE_STRIDE

    @classmethod
    def for_config(cls, config, **kwargs) -> "CyclicInterpVideoProcessor":
        """The processor for a `CyclicInterpConfig`: pads to the reference's stride 64, or to a multiple of it that
        the model's `size_divisor` (32·flow_scale) divides."""
        kwargs.setdefault("size_divisor", math.lcm(REFERENCE_STRIDE, config.size_divisor))
        return cls(**kwargs)

    def pad_clip(self, clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return torch.nn.functional.pad(clip, (0, width - clip.shape[-1], 0, height - clip.shape[-2]))


__all__ = ["CyclicInterpVideoProcessor"]
