"""Training pairs for unsupervised landmark learning: clips of frames (frame folders or video files, through
`adlr_hf.data.frames`) with optional rough per-frame boxes; each sample is a frame A, colour-jittered for the pose
branch, an appearance frame (another frame of the clip 3-40 frames away, and/or A warped by a random thin-plate
spline) and the target A.

Reference: NVIDIA/UnsupervisedLandmarkLearning, `dataloaders/base_datasets.py` (`sample_temporal`, colour jitter
0.4/0.4/0.4/0.3, TPS warp, `Normalize((0.5,)*3, (0.5,)*3)`), `dataloaders/bbc_pose_dataset.py` (crop around the box
of frame A ± 60 px, clipped to the frame, applied to both frames, resized to `img_size` squared whatever the
box's aspect).

Boxes (optional): `boxes.json` in a clip folder, or `<video>.boxes.json` beside a video: a list with one
[x_min, y_min, x_max, y_max] (pixels) or null per frame. Without a box the centred square of the frame is used (as
the landmark-dynamics task and the pipeline read frames).

Deviations from the reference:
- the partner frame is drawn among the frames `gap_min`..`gap_max` away on either side (the reference looks forward
  only, backward near a clip's end), so every frame of a clip longer than `gap_min` has partners;
- every random choice (partner, jitter, warp) comes from a generator seeded by (seed, epoch, sample), so an epoch
  replays exactly on resume;
- with both appearance sources (`both`) a sample holds the two pairs (the reference concatenates two batches).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from .frames import Clip, _read_image, find_clips, read_video_frames
from .tps import random_tps_targets, tps_grid, tps_warp

__all__ = ["APPEARANCE_SOURCES", "LandmarkPairs", "check_gaps", "clip_boxes", "landmark_collate", "load_landmark_clips"]

APPEARANCE_SOURCES = ("temporal", "warped", "both")
BOX_MARGIN = 60  # pixels around a box (the reference's BBC loader)
JITTER = (0.4, 0.4, 0.4, 0.3)  # brightness, contrast, saturation, hue (the reference's ColorJitter)


def clip_boxes(clip: Clip) -> list | None:
    """The clip's per-frame boxes, or None when it has no box file; one clear error for a malformed file."""
    path = Path(clip.source) / "boxes.json" if clip.kind == "frames" else Path(clip.source + ".boxes.json")
    if not path.is_file():
        return None
    try:
        boxes = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not readable JSON ({err}); write a list of [x_min, y_min, x_max, y_max] "
                         "or null per frame") from None
    if not isinstance(boxes, list) or len(boxes) != clip.num_frames:
        raise ValueError(f"{str(path)!r} must list one box (or null) per frame: clip {clip.name!r} has "
                         f"{clip.num_frames} frames, the file {len(boxes) if isinstance(boxes, list) else 'no list'}")
    for i, box in enumerate(boxes):
        if box is not None and (not isinstance(box, list) or len(box) != 4 or not box[0] < box[2]
                                or not box[1] < box[3]):
            raise ValueError(f"{str(path)!r}: box {i} is {box!r}; a box is [x_min, y_min, x_max, y_max] with "
                             "x_min < x_max and y_min < y_max (or null)")
    return boxes


@dataclass(frozen=True)
class ClipFrames:
    """The frames [start, stop) of a clip that one split may pair."""

    clip: Clip
    boxes: list | None
    start: int
    stop: int


def check_gaps(paths, gap_min: int, gap_max: int) -> list[Clip]:
    """The clips under `paths`, after checking the gap bounds and that every clip gives a pair of frames `gap_min`
    apart (one error naming the clip otherwise); reads file headers only."""
    if not 1 <= gap_min <= gap_max:
        raise ValueError(f"--gap-min {gap_min} and --gap-max {gap_max} must satisfy 1 <= gap-min <= gap-max (3 and "
                         "40 in the reference)")
    clips = [clip for path in paths for clip in find_clips(path)]
    for clip in clips:
        if clip.num_frames <= gap_min:
            raise ValueError(f"clip {clip.name!r} ({clip.source}) has {clip.num_frames} frames, too short for "
                             f"--gap-min {gap_min} (pairs need frames {gap_min} apart); lower --gap-min below "
                             f"{clip.num_frames} or remove the clip")
        clip_boxes(clip)
    return clips


def load_landmark_clips(paths, gap_min: int, gap_max: int, eval_fraction: float):
    """(training parts, held-out parts) of every clip under `paths`: the last max(gap_min + 1, ⌈fraction·n⌉) frames
    of a clip are held out when at least gap_min + 1 frames stay for training. A clip that cannot give a pair of
    frames `gap_min` apart is an error naming it."""
    train, held = [], []
    for clip in check_gaps(paths, gap_min, gap_max):
        boxes = clip_boxes(clip)
        n, cut = clip.num_frames, clip.num_frames
        if eval_fraction > 0:
            held_frames = max(gap_min + 1, math.ceil(eval_fraction * n))
            if n - held_frames >= gap_min + 1:
                cut = n - held_frames
                held.append(ClipFrames(clip, boxes, cut, n))
        train.append(ClipFrames(clip, boxes, 0, cut))
    return train, held


def _frames(clip: Clip, indices: list[int]) -> list[np.ndarray]:
    order = sorted(set(indices))
    if clip.kind == "video":
        decoded = dict(zip(order, read_video_frames(clip.source, order)))
    else:
        decoded = {i: _read_image(clip.files[i]) for i in order}
    return [decoded[i] for i in indices]


