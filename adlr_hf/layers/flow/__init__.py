"""Optical-flow sources for the video families, chosen by name (the config's `flow_source`), and the flow
normalisation statistics.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet` (frozen FlowNet2 inside the model, on pairs (I_{i+1}, I_i)).

    source = build_flow_source("opencv-dis")          # or "opencv-farneback", "raft-small"/"raft-large" (weights=...),
                                                       # "precomputed" (root=...), "none"
    flow = source(frames[:, i + 1], frames[:, i])     # (B, 2, H, W) from I_{i+1} to I_i: warp(I_i, flow) ≈ I_{i+1}
    model_input = normalize_flow(flow, stats)         # (f - mean) / (3 std); stats: REFERENCE_FLOW_STATS or
                                                       # flow_statistics(...) of the source's flows

Conventions (frames RGB in [0, 255], flow (u, v) in pixels): `base`. One idea per file: `opencv`, `raft`,
`precomputed`, `stats`.
"""

from __future__ import annotations

from .base import FlowSource, NoFlow, check_frame_pair
from .opencv import OpenCVFlow
from .precomputed import PrecomputedFlow, flow_file, precompute_flows
from .raft import RAFTFlow
from .stats import (
    FLOW_MEAN,
    FLOW_STD,
    REFERENCE_FLOW_STATS,
    FlowStats,
    denormalize_flow,
    flow_statistics,
    normalize_flow,
)

__all__ = [
    "FLOW_MEAN", "FLOW_SOURCES", "FLOW_STD", "REFERENCE_FLOW_STATS", "FlowSource", "FlowStats", "NoFlow", "OpenCVFlow",
    "PrecomputedFlow", "RAFTFlow", "build_flow_source", "check_frame_pair", "denormalize_flow", "flow_file",
    "flow_statistics", "normalize_flow", "precompute_flows",
]

FLOW_SOURCES = ("opencv-dis", "opencv-farneback", "raft-small", "raft-large", "precomputed", "none")


def build_flow_source(name: str, **options) -> FlowSource:
    """The flow source called `name` (one of FLOW_SOURCES). Options: opencv-dis `preset`; opencv-farneback its
    parameters; raft-* `weights` (required: a local file), `num_flow_updates`, `device`; precomputed `root`."""
    if name in ("opencv-dis", "opencv-farneback"):
        return OpenCVFlow(name.split("-", 1)[1], **options)
    if name in ("raft-small", "raft-large"):
        return RAFTFlow(name.split("-", 1)[1], **options)
    if name == "precomputed":
        return PrecomputedFlow(**options)
    if name == "none":
        if options:
            raise ValueError(f"flow_source 'none' takes no options; got {sorted(options)}")
        return NoFlow()
    raise ValueError(f"flow_source={name!r} is not one of {FLOW_SOURCES}")
