"""Frames handed to a video pipeline by a user: a list of frames (PIL images, (H, W, 3) arrays, (3, H, W) tensors or
image paths), a folder of frames (natural name order) or a video file, read as (H, W, 3) uint8 RGB arrays and
checked (how many, one size) before any model runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["ClipInput", "frame_array", "read_clip"]


class ClipInput:
    """A list of frames passed to a pipeline as one input (a plain list would be taken as a batch of inputs)."""

    def __init__(self, frames):
        self.frames = list(frames)


def frame_array(frame, index: int) -> np.ndarray:
    """One frame as an (H, W, 3) uint8 RGB array; floats must be in [0, 255]."""
    from .frames import _read_image

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


def read_clip(inputs, at_least: int = 2, last: int | None = None) -> list[np.ndarray]:
    """The frames of `inputs` (a `ClipInput`, a (T, ...) array or tensor, a frame folder or a video file) as
    (H, W, 3) uint8 arrays: all of them, or the `last` N (what a model that predicts from the last N frames reads).
    At least `at_least` frames, all of one size."""
    from .frames import find_clips, read_video_frames

    why = "" if last is None else f"the model predicts from the last {last}: "
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(os.path.expanduser(os.fspath(inputs)))
        clips = find_clips(path)  # names a missing path, a non-video file, an unreadable video
        if len(clips) != 1:
            raise ValueError(f"{str(path)!r} holds {len(clips)} clips ({', '.join(c.name for c in clips[:4])}); pass "
                             "one clip: a folder of frames or one video file")
        clip = clips[0]
        if clip.num_frames < at_least:
            raise ValueError(f"clip {str(path)!r} has {clip.num_frames} frame(s); {why}pass a clip of at least "
                             f"{at_least} frames")
        start = 0 if last is None else max(0, clip.num_frames - last)
        if clip.kind == "video":
            return list(read_video_frames(clip.source, range(start, clip.num_frames)))
        frames = list(clip.files[start:])
    elif isinstance(inputs, ClipInput):
        frames = inputs.frames
    elif isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 4:
        frames = list(inputs)
    else:
        raise ValueError(f"cannot read frames from a {type(inputs).__name__}; pass a list of frames (PIL images, "
                         "(H, W, 3) arrays, image paths), a folder of frames or a video file")
    if len(frames) < at_least:
        raise ValueError(f"got {len(frames)} frame(s); {why}pass at least {at_least} consecutive frames")
    if last is not None:
        frames = frames[-last:]
    arrays = [frame_array(frame, i) for i, frame in enumerate(frames)]
    sizes = [a.shape[:2] for a in arrays]
    if len(set(sizes)) > 1:
        first = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise ValueError(f"the frames differ in size: {sizes[0][1]}x{sizes[0][0]} and {sizes[first][1]}x"
                         f"{sizes[first][0]} (WxH); pass frames of one clip, all of one size")
    return arrays