def _crop_box(part: ClipFrames, index: int, height: int, width: int):
    """(top, left, bottom, right) of the crop for frame `index`: its box ± BOX_MARGIN clipped to the frame, or the
    centred square of the frame."""
    box = part.boxes[index] if part.boxes is not None else None
    if box is None:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return top, left, top + side, left + side
    left, top = max(0, int(round(box[0] - BOX_MARGIN))), max(0, int(round(box[1] - BOX_MARGIN)))
    right, bottom = min(width, int(round(box[2] + BOX_MARGIN))), min(height, int(round(box[3] + BOX_MARGIN)))
    if right - left < 2 or bottom - top < 2:
        raise ValueError(f"box {box} of frame {index} of clip {part.clip.name!r} lies outside its {width}x{height} "
                         "frame; fix boxes.json")
    return top, left, bottom, right


def _uniform(generator, low, high) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def colour_jitter(frame: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """torchvision's ColorJitter(0.4, 0.4, 0.4, 0.3) on a (3, H, W) frame in [0, 1], its factors and order drawn from
    `generator`."""
    b, c, s, h = JITTER
    factors = [_uniform(generator, max(0, 1 - b), 1 + b), _uniform(generator, max(0, 1 - c), 1 + c),
               _uniform(generator, max(0, 1 - s), 1 + s), _uniform(generator, -h, h)]
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in torch.randperm(4, generator=generator).tolist():
        frame = ops[i](frame, factors[i])
    return frame


class LandmarkPairs(torch.utils.data.Dataset):
    """One sample per frame of the parts that has a partner: {"pixel_values_videos": (P, 2, 3, S, S) (pose frame,
    appearance frame), "labels": (P, 3, S, S)}, all in [-1, 1], P = 2 pairs with `both` sources, else 1. `random`
    draws the partner, jitter and warp from (seed, epoch, sample); otherwise (evaluation) the partner is the frame
    gap_min before (else the one gap_min after) and nothing is jittered or warped."""

    def __init__(self, parts, size: int, gap_min: int, gap_max: int, source: str = "temporal", random: bool = True,
                 seed: int = 0):
        if source not in APPEARANCE_SOURCES:
            raise ValueError(f"appearance source {source!r} is not one of {APPEARANCE_SOURCES}")
        self.parts, self.size, self.gap_min, self.gap_max = list(parts), size, gap_min, gap_max
        self.source, self.random, self.seed, self.epoch = source, random, seed, 0
        # (part, frame) of every frame that has a partner gap_min..gap_max away in its part (every frame when the
        # appearance is only the warped frame itself)
        self.samples = [(i, f) for i, part in enumerate(self.parts) for f in range(part.start, part.stop)
                        if source == "warped" or self._partners(part, f)]

    def __len__(self) -> int:
        return len(self.samples)

    def _partners(self, part: ClipFrames, frame: int) -> list[int]:
        """Frames gap_min..gap_max away from `frame` within the part (only gap_min away for evaluation)."""
        gaps = range(self.gap_min, self.gap_max + 1) if self.random else (self.gap_min,)
        return [frame + s * d for d in gaps for s in (-1, 1) if part.start <= frame + s * d < part.stop]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _generator(self, index: int) -> torch.Generator:
        seed = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(seed))

    def _partner(self, part: ClipFrames, frame: int, generator) -> int:
        choices = self._partners(part, frame)
        if not self.random:
            return choices[0]  # the frame gap_min before, else the one gap_min after
        return choices[int(torch.randint(len(choices), (), generator=generator))]

    def _to_model(self, frame: torch.Tensor) -> torch.Tensor:
        """(3, h, w) in [0, 1] -> (3, S, S) in [-1, 1] (bilinear resize, antialiased, as PIL's Resize)."""
        frame = TF.resize(frame, [self.size, self.size], antialias=True)
        return frame.clamp(0, 1) * 2 - 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        which, frame = self.samples[index]
        part = self.parts[which]
        generator = self._generator(index)
        partner = self._partner(part, frame, generator) if self.source != "warped" else frame
        image, other = _frames(part.clip, [frame, partner])
        top, left, bottom, right = _crop_box(part, frame, *image.shape[:2])  # frame A's box for both frames
        crop = lambda a: torch.from_numpy(np.ascontiguousarray(a[top:bottom, left:right])).permute(2, 0, 1) \
            .float() / 255  # noqa: E731
        target = self._to_model(crop(image))
        pose = self._to_model(colour_jitter(crop(image), generator)) if self.random else target
        appearances = []
        if self.source in ("temporal", "both"):
            appearances.append(self._to_model(crop(other)))
        if self.source in ("warped", "both"):
            grid = tps_grid(self.size, self.size)
            moved = random_tps_targets(grid, generator) if self.random else grid
            appearances.append(tps_warp(target, grid, moved))
        pairs = torch.stack([torch.stack((pose, look)) for look in appearances])
        return {"pixel_values_videos": pairs, "labels": target.unsqueeze(0).expand(len(appearances), -1, -1, -1)}


def landmark_collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Samples -> one batch, the pairs of every sample concatenated: (B·P, 2, 3, S, S) and (B·P, 3, S, S)."""
    return {key: torch.cat([e[key] for e in examples]).contiguous() for key in ("pixel_values_videos", "labels")}
