"""Reading one (image, label map) pair: RGB uint8 (3, H, W) and class ids int64 (H, W) through the layout's lookup,
with one clear error naming the file for a size mismatch or a label value outside the classes."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .layouts import IGNORE_INDEX


def read_label(path: str, lookup: np.ndarray, class_names=()) -> torch.Tensor:
    """The label map at `path` as class ids (H, W) int64 (IGNORE_INDEX where not counted)."""
    with Image.open(path) as image:
        if image.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"label map {path} is a {image.mode} image; a label map holds one class id per pixel "
                             "(8-bit grayscale or palette PNG)")
        stored = np.asarray(image)
    if stored.min() < 0 or stored.max() > 255:
        raise ValueError(f"label map {path} holds values from {stored.min()} to {stored.max()}; label ids must be "
                         "in 0..255")
    ids = lookup[stored.astype(np.int64)]
    if (ids < 0).any():
        bad = sorted(np.unique(stored[ids < 0]).tolist())[:10]
        valid = np.flatnonzero(lookup >= 0).tolist()
        raise ValueError(f"label map {path} holds values {bad} outside the classes of this dataset (valid stored "
                         f"values: {_ranges(valid)}); fix the file, or map those values to {IGNORE_INDEX} (ignore)")
    return torch.from_numpy(ids.astype(np.int64))


def read_pair(image_path: str, label_path: str, lookup: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    with Image.open(image_path) as image:
        rgb = np.asarray(image.convert("RGB"))
    label = read_label(label_path, lookup)
    if rgb.shape[:2] != tuple(label.shape):
        raise ValueError(f"image {image_path} is {rgb.shape[1]}x{rgb.shape[0]} but its label map {label_path} is "
                         f"{label.shape[1]}x{label.shape[0]} (WxH); a label map must match its image pixel for pixel")
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous(), label


def _ranges(values: list[int]) -> str:
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def check_pairs(pairs) -> None:
    """Every label map of `pairs` decodes to valid class ids and matches its image's size (read from the image
    header), or the first one that does not is named (`read_label`'s and `read_pair`'s errors)."""
    for index, (image_path, label_path) in enumerate(zip(pairs.images, pairs.labels)):
        lookup = pairs.lookup_for(index)
        with Image.open(image_path) as image:
            width, height = image.size
        label = read_label(label_path, lookup)
        if (height, width) != tuple(label.shape):
            raise ValueError(f"image {image_path} is {width}x{height} but its label map {label_path} is "
                             f"{label.shape[1]}x{label.shape[0]} (WxH); a label map must match its image pixel for "
                             "pixel")
