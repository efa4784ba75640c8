"""What the segmentation tests share: the real CamVid subset of ../shared/data (skip when absent) and small
Cityscapes / folder trees written in the test."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CAMVID = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camvid"


def camvid_root() -> Path:
    if not (CAMVID / "trainannot").is_dir():
        pytest.skip(f"the CamVid subset is not staged at {CAMVID} (see its SOURCE.md)")
    return CAMVID


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_cityscapes(root: Path, label_ids: np.ndarray, split="train", city="aachen", count=1) -> list[Path]:
    """Images and gtFine labelIds maps in the Cityscapes layout; returns the label paths."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        stem = f"{city}_{i:06d}_000019"
        image = rng.integers(0, 255, (*label_ids.shape, 3), dtype=np.uint8)
        write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
        out.append(write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids))
    return out
