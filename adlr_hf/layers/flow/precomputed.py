"""Precomputed flows stored as Middlebury `.flo` files, one per frame pair, and the helper that writes them.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet` (FlowNet2 flows of the pairs (I_{i+1}, I_i), computed inside
the model). Deviation from the reference: flows can be computed once (by any `FlowSource`) and read back, so training
does not run the flow network every step.

Layout: `<root>/<clip>/<first>_to_<second>.flo` holds flow(first, second) (from frame `first` to frame `second`, see
`base`); frames are named by their file stem (frame folders) or their 6-digit index (videos). `precompute_flows`
writes the reference's pairs: for every clip and i, flow(I_{i+1}, I_i).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...data.flo import read_flo, write_flo
from .base import FlowSource, check_frame_pair

__all__ = ["PrecomputedFlow", "flow_file", "frame_label", "precompute_flows"]


def frame_label(frame) -> str:
    """A frame's name in flow file names: the stem of a frame file, or a video frame index as 6 digits."""
    if isinstance(frame, (int, np.integer)) and not isinstance(frame, bool):
        if frame < 0:
            raise ValueError(f"frame index {frame} must be >= 0")
        return f"{int(frame):06d}"
    if isinstance(frame, (str, os.PathLike)):
        return Path(frame).stem
    raise ValueError(f"frame {frame!r} must be a frame file name or a frame index")


def flow_file(root: str | os.PathLike, clip: str, first, second) -> Path:
    """Where flow(first, second) of `clip` lives under `root`."""
    return Path(root) / clip / f"{frame_label(first)}_to_{frame_label(second)}.flo"


class PrecomputedFlow(FlowSource):
    """flow_source "precomputed": `source(first, second, paths=[...])` reads the B `.flo` files (see `flow_file`) and
    checks they match the frames' size; `load(paths)` reads them without frames."""

    name = "precomputed"

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = None if root is None else Path(os.path.expanduser(os.fspath(root)))
        if self.root is not None and not self.root.is_dir():
            raise FileNotFoundError(f"precomputed flow folder {str(self.root)!r} does not exist; write it with "
                                    "precompute_flows(frames_root, out_root, source)")

    def path(self, clip: str, first, second) -> Path:
        if self.root is None:
            raise ValueError("this PrecomputedFlow has no root folder; pass root= to look flows up by clip and frame")
        return flow_file(self.root, clip, first, second)

    def load(self, paths: Sequence[str | os.PathLike]) -> torch.Tensor:
        """float32 (B, 2, H, W) flows of the given `.flo` files."""
        if isinstance(paths, (str, os.PathLike)) or not len(paths):
            raise ValueError(f"paths={paths!r} must be a non-empty list of .flo files, one per frame pair")
        flows = [torch.from_numpy(read_flo(p)).permute(2, 0, 1) for p in paths]
        shapes = {tuple(f.shape) for f in flows}
        if len(shapes) != 1:
            raise ValueError(f"flow files {[str(p) for p in paths]} differ in size: {sorted(shapes)} (2, H, W)")
        return torch.stack(flows)

    def __call__(self, first, second, paths: Sequence[str | os.PathLike] | None = None) -> torch.Tensor:
        if paths is None:
            raise ValueError("precomputed flow needs the .flo files of the pairs: source(first, second, paths=[...]) "
                             "(see flow_file for the layout)")
        first, second, unbatched = check_frame_pair(first, second)
        if len(paths) != first.shape[0]:
            raise ValueError(f"{len(paths)} flow files for {first.shape[0]} frame pairs; pass one per pair")
        flow = self.load(paths)
        if flow.shape[-2:] != first.shape[-2:]:
            raise ValueError(f"flow files are {flow.shape[-1]}x{flow.shape[-2]} but the frames {first.shape[-1]}x"
                             f"{first.shape[-2]} (WxH); crop the flows as the frames (or precompute them on the crops)")
        flow = flow.to(first.device)
        return flow[0] if unbatched else flow


def precompute_flows(frames_root: str | os.PathLike, out_root: str | os.PathLike, source: FlowSource, *,
                     overwrite: bool = False) -> list[Path]:
    """Write flow(I_{i+1}, I_i) of every consecutive pair of every clip under `frames_root` (frame folders or videos,
    as `adlr_hf.data.frames.find_clips`) to `out_root` in the `flow_file` layout; returns the files written. Existing
    files are kept unless `overwrite`."""
    from ...data.frames import find_clips, read_video_frames, _read_image

    if not isinstance(source, FlowSource) or not source.provides_flow or isinstance(source, PrecomputedFlow):
        raise ValueError(f"source={source!r} must be a flow source that computes flow (opencv-*, raft-*)")
    clips = find_clips(frames_root)
    out_root = Path(out_root)
    written = []
    for clip in clips:
        (out_root / clip.name).mkdir(parents=True, exist_ok=True)
        labels = list(clip.files) if clip.kind == "frames" else list(range(clip.num_frames))
        previous = None
        for i in range(1, clip.num_frames):
            target = flow_file(out_root, clip.name, labels[i], labels[i - 1])
            if target.exists() and not overwrite:
                previous = None
                continue
            if previous is None:
                previous = _read_frame(clip, i - 1, _read_image, read_video_frames)
            current = _read_frame(clip, i, _read_image, read_video_frames)
            flow = source(current[None], previous[None])[0]
            write_flo(target, flow.permute(1, 2, 0).cpu().numpy())
            written.append(target)
            previous = current
    return written


def _read_frame(clip, index: int, read_image, read_video_frames) -> torch.Tensor:
    array = read_image(clip.files[index]) if clip.kind == "frames" else read_video_frames(clip.source, [index])[0]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
