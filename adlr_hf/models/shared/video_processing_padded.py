"""The video processor the video families share: frames in (a clip as a list of PIL images, (H, W, 3) arrays or
(3, H, W) tensors, a (T, H, W, 3) array, or a batch of clips), `pixel_values_videos` out: float32 (B, T, 3, H', W')
RGB in [0, 255], padded at the bottom and right to multiples of `size_divisor`, plus `original_sizes` (B, 2) for
`post_process_frames`, which crops the model's frames back and returns PIL images. A family's processor pads as its
reference's loader does (`pad_clip`). Follows transformers' `BaseVideoProcessor` (saved as
video_preprocessor_config.json, loaded by `AutoVideoProcessor`).

Each video family folder carries this file (a symlink to `adlr_hf/models/shared/video_processing_padded.py`), because
transformers' remote code copies a processor file together with the files it imports with a single dot. It imports
only numpy, torch, PIL and transformers.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor


class PaddedVideoProcessorKwargs(VideosKwargs, total=False):
    size_divisor: int


def _frame_size(frame) -> tuple[int, int]:
    """(H, W) of a PIL image, an (H, W, C) array or a (C, H, W) tensor."""
    if isinstance(frame, Image.Image):
        return frame.height, frame.width
    if isinstance(frame, torch.Tensor) and frame.dim() == 3 and frame.shape[0] in (1, 3, 4):
        return tuple(frame.shape[-2:])
    return tuple(np.asarray(frame).shape[:2])


class PaddedVideoProcessor(BaseVideoProcessor):
    """Pads clips of RGB frames at the bottom and right to multiples of `size_divisor` (64 by default); no resizing,
    rescaling or normalisation. Subclasses say how the padding is filled (`pad_clip`)."""

    valid_kwargs = PaddedVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]
    do_resize = False
    do_center_crop = False
    do_rescale = False
    do_normalize = False
    do_convert_rgb = True
    do_sample_frames = False
    size_divisor = 64

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        divisor = self.size_divisor
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise ValueError(f"size_divisor={divisor!r} must be a positive integer")

    def pad_clip(self, clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """A float32 clip (T, 3, h, w) padded at the bottom and right to (T, 3, height, width)."""
        raise NotImplementedError

    def preprocess(self, videos, **kwargs) -> BatchFeature:
        # A clip given as a list of frames of different sizes would otherwise fail deep inside numpy's stack.
        clips = videos if isinstance(videos, (list, tuple)) and videos and isinstance(videos[0], (list, tuple)) \
            else [videos]
        for number, clip in enumerate(clips):
            if isinstance(clip, (list, tuple)):
                sizes = [_frame_size(frame) for frame in clip]
                if len(set(sizes)) > 1:
                    first = next(i for i, s in enumerate(sizes) if s != sizes[0])
                    raise ValueError(f"clip {number} mixes frame sizes: frame 0 is {sizes[0][1]}x{sizes[0][0]} but "
                                     f"frame {first} is {sizes[first][1]}x{sizes[first][0]} (WxH); resize or crop "
                                     "the frames of a clip to one size")
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
        padded_h, padded_w = -(-height // divisor) * divisor, -(-width // divisor) * divisor
        out = []
        for video in videos:
            if video.shape[0] < 1:
                raise ValueError("a clip holds no frames; pass the frames of every clip")
            out.append(self.pad_clip(video.to(torch.float32), padded_h, padded_w))
        data = {"pixel_values_videos": torch.stack(out) if len({v.shape[0] for v in out}) == 1 else out,
                "original_sizes": torch.tensor([[height, width]] * len(out), dtype=torch.long)}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def post_process_frames(self, frames: torch.Tensor, original_sizes) -> list[list[Image.Image]]:
        """The model's frames (B, 3, H', W') or (B, N, 3, H', W') in [0, 255] -> per clip a list of N PIL images
        cropped to the clip's original size, clamped to [0, 255] and rounded to uint8."""
        if not isinstance(frames, torch.Tensor) or frames.dim() not in (4, 5) or frames.shape[-3] != 3:
            raise ValueError(f"frames must be (B, 3, H, W) or (B, N, 3, H, W); got "
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


__all__ = ["PaddedVideoProcessor"]
