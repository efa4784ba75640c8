"""The `video-frame-prediction` pipeline (transformers' pipeline registry): the last frames of a clip in, the
predicted next frame(s) out as PIL images.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.

    predict = pipeline("video-frame-prediction", model="sdcnet-folder", trust_remote_code=True)
    predict("clip_folder/")                      # a folder of frames (natural name order), or
    predict("clip.mp4", num_future_frames=3)     # a video file, or
    predict([frame0, frame1, frame2])            # frames: PIL images, (H, W, 3) uint8 arrays or image paths

The model sees the clip's last `sequence_length` frames (padded by the video processor); with `num_future_frames`
> 1 it rolls out, feeding each prediction back. Every input is checked before the model runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline


class _Clip:
    """A list of frames passed as one input (a plain list would be taken as a batch of inputs)."""

    def __init__(self, frames):
        self.frames = list(frames)


def _as_array(frame, index: int) -> np.ndarray:
    """One frame as an (H, W, 3) uint8 RGB array."""
    from ...data.frames import _read_image

    if isinstance(frame, (str, os.PathLike)):
        return _read_image(os.fspath(frame))
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"frame {index} has shape {array.shape}; pass RGB frames as PIL images, (H, W, 3) arrays or "
                         "(3, H, W) tensors")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or array.size == 0:
            raise ValueError(f"frame {index} has dtype {array.dtype}; pass uint8 frames or floats in [0, 255]")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255 or (np.issubdtype(array.dtype, np.floating) and high <= 1.0):
            raise ValueError(f"frame {index} holds values in [{low:.4g}, {high:.4g}]; pass uint8 frames or floats "
                             "in [0, 255] (multiply [0, 1] frames by 255)")
        array = np.round(array).astype(np.uint8)
    return array


def read_clip_frames(inputs, count: int) -> list[np.ndarray]:
    """The last `count` frames of `inputs` (a list of frames, a frame folder, or a video file) as (H, W, 3) uint8
    arrays, checked: at least `count` frames, all of one size."""
    from ...data.frames import find_clips, read_video_frames

    if isinstance(inputs, (str, os.PathLike)):
        path = Path(os.path.expanduser(os.fspath(inputs)))
        clips = find_clips(path)  # names a missing path, a non-video file, an unreadable video
        if len(clips) != 1:
            raise ValueError(f"{str(path)!r} holds {len(clips)} clips ({', '.join(c.name for c in clips[:4])}); pass "
                             "one clip: a folder of frames or one video file")
        clip = clips[0]
        if clip.num_frames < count:
            raise ValueError(f"clip {str(path)!r} has {clip.num_frames} frame(s); the model predicts from the last "
                             f"{count}: pass a clip of at least {count} frames")
        if clip.kind == "video":
            return list(read_video_frames(clip.source, range(clip.num_frames - count, clip.num_frames)))
        frames = list(clip.files[-count:])
    elif isinstance(inputs, _Clip):
        frames = inputs.frames
    elif isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 4:
        frames = list(inputs)
    else:
        raise ValueError(f"cannot read frames from a {type(inputs).__name__}; pass a list of frames (PIL images, "
                         "(H, W, 3) arrays, image paths), a folder of frames or a video file")
    if len(frames) < count:
        raise ValueError(f"got {len(frames)} frame(s); the model predicts from the last {count} consecutive frames: "
                         f"pass at least {count}")
    arrays = [_as_array(frame, i) for i, frame in enumerate(frames[-count:])]
    sizes = [a.shape[:2] for a in arrays]
    if len(set(sizes)) > 1:
        first = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise ValueError(f"the frames differ in size: {sizes[0][1]}x{sizes[0][0]} and {sizes[first][1]}x"
                         f"{sizes[first][0]} (WxH); pass frames of one clip, all of one size")
    return arrays


class SDCNetFramePredictionPipeline(Pipeline):
    """`pipeline("video-frame-prediction")`: returns a list of `num_future_frames` PIL images (default 1)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = True

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)):
            inputs = _Clip(inputs)
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, num_future_frames=None, **kwargs):
        if kwargs:
            raise ValueError(f"unknown options {sorted(kwargs)}; video-frame-prediction takes num_future_frames")
        forward = {}
        if num_future_frames is not None:
            if isinstance(num_future_frames, bool) or not isinstance(num_future_frames, int) or num_future_frames < 1:
                raise ValueError(f"num_future_frames={num_future_frames!r} must be an integer >= 1")
            forward["num_future_frames"] = num_future_frames
        return {}, forward, {}

    def preprocess(self, inputs):
        if self.video_processor is None:
            raise ValueError("this model folder has no video processor (video_preprocessor_config.json); save the "
                             "model's processor beside it or pass video_processor=...")
        if getattr(self.model.config, "reconstruction", False):
            raise ValueError(f"{type(self.model).__name__} reconstructs a frame it is given and cannot predict unseen "
                             "frames; use a prediction model")
        frames = read_clip_frames(inputs, self.model.config.sequence_length)
        return self.video_processor([frames], return_tensors="pt", input_data_format="channels_last")

    def _forward(self, model_inputs, num_future_frames: int = 1):
        predicted = self.model.rollout(model_inputs["pixel_values_videos"], num_future_frames)
        return {"predicted": predicted, "original_sizes": model_inputs["original_sizes"]}

    def postprocess(self, model_outputs):
        return self.video_processor.post_process_frames(model_outputs["predicted"],
                                                        model_outputs["original_sizes"])[0]


__all__ = ["SDCNetFramePredictionPipeline", "read_clip_frames"]
