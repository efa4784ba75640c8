"""Training samples for video frame interpolation, from frame folders and video files (the windows of
`adlr_hf.data.frames`), the way the reference samples them.

Paper: Reda et al., "Unsupervised Video Interpolation Using Cycle Consistency", arXiv 1906.05928. Reference:
NVIDIA/unsupervised-video-interpolation, `datasets/VideoInterp.py`:

- supervised (`VideoInterp`): frames s + i·sample_rate for i = 0 … num_interp + 1 (a high-frame-rate clip seen at
  1/(num_interp + 1) of its rate); the target index k is drawn from 1 … num_interp, the sample is (frame 0, frame k,
  frame num_interp + 1) at t = k / (num_interp + 1);
- cycle (`CycleVideoInterp`): the triplet s, s + o, s + 2o with o = max(1, sample_rate) + sample_rate·num_interp
  (consecutive frames of the low-frame-rate clip for sample_rate 0), at t = k / (num_interp + 1) with k drawn the same
  way: P01 and P12 are interpolated at t, the middle frame reconstructed at 1 - t;
- windows start every `stride` frames (the reference's `step_size`); a window played backwards (probability 1/2)
  has t replaced by 1 - t, as the reference flips its target index.

Deviations from the reference: the random crop, reversal, flip and target index come from generators seeded by
(seed, epoch, window_id), so a resumed run replays them exactly (the reference draws from global RNGs); evaluation
samples (`random=False`) take the middle index (num_interp + 1) // 2 (the reference's validation-loss index), or the
triplet's middle frame at t = 0.5 in the cycle regime.
"""

from __future__ import annotations

import os

import datasets
import numpy as np
import torch

from ..checks import check_int
from .frames import FrameWindowTransform, frames_collate, load_frame_windows, read_window

__all__ = ["InterpWindowTransform", "interp_collate", "load_interp_windows", "sample_offsets"]


def sample_offsets(num_interp: int, sample_rate: int, cycle: bool) -> list[int]:
    """Frame offsets of one sample from its first frame (see the module docstring)."""
    check_int("num_interp", num_interp, 1)
    if cycle:
        check_int("sample_rate", sample_rate, 0)
        offset = max(1, sample_rate) + sample_rate * num_interp
        return [0, offset, 2 * offset]
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"sample_rate={sample_rate!r} must be an integer >= 1 for supervised samples (frames are "
                         "taken every sample_rate frames; 0 would make the target one of the inputs)")
    return [i * sample_rate for i in range(num_interp + 2)]


def load_interp_windows(root: str | os.PathLike, offsets: list[int], stride: int = 1) -> datasets.Dataset:
    """The windows of `load_frame_windows` spanning offsets[-1] + 1 frames, starting every `stride` frames, each
    keeping only the frames at `offsets` (columns as `load_frame_windows`)."""
    windows = load_frame_windows(root, window=offsets[-1] + 1, stride=stride)
    columns = windows.to_dict()
    for key in ("files", "frame_index"):
        columns[key] = [[values[o] for o in offsets] if values else [] for values in columns[key]]
    return datasets.Dataset.from_dict(columns, features=windows.features)


class InterpWindowTransform:
    """Decodes rows of `load_interp_windows` into {"frames": uint8 (3, 3, h, w) (first, target, last), "timestep"
    (float), "clip", "frame_index", "window_id"}.

    `cycle`: rows are triplets (all three frames are read); otherwise rows hold num_interp + 2 frames and only the
    first, the target and the last are read. `random=True` (training): target index and augmentation from
    (seed, epoch, window_id); `random=False`: the middle index, centre crops, no reversal or flip."""

    def __init__(self, num_interp: int, cycle: bool, crop_size=None, *, random: bool = True, reverse: bool = False,
                 flip: bool = False, seed: int = 0, epoch: int = 0):
        self.num_interp = check_int("num_interp", num_interp, 1)
        self.cycle, self.random = bool(cycle), bool(random)
        self.frames = FrameWindowTransform(crop_size, random_crop=random, reverse=reverse and random,
                                           flip=flip and random, seed=seed, epoch=epoch)

    def set_epoch(self, epoch: int) -> None:
        self.frames.set_epoch(epoch)

    def target_index(self, window_id: int) -> int:
        """k in 1 … num_interp: drawn from (seed, epoch, window_id) in training, the middle one otherwise."""
        if not self.random:
            return (self.num_interp + 1) // 2
        seeds = np.random.SeedSequence([self.frames.seed, self.frames.epoch, int(window_id), 1])
        state = seeds.generate_state(2, dtype=np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        return 1 + int(torch.randint(0, self.num_interp, (1,), generator=generator))

    def apply(self, row: dict) -> tuple[torch.Tensor, float, list[int]]:
        """(uint8 (3, 3, h, w) frames, t, the frame indices read) of one row."""
        k = self.target_index(row["window_id"])
        t = k / (self.num_interp + 1)
        if self.cycle:
            t = t if self.random else 0.5  # evaluation: the middle frame of the triplet, from its ends
        else:
            keep = [0, k, len(row["frame_index"]) - 1]
            row = {**row, "frame_index": [row["frame_index"][i] for i in keep],
                   "files": [row["files"][i] for i in keep] if row["files"] else []}
        frames, backwards = self.frames.apply(read_window(row), row["window_id"])
        index = list(row["frame_index"])
        return frames, (1.0 - t if backwards else t), index[::-1] if backwards else index

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = {"frames": [], "timestep": [], "clip": batch["clip"], "frame_index": [], "window_id": batch["window_id"]}
        for values in zip(*batch.values()):
            frames, t, index = self.apply(dict(zip(batch, values)))
            out["frames"].append(frames)
            out["timestep"].append(t)
            out["frame_index"].append(index)
        return out


def interp_collate(examples: list[dict], triplets: bool = False) -> dict[str, torch.Tensor]:
    """Decoded samples -> {"pixel_values_videos": uint8 (B, 2, 3, h, w) (first, last) or (B, 3, 3, h, w) with
    `triplets` (a cycle step), "labels": float32 (B, 3, h, w) the middle frame, "timesteps": float32 (B, 1)}."""
    frames = frames_collate(examples)["frames"]
    timesteps = torch.tensor([[float(ex["timestep"])] for ex in examples], dtype=torch.float32)
    inputs = frames if triplets else frames[:, [0, 2]]
    return {"pixel_values_videos": inputs, "labels": frames[:, 1].float(), "timesteps": timesteps}
