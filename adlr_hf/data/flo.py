"""Middlebury `.flo` optical-flow files: read and write.

Used for precomputed flows of SDC-Net (Reda et al., arXiv 1811.00684; reference NVIDIA/semantic-segmentation, branch
`sdcnet`, whose FlowNet2 dependency reads and writes this format) and of the other video families.

Layout (little-endian): the float32 magic 202021.25 (bytes "PIEH"), int32 width, int32 height, then height*width*2
float32 values, row by row, u and v interleaved per pixel (u = x displacement, v = y displacement, in pixels).
Arrays here are (H, W, 2) float32, channel 0 = u, channel 1 = v. Values of 1e9 or more mark unknown flow in the
Middlebury ground truth; they are kept as read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomically

__all__ = ["FLO_MAGIC", "read_flo", "write_flo"]

FLO_MAGIC = 202021.25
_HEADER_BYTES = 12
# Sizes beyond this are not flow fields but a corrupt header (largest Middlebury/Sintel/KITTI frames are ~2k wide).
_MAX_SIDE = 1 << 15


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """The flow field of a `.flo` file as a (H, W, 2) float32 array (u, v)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow file {str(path)!r} does not exist")
    data = path.read_bytes()
    if len(data) < _HEADER_BYTES:
        raise ValueError(f"{str(path)!r} is {len(data)} bytes, shorter than the 12-byte .flo header; it is not a "
                         "Middlebury .flo file")
    magic = np.frombuffer(data, dtype="<f4", count=1)[0]
    if magic != np.float32(FLO_MAGIC):
        raise ValueError(f"{str(path)!r} does not start with the .flo magic number {FLO_MAGIC} (b'PIEH'); got "
                         f"{data[:4]!r}: not a Middlebury .flo file (or written big-endian)")
    width, height = (int(v) for v in np.frombuffer(data, dtype="<i4", count=2, offset=4))
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise ValueError(f"{str(path)!r} declares a {width}x{height} flow field; width and height must be in "
                         f"[1, {_MAX_SIDE}]: the header is corrupt")
    expected = _HEADER_BYTES + 4 * 2 * width * height
    if len(data) != expected:
        raise ValueError(f"{str(path)!r} is {len(data)} bytes but its {width}x{height} header needs {expected} "
                         "(12 header + 8 per pixel): the file is truncated or has trailing data")
    flow = np.frombuffer(data, dtype="<f4", count=2 * width * height, offset=_HEADER_BYTES)
    return flow.reshape(height, width, 2).astype(np.float32)


def write_flo(path: str | os.PathLike, flow) -> Path:
    """Write a (H, W, 2) flow field (numpy array or tensor; channel 0 = u, 1 = v) as a `.flo` file; returns the path.
    A (2, H, W) tensor, as the models output, is accepted too. The file is written whole or not at all."""
    path = Path(path)
    if hasattr(flow, "detach"):  # torch tensor
        flow = flow.detach().cpu().numpy()
    array = np.asarray(flow)
    if array.ndim == 3 and array.shape[0] == 2 and array.shape[-1] != 2:
        array = np.moveaxis(array, 0, -1)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"flow for {str(path)!r} must be (H, W, 2) or (2, H, W); got shape {array.shape}")
    height, width = array.shape[:2]
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise ValueError(f"flow for {str(path)!r} is {width}x{height}; width and height must be in [1, {_MAX_SIDE}]")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"flow for {str(path)!r} must hold real numbers; got dtype {array.dtype}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {str(path.parent)!r} does not exist; create it before writing {path.name}")
    payload = (np.array([FLO_MAGIC], dtype="<f4").tobytes() + np.array([width, height], dtype="<i4").tobytes()
               + np.ascontiguousarray(array, dtype="<f4").tobytes())
    write_bytes_atomically(path, payload)
    return path
