"""Frame data for the video families: clips from frame folders and video files as `datasets` datasets of
(T+1)-frame windows, decoded lazily, with a crop, time reversal and flip shared by every frame of a window.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/datasets/frame_loader.py` (`FrameLoader`): a root of
per-video frame folders, natural-sorted, each sample T+1 consecutive frames with one static random crop.

Layouts under `root` (found recursively; hidden entries and other files such as SOURCE.md are ignored):
- a clip folder: any folder that directly holds image files (.png, .jpg, ...); its frames in natural order of their
  file names (frame2 before frame10). `root` itself may be one (`video-frames/sam2-bedroom`), or hold several
  (`video-frames/`), at any depth (`vfi-davis-dev/input/<sequence>/frame10.png`; clip name "input/<sequence>").
- a video file (.mp4, .avi, .mov, .mkv, .webm, .m4v), decoded with PyAV (its wheel bundles FFmpeg); `root` may be one.
Windows start every `stride` frames (the reference's `sample_rate`): frames [s, s + window) for s = 0, stride, ...
while they fit in the clip.

Rows hold paths and frame indices only (columns clip, kind, source, files, frame_index, height, width, window_id);
frames are decoded when a row is read through `FrameWindowTransform` (or `read_window`).
Deviations from the reference:
- frames are RGB everywhere (the reference reads BGR with cv2 and feeds FlowNet2 BGR, a FIXME there); a model
  converted from reference weights must flip channels itself;
- the crop, the time reversal (the reference's training augmentation) and the horizontal flip (not in the reference)
  come from a generator seeded by (seed, epoch, window_id), so a window's augmentation is reproducible and a resumed
  run replays it exactly (the reference draws from the global RNGs of each worker);
- the last window that fits is kept (the reference counts (n - T) // sample_rate windows, which can leave it out);
- padding to a multiple of the model's stride (the reference pads in the loader) is left to the model's processor;
- clips shorter than the window are skipped with a warning; a clip of a single frame is an error (it is not video).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader

from .sampling import check_int, make_dp_dataloader

__all__ = [
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "Clip", "FrameWindowTransform", "crop_window", "find_clips",
    "frames_collate", "load_frame_windows", "make_frames_dataloader", "natural_key", "read_video_frames",
    "read_window", "with_frame_transform",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

_FEATURES = datasets.Features({
    "clip": datasets.Value("string"),
    "kind": datasets.Value("string"),
    "source": datasets.Value("string"),
    "files": datasets.Sequence(datasets.Value("string")),
    "frame_index": datasets.Sequence(datasets.Value("int64")),
    "height": datasets.Value("int64"),
    "width": datasets.Value("int64"),
    "window_id": datasets.Value("int64"),
})


def natural_key(name: str) -> tuple:
    """Sort key treating digit runs as numbers: frame2 < frame10 (natsort's order for plain file names)."""
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part.lower())
                 for part in re.split(r"(\d+)", name) if part)


@dataclass(frozen=True)
class Clip:
    """One clip: a folder of frames (`files` in time order) or a video file (`files` empty)."""
    name: str
    kind: str  # "frames" or "video"
    source: str
    files: tuple[str, ...]
    num_frames: int
    height: int
    width: int


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _frame_folder_clip(folder: Path, name: str, images: list[Path]) -> Clip:
    images = sorted(images, key=lambda p: natural_key(p.name))
    if len(images) == 1:
        raise ValueError(f"clip {name!r} ({str(folder)!r}) has only one frame ({images[0].name}); a clip needs at "
                         "least 2 consecutive frames: pass a folder that holds only clips (one level above the frame "
                         "folders you mean), or move single images out of the data folder")
    size = None
    for image in images:
        try:
            with Image.open(image) as img:  # reads the header only
                this = img.size
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"frame {str(image)!r} of clip {name!r} is not a readable image ({err}); replace or "
                             "remove it") from None
        if size is None:
            size, first = this, image
        elif this != size:
            raise ValueError(f"clip {name!r} mixes frame sizes: {first.name} is {size[0]}x{size[1]} but {image.name} "
                             f"is {this[0]}x{this[1]} (WxH); resize its frames to one size or split it into clips")
    return Clip(name, "frames", str(folder), tuple(str(p) for p in images), len(images), size[1], size[0])


def _import_av():
    try:
        import av
    except ImportError:
        raise ImportError("reading video files needs PyAV: pip install av") from None
    return av


