"""Video processor of Super SloMo trained with cycle consistency (arXiv 1906.05928, Super SloMo arXiv 1712.00080;
reference NVIDIA/unsupervised-video-interpolation, `datasets/VideoInterp.py`, whose `pad_images` pads frames at the
bottom and right with zeros to multiples of `--stride` 64).

Frames in (a clip as a list of PIL images, (H, W, 3) arrays or (3, H, W) tensors, a (T, H, W, 3) array, or a batch
of clips), `pixel_values_videos` out: float32 (B, T, 3, H', W') RGB in [0, 255], zero-padded like the reference to
multiples of `size_divisor`, plus `original_sizes` (B, 2) for `post_process_frames`, which crops interpolated frames
back and returns PIL images (clamped and rounded to 8 bits). Mean subtraction happens inside the model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

REFERENCE_STRIDE = 64  # the reference's `--stride`


class CyclicInterpVideoProcessorKwargs(VideosKwargs, total=False):
    size_divisor: int


def _frame_size(frame) -> tuple[int, int]:
    """(H, W) of a PIL image, an (H, W, C) array or a (C, H, W) tensor."""
    if isinstance(frame, Image.Image):
        return frame.height, frame.width
    if isinstance(frame, torch.Tensor) and frame.dim() == 3 and frame.shape[0] in (1, 3, 4):
        return tuple(frame.shape[-2:])
    return tuple(np.asarray(frame).shape[:2])


class CyclicInterpVideoProcessor(BaseVideoProcessor):
    """Zero-pads clips of RGB frames at the bottom and right to multiples of `size_divisor` (64, the reference's
    stride); no resizing, rescaling or normalisation."""

    valid_kwargs = CyclicInterpVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]
    do_resize = False
    do_center_crop = False
    do_rescale = False
    do_normalize = False
    do_convert_rgb = True
    do_sample_frames = False
    size_divisor = REFERENCE_STRIDE

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        divisor = self.size_divisor
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise ValueError(f"size_divisor={divisor!r} must be a positive integer")

    @classmethod
    def for_config(cls, config, **kwargs) -> "CyclicInterpVideoProcessor":
        """The processor for a `CyclicInterpConfig`: pads to the reference's stride 64, or to a multiple of it that
        the model's `size_divisor` (32·flow_scale) divides."""
        kwargs.setdefault("size_divisor", math.lcm(REFERENCE_STRIDE, config.size_divisor))
        return cls(**kwargs)

    def preprocess(self, videos, **kwargs) -> BatchFeature:
        # A clip given as frames of different sizes would otherwise fail deep inside numpy's stack.
        clips = videos if isinstance(videos, (list, tuple)) and videos and isinstance(videos[0], (list, tuple)) \
            else [videos]
        for number, clip in enumerate(clips):
            if isinstance(clip, (list, tuple)):
                sizes = [_frame_size(frame) for frame in clip]
                if len(set(sizes)) > 1:
                    first = next(i for i, s in enumerate(sizes) if s != sizes[0])
                    raise ValueError(f"clip {number} mixes frame sizes: frame 0 is {sizes[0][1]}x{sizes[0][0]} but "
                                     f"frame {first} is {sizes[first][1]}x{sizes[first][0]} (WxH); interpolate "
                                     "between frames of one size")
        return super().preprocess(videos, **kwargs)

    def _preprocess(self, videos: list[torch.Tensor], size_divisor: int | None = None, return_tensors=None,
                    **kwargs) -> BatchFeature:
        divisor = self.size_divisor if size_divisor is None else size_divisor
        sizes = {tuple(video.shape[-2:]) for video in videos}
        if len(sizes) != 1:
            listed = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
            raise ValueError(f"the clips of one batch have different frame sizes ({listed}, WxH); process clips of "
                             "different sizes in separate calls")
        height, width = sizes.pop()
        pad_h, pad_w = -(-height // divisor) * divisor - height, -(-width // divisor) * divisor - width
        out = []
        for video in videos:
            if video.shape[0] < 1:
                raise ValueError("a clip holds no frames; pass at least two frames per clip")
            out.append(torch.nn.functional.pad(video.to(torch.float32), (0, pad_w, 0, pad_h)))
        data = {"pixel_values_videos": torch.stack(out) if len({v.shape[0] for v in out}) == 1 else out,
                "original_sizes": torch.tensor([[height, width]] * len(out), dtype=torch.long)}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def post_process_frames(self, frames: torch.Tensor, original_sizes) -> list[list[Image.Image]]:
        """Interpolated frames (B, N, 3, H', W') or (B, 3, H', W') in [0, 255] -> per clip a list of N PIL images
        cropped to the clip's original size, clamped to [0, 255] and rounded to uint8."""
        if not isinstance(frames, torch.Tensor) or frames.dim() not in (4, 5) or frames.shape[-3] != 3:
            raise ValueError(f"frames must be (B, N, 3, H, W) or (B, 3, H, W); got "
                             f"{tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__}")
        frames = frames[:, None] if frames.dim() == 4 else frames
        sizes = torch.as_tensor(original_sizes).reshape(-1, 2).tolist()
        if len(sizes) != frames.shape[0]:
            raise ValueError(f"{len(sizes)} original sizes for {frames.shape[0]} clips; pass the processor's "
                             "original_sizes")
        out = []
        for clip, (height, width) in zip(frames, sizes):
            pixels = clip[..., :height, :width].detach().float().clamp(0, 255).round().to(torch.uint8)
            out.append([Image.fromarray(frame.permute(1, 2, 0).cpu().numpy()) for frame in pixels])
        return out


__all__ = ["CyclicInterpVideoProcessor"]
