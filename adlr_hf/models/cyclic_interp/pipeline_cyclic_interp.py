"""The `video-frame-interpolation` pipeline (transformers' pipeline registry): two frames or a clip in, the
in-between frames out as PIL images at the requested times.

Paper: Reda et al., "Unsupervised Video Interpolation Using Cycle Consistency", arXiv 1906.05928 (Super SloMo, arXiv
1712.00080). Reference: NVIDIA/unsupervised-video-interpolation, `eval.py` (the frames between two inputs at
`tlinespace` times, one call per time; here all requested times in one call).

    interpolate = pipeline("video-frame-interpolation", model="folder", trust_remote_code=True)
    interpolate([frame0, frame1])                          # the model's num_interp frames (default 1: t = 0.5)
    interpolate([frame0, frame1], timesteps=[0.25, 0.75])  # frames at given times in (0, 1)
    interpolate("clip_folder/", num_interp=3)              # a clip (frame folder, video, list of frames): the frames
                                                           # between each consecutive pair, pair by pair

Returns a flat list of PIL images in time order: N frames between inputs 0 and 1, then N between 1 and 2, ...
Every input and option is checked before the model runs.
"""

from __future__ import annotations

import torch

from ...data.frame_inputs import read_clip
from ...video_pipeline import VideoClipPipeline


def _check_timesteps(timesteps, num_interp) -> list[float] | None:
    if timesteps is not None and num_interp is not None:
        raise ValueError("pass either timesteps (times in (0, 1)) or num_interp (N evenly spaced frames), not both")
    if num_interp is not None:
        if isinstance(num_interp, bool) or not isinstance(num_interp, int) or num_interp < 1:
            raise ValueError(f"num_interp={num_interp!r} must be an integer >= 1")
        return [i / (num_interp + 1) for i in range(1, num_interp + 1)]
    if timesteps is None:
        return None
    values = [timesteps] if isinstance(timesteps, (int, float)) else list(timesteps)
    if not values or any(isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1 for t in values):
        raise ValueError(f"timesteps={timesteps!r} must be numbers strictly between 0 and 1 (the input frames are at "
                         "t=0 and t=1), e.g. timesteps=[0.5]")
    return [float(t) for t in values]


class CyclicInterpPipeline(VideoClipPipeline):
    """`pipeline("video-frame-interpolation")`: returns a list of PIL images (see the module docstring)."""

    def _sanitize_parameters(self, timesteps=None, num_interp=None, **kwargs):
        if kwargs:
            raise ValueError(f"unknown options {sorted(kwargs)}; video-frame-interpolation takes timesteps or "
                             "num_interp")
        chosen = _check_timesteps(timesteps, num_interp)
        return {}, ({} if chosen is None else {"timesteps": chosen}), {}

    def read_frames(self, inputs):
        return read_clip(inputs, at_least=2)

    def _forward(self, model_inputs, timesteps=None):
        video = model_inputs["pixel_values_videos"]
        pairs = [self.model.interpolate(video[:, i:i + 2], timesteps) for i in range(video.shape[1] - 1)]
        return {"frames": torch.cat(pairs, 1), "original_sizes": model_inputs["original_sizes"]}


__all__ = ["CyclicInterpPipeline"]