@functools.lru_cache(maxsize=256)
def _video_index(path: str, mtime_ns: int, size: int) -> tuple[int, int, int, tuple[int, ...] | None]:
    """(num_frames, height, width, sorted presentation timestamps or None) of a video's first video stream, from
    its packets (no decoding, except one frame to prove the stream decodes). Cached per file version."""
    av = _import_av()
    pts, first, counted = None, None, None
    try:
        with av.open(path) as container:
            if container.streams.video:
                stream = container.streams.video[0]
                pts = [p.pts for p in container.demux(stream) if p.size > 0]
        if pts is not None:
            with av.open(path) as container:
                frames = container.decode(container.streams.video[0])
                first = next(frames, None)
                if first is not None and any(t is None for t in pts):  # no packet timestamps: count by decoding
                    counted = 1 + sum(1 for _ in frames)
    except (av.error.FFmpegError, OSError) as err:
        raise ValueError(f"video file {path!r} cannot be read ({type(err).__name__}: {err}); check that it is a "
                         "complete video, or re-encode it (e.g. with ffmpeg)") from None
    if pts is None:
        raise ValueError(f"video file {path!r} has no video stream; pass a video with a picture track")
    if first is None:
        raise ValueError(f"video file {path!r} has no decodable frame; re-encode it (e.g. with ffmpeg)")
    if counted is not None:
        return counted, first.height, first.width, None
    return len(pts), first.height, first.width, tuple(sorted(pts))


def _video_clip(path: Path, name: str) -> Clip:
    stat = path.stat()
    num_frames, height, width, _ = _video_index(str(path), stat.st_mtime_ns, stat.st_size)
    if num_frames < 2:
        raise ValueError(f"video {name!r} ({str(path)!r}) has {num_frames} frame(s); a clip needs at least 2")
    return Clip(name, "video", str(path), (), num_frames, height, width)


def find_clips(root: str | os.PathLike) -> list[Clip]:
    """Every clip under `root` (a clip folder, a video file, or a folder holding them at any depth), in natural order
    of their relative paths."""
    root = Path(os.path.expanduser(os.fspath(root)))
    if not root.exists():
        raise FileNotFoundError(f"frame data {str(root)!r} does not exist; pass a folder of clip folders (frames) or "
                                "video files, or one video file")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTENSIONS:
            raise ValueError(f"{str(root)!r} is a file but not a video ({', '.join(VIDEO_EXTENSIONS)}); pass a video "
                             "or a folder of frames")
        return [_video_clip(root, root.name)]
    clips = []
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = sorted((d for d in subdirs if not d.startswith(".")), key=natural_key)
        folder = Path(folder)
        rel = folder.relative_to(root).as_posix()
        paths = [folder / f for f in files if not f.startswith(".")]
        images = [p for p in paths if p.suffix.lower() in IMAGE_EXTENSIONS]
        if images:
            clips.append(_frame_folder_clip(folder, root.name if rel == "." else rel, images))
        videos = sorted((p for p in paths if p.suffix.lower() in VIDEO_EXTENSIONS), key=lambda p: natural_key(p.name))
        for video in videos:
            clips.append(_video_clip(video, video.relative_to(root).as_posix()))
    if not clips:
        raise FileNotFoundError(f"no frames or videos under {str(root)!r}: expected <root>/<clip>/<frame>.png|.jpg "
                                f"(frames in natural name order) or video files ({', '.join(VIDEO_EXTENSIONS)})")
    return sorted(clips, key=lambda c: natural_key(c.name))


def load_frame_windows(root: str | os.PathLike, window: int = 3, stride: int = 1) -> datasets.Dataset:
    """A dataset of `window`-frame windows (T+1 frames: T inputs and the target) over every clip under `root`,
    starting every `stride` frames. Rows hold paths and frame indices; decode with `FrameWindowTransform`."""
    check_int("window", window, 2)
    check_int("stride", stride, 1)
    clips = find_clips(root)
    columns = {name: [] for name in _FEATURES}
    short = []
    for clip in clips:
        if clip.num_frames < window:
            short.append(f"{clip.name} ({clip.num_frames})")
            continue
        for start in range(0, clip.num_frames - window + 1, stride):
            index = list(range(start, start + window))
            columns["clip"].append(clip.name)
            columns["kind"].append(clip.kind)
            columns["source"].append(clip.source)
            columns["files"].append([clip.files[i] for i in index] if clip.kind == "frames" else [])
            columns["frame_index"].append(index)
            columns["height"].append(clip.height)
            columns["width"].append(clip.width)
            columns["window_id"].append(len(columns["window_id"]))
    if not columns["clip"]:
        longest = max(c.num_frames for c in clips)
        raise ValueError(f"no clip under {str(root)!r} has window={window} frames (the longest has {longest}); use "
                         f"window <= {longest} or longer clips")
    if short:
        logger.warning("skipping %d clip(s) shorter than window=%d: %s", len(short), window, ", ".join(short))
    return datasets.Dataset.from_dict(columns, features=_FEATURES)


