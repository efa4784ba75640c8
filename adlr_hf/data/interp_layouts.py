"""The layouts of the frame-interpolation evaluation sets the reference scores on, as samples of two input frames
and the ground-truth frames between them.

Paper: Reda et al., "Unsupervised Video Interpolation Using Cycle Consistency", arXiv 1906.05928. Reference:
NVIDIA/unsupervised-video-interpolation, README and `eval.py` (`VideoInterp` with sample_rate 1 and step
num_interp + 1: windows of num_interp + 2 frames, the first and last are the inputs).

- "triplets" (UCF101, Middlebury, DAVIS; num_interp 1): either `input/<sequence>/` with the two input frames and
  `gt/<sequence>/` with the middle frame (frame10, frame11 and frame10i11 in the Middlebury / DAVIS sets), or one
  folder per sequence holding three frames whose natural name order is (input, ground truth, input), as the
  reference reads UCF101 (`frame10`, `frame10i11`, `frame11` sort that way).
- "slowflow" (num_interp 7): the first num_interp + 2 frames of every clip: inputs 1 and 9, frames 2-8 the targets
  (the reference's SlowFlow test split: the first 9 frames of each of its 46 clips, 30 -> 240 fps).
- "sintel" (num_interp 41): every window of num_interp + 2 frames, windows starting every num_interp + 1 frames
  (Sintel-1008fps: 43-frame clips, one window each, 24 -> 1008 fps).

Clips are frame folders or video files found by `find_clips`; the reference downsamples SlowFlow and Sintel 2x
before evaluating, which is left to the data (pass the downsampled frames). Every missing or miscounted file is one
error naming the clip and the expected layout, raised before any model runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import check_int
from .frames import IMAGE_EXTENSIONS, find_clips, natural_key

__all__ = ["DEFAULT_NUM_INTERP", "LAYOUTS", "InterpSample", "find_interp_samples", "read_sample_frames"]

LAYOUTS = ("triplets", "slowflow", "sintel")
DEFAULT_NUM_INTERP = {"triplets": 1, "slowflow": 7, "sintel": 41}


@dataclass(frozen=True)
class InterpSample:
    """Two input frames, the ground-truth frames between them and their times. A frame is an image path or a
    (video path, frame index) pair."""

    clip: str
    inputs: tuple
    targets: tuple
    timesteps: tuple[float, ...]


def _images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: natural_key(p.name))


def _clip_frames(clip) -> list:
    return list(clip.files) if clip.kind == "frames" else [(clip.source, i) for i in range(clip.num_frames)]


def _split_triplets(root: Path) -> list[InterpSample]:
    inputs, truth = root / "input", root / "gt"
    if not truth.is_dir():
        raise FileNotFoundError(f"layout triplets: {str(root)!r} has input/ but no gt/ folder; put the ground-truth "
                                "middle frame of each input/<sequence>/ in gt/<sequence>/")
    samples = []
    for clip in find_clips(inputs):
        frames = _clip_frames(clip)
        if len(frames) != 2:
            raise ValueError(f"layout triplets: input/{clip.name} has {len(frames)} frames; each input/<sequence>/ "
                             "holds the two input frames (e.g. frame10, frame11)")
        gt_folder = truth / clip.name
        gt = _images(gt_folder) if gt_folder.is_dir() else []
        if len(gt) != 1:
            raise FileNotFoundError(f"layout triplets: {str(gt_folder)!r} holds {len(gt)} images; it must hold the "
                                    f"one ground-truth middle frame of input/{clip.name} (e.g. frame10i11.png)")
        samples.append(InterpSample(clip.name, tuple(frames), (str(gt[0]),), (0.5,)))
    return samples


def find_interp_samples(root: str | os.PathLike, layout: str = "triplets",
                        num_interp: int | None = None) -> list[InterpSample]:
    """The samples of the evaluation set under `root` in `layout` (see the module docstring)."""
    if layout not in LAYOUTS:
        raise ValueError(f"--layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    num_interp = DEFAULT_NUM_INTERP[layout] if num_interp is None else check_int("num_interp", num_interp, 1)
    root = Path(os.path.expanduser(os.fspath(root)))
    if not root.exists():
        raise FileNotFoundError(f"evaluation data {str(root)!r} does not exist; pass the folder of the evaluation set")
    if layout == "triplets":
        if num_interp != 1:
            raise ValueError(f"layout triplets has one frame between its inputs; got num_interp={num_interp} (use "
                             "layout slowflow or sintel for more)")
        if (root / "input").is_dir():
            return _split_triplets(root)
    elif (root / "input").is_dir() and (root / "gt").is_dir():
        raise ValueError(f"layout {layout}: {str(root)!r} holds input/ and gt/ folders, the triplets layout "
                         f"(Middlebury / DAVIS); pass --layout triplets, or point at a folder of {layout} clips")
    count = num_interp + 2
    times = tuple(i / (num_interp + 1) for i in range(1, num_interp + 1))
    samples = []
    for clip in find_clips(root):
        frames = _clip_frames(clip)
        if layout == "triplets" and len(frames) != 3:
            raise ValueError(f"layout triplets: clip {clip.name!r} has {len(frames)} frames; each sequence folder "
                             "holds three (input, ground truth, input in natural name order: frame10, frame10i11, "
                             "frame11), or use input/<sequence>/ + gt/<sequence>/")
        if len(frames) < count:
            raise ValueError(f"layout {layout}: clip {clip.name!r} has {len(frames)} frames; it needs num_interp + 2 "
                             f"= {count} (two inputs and {num_interp} ground-truth frames between them)")
        starts = [0] if layout != "sintel" else range(0, len(frames) - count + 1, count - 1)
        for start in starts:
            window = frames[start:start + count]
            samples.append(InterpSample(clip.name, (window[0], window[-1]), tuple(window[1:-1]), times))
    return samples


def read_sample_frames(frames) -> np.ndarray:
    """Frames (image paths or (video, index) pairs) as an (N, H, W, 3) uint8 RGB array, one size checked."""
    from .frames import _read_image, read_video_frames

    arrays = []
    for frame in frames:
        if isinstance(frame, tuple):
            arrays.append(read_video_frames(frame[0], [frame[1]])[0])
        else:
            arrays.append(_read_image(frame))
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        names = [f if isinstance(f, str) else f"{f[0]}#{f[1]}" for f in frames]
        raise ValueError(f"frames of one sample differ in size ({sorted(s[1::-1] for s in sizes)}, WxH): {names}; "
                         "every input and ground-truth frame of a sample must have one size")
    return np.stack(arrays)