def read_video_frames(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Frames `indices` (increasing, in presentation order) of a video as a (len, H, W, 3) uint8 RGB array.
    Seeks to the keyframe before the first one when the container has timestamps, else decodes from the start."""
    av = _import_av()
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file {path!r} does not exist")
    indices = [int(i) for i in indices]
    if not indices or any(b <= a for a, b in zip(indices, indices[1:])) or indices[0] < 0:
        raise ValueError(f"frame indices {indices} must be non-empty, non-negative and increasing")
    stat = os.stat(path)
    num_frames, _, _, pts = _video_index(path, stat.st_mtime_ns, stat.st_size)
    if indices[-1] >= num_frames:
        raise ValueError(f"frame {indices[-1]} is past the end of {path!r} ({num_frames} frames)")
    frames: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        if pts is not None:
            wanted = {pts[i]: i for i in indices}
            container.seek(pts[indices[0]], stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts in wanted:
                    frames[wanted[frame.pts]] = frame.to_ndarray(format="rgb24")
                if frame.pts is None or frame.pts >= pts[indices[-1]]:
                    break
        if len(frames) < len(indices):  # no timestamps, or the seek overshot: count frames from the start
            frames.clear()
            container.seek(0, stream=stream, backward=True, any_frame=False)
            wanted_set = set(indices)
            for position, frame in enumerate(container.decode(stream)):
                if position in wanted_set:
                    frames[position] = frame.to_ndarray(format="rgb24")
                if position >= indices[-1]:
                    break
    if len(frames) < len(indices):
        missing = sorted(set(indices) - set(frames))
        raise ValueError(f"video {path!r} did not yield frames {missing}; re-encode it (e.g. with ffmpeg)")
    out = [frames[i] for i in indices]
    if len({f.shape for f in out}) != 1:
        raise ValueError(f"video {path!r} changes frame size within frames {indices}: {sorted({f.shape for f in out})}")
    return np.stack(out)


def _read_image(path: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"frame {path!r} does not exist (was the data folder changed after loading?)") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"frame {path!r} is not a readable image ({err}); replace or remove it") from None


def read_window(row: dict[str, Any]) -> np.ndarray:
    """The frames of one dataset row as a (T+1, H, W, 3) uint8 RGB array."""
    if row["kind"] == "video":
        return read_video_frames(row["source"], row["frame_index"])
    frames = [_read_image(f) for f in row["files"]]
    if len({f.shape for f in frames}) != 1:
        raise ValueError(f"clip {row['clip']!r} mixes frame sizes within one window: "
                         f"{[f.shape[1::-1] for f in frames]} (WxH); resize its frames to one size")
    return np.stack(frames)


def _crop_size(crop_size) -> tuple[int, int] | None:
    if crop_size is None:
        return None
    size = (crop_size, crop_size) if isinstance(crop_size, int) and not isinstance(crop_size, bool) else crop_size
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)):
        raise ValueError(f"crop_size={crop_size!r} must be a positive int or an (height, width) pair of them")
    return int(size[0]), int(size[1])


def crop_window(frames: np.ndarray, size, generator: torch.Generator | None = None) -> np.ndarray:
    """One crop of `size` (int or (h, w)) at the same place in every frame of a (T+1, H, W, C) window: at a random
    place drawn from `generator`, or centred when `generator` is None."""
    size = _crop_size(size)
    height, width = frames.shape[1:3]
    if size[0] > height or size[1] > width:
        raise ValueError(f"crop {size[0]}x{size[1]} (HxW) is larger than the frames, {height}x{width}; use a smaller "
                         "crop_size")
    if generator is None:
        top, left = (height - size[0]) // 2, (width - size[1]) // 2
    else:
        top = int(torch.randint(0, height - size[0] + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size[1] + 1, (1,), generator=generator))
    return frames[:, top:top + size[0], left:left + size[1]]


class FrameWindowTransform:
    """Decodes dataset rows into {"frames": uint8 (T+1, 3, h, w) RGB tensor, "clip", "frame_index", "window_id"}.

    crop_size: None (full frames), an int or (h, w); random_crop: a random place per window (training) or the centre
    (evaluation); reverse: play the window backwards with probability 1/2 (the reference's training augmentation;
    "frame_index" is reversed with it); flip: a horizontal flip of the whole window with probability 1/2.
    Randomness comes from a generator seeded by (seed, epoch, window_id): call `set_epoch(e)` each epoch for fresh
    draws; the same (seed, epoch) replays the same crops in any worker and after a resume. Flips and reversals change
    the motion: compute flows after them."""

    def __init__(self, crop_size=None, *, random_crop: bool = True, reverse: bool = False, flip: bool = False,
                 seed: int = 0, epoch: int = 0):
        self.crop_size = _crop_size(crop_size)
        check_int("seed", seed, 0)
        self.random_crop, self.reverse, self.flip, self.seed = bool(random_crop), bool(reverse), bool(flip), seed
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        check_int("epoch", epoch, 0)
        self.epoch = epoch

    def generator(self, window_id: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, self.epoch, int(window_id)]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def apply(self, frames: np.ndarray, window_id: int) -> tuple[torch.Tensor, bool]:
        """One decoded (T+1, H, W, 3) window -> (uint8 (T+1, 3, h, w) tensor, whether it was played backwards)."""
        gen = self.generator(window_id)
        if self.crop_size is not None:
            frames = crop_window(frames, self.crop_size, gen if self.random_crop else None)
        backwards = self.reverse and bool(torch.rand((), generator=gen) < 0.5)
        if backwards:
            frames = frames[::-1]
        if self.flip and bool(torch.rand((), generator=gen) < 0.5):
            frames = frames[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), backwards

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = {"frames": [], "clip": batch["clip"], "frame_index": [], "window_id": batch["window_id"]}
        for values in zip(*batch.values()):
            row = dict(zip(batch, values))
            frames, backwards = self.apply(read_window(row), row["window_id"])
            out["frames"].append(frames)
            out["frame_index"].append(list(row["frame_index"])[::-1] if backwards else list(row["frame_index"]))
        return out


def with_frame_transform(dataset: datasets.Dataset, transform: FrameWindowTransform | None = None,
                         **kwargs) -> datasets.Dataset:
    """A view of a `load_frame_windows` dataset whose rows are decoded by `transform` (or a
    `FrameWindowTransform(**kwargs)`); keep a reference to the transform to call its `set_epoch`."""
    if isinstance(dataset, datasets.DatasetDict):
        raise TypeError(f"pass one split (a datasets.Dataset), not a DatasetDict with splits {list(dataset)}")
    missing = [c for c in _FEATURES if c not in dataset.column_names]
    if missing:
        raise ValueError(f"the dataset lacks columns {missing}; build it with load_frame_windows")
    if transform is None:
        transform = FrameWindowTransform(**kwargs)
    elif kwargs:
        raise ValueError(f"pass either a transform or its options {sorted(kwargs)}, not both")
    return dataset.with_transform(transform)


def frames_collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack decoded windows: {"frames": uint8 (B, T+1, 3, h, w), "frame_index": int64 (B, T+1), "window_id": int64
    (B,), "clip": list of B names}."""
    shapes = sorted({tuple(ex["frames"].shape) for ex in examples})
    if len(shapes) != 1:
        raise ValueError(f"windows in one batch have different shapes {shapes} (T+1, C, H, W); set crop_size so every "
                         "window has one size")
    return {"frames": torch.stack([ex["frames"] for ex in examples]),
            "frame_index": torch.tensor([list(ex["frame_index"]) for ex in examples], dtype=torch.long),
            "window_id": torch.tensor([int(ex["window_id"]) for ex in examples], dtype=torch.long),
            "clip": [ex["clip"] for ex in examples]}


def make_frames_dataloader(dataset: Any, micro_batch_size: int, dp_rank: int, dp_size: int, seed: int,
                           start_step: int = 0, drop_last: bool = True, *, shuffle: bool = True, num_workers: int = 0,
                           pin_memory: bool = False) -> DataLoader:
    """A DataLoader of this DP rank's micro-batches of a `with_frame_transform` dataset, positioned at `start_step`
    (see `adlr_hf.data.sampling.make_dp_dataloader`); batches as `frames_collate`."""
    return make_dp_dataloader(dataset, micro_batch_size, dp_rank, dp_size, seed, frames_collate, start_step,
                              drop_last, shuffle=shuffle, num_workers=num_workers, pin_memory=pin_memory,
                              what="frame windows")
