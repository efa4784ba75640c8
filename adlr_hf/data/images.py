"""Image-classification data: `imagefolder` directories through `datasets`, torchvision v2 transforms, DP sharding.

Pipeline (the training loop only needs the last call):

    splits = load_image_folder("imagenet/")        # DatasetDict "train", "validation"/"test": columns image, label
    train = with_image_transform(splits["train"], train_transform(224))
    val   = with_image_transform(splits["validation"], eval_transform(224))   # resize 256 -> center crop 224
    dl    = make_image_dataloader(train, micro_batch_size=64, dp_rank=r, dp_size=n, seed=1234, start_step=step)
    # batches: {"pixel_values": float32 (B, 3, 224, 224), "labels": int64 (B,)}

Layouts (`datasets`' imagefolder rules): `root/<split>/<class>/<image>` (ImageNet-style `train/` + `val/`; `val` and
`valid` become the split "validation", `test`/`eval` likewise map to datasets' split names) or `root/<class>/<image>`
(one split, "train"). Class ids are the sorted class-folder names over all splits, so every split shares one
`ClassLabel`. ImageNet's raw validation folder (flat, labels in a separate file) must first be sorted into class
folders (the usual `valprep.sh`).

Transforms follow the reference recipe (NVIDIA/partialconv `main.py`, arXiv 1811.11718): training
RandomResizedCrop(size) + RandomHorizontalFlip; evaluation Resize(size·256/224, shorter side) + CenterCrop(size); both
then scale to [0, 1] and normalise with ImageNet's mean/std, the same values the image processors use. Images are
converted to RGB first (ImageNet holds a few grayscale and CMYK JPEGs). Deviation from the reference: the resizes run
on uint8 tensors (torchvision v2, antialiased bilinear) rather than on PIL images, as transformers' torchvision-backed
image processors do, so evaluation batches match the image processor's output.

Sharding reuses `adlr_hf.data.text.DPSampler`: DP ranks get disjoint shards, TP ranks of one replica pass the same
`dp_rank`; `start_step` resumes mid-epoch exactly as `make_lm_dataloader` does. Augmentation draws from torch's RNG
(the global one with `num_workers=0`, the DataLoader's worker seeds otherwise), so it is not replayed on resume.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from .sampling import check_int as _check_int, make_dp_dataloader

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "load_image_folder", "label_names", "train_transform", "eval_transform",
    "with_image_transform", "image_collate", "make_image_dataloader",
]

IMAGENET_MEAN = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD = tuple(IMAGENET_DEFAULT_STD)


_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation", "eval": "test"}


def load_image_folder(data_dir: str | os.PathLike, split: str | None = None, *,
                      cache_dir: str | os.PathLike | None = None) -> datasets.DatasetDict | datasets.Dataset:
    """Load an image-folder tree with `datasets.load_dataset("imagefolder", data_dir=...)`.

    Returns every split as a `DatasetDict` (columns "image": PIL, "label": ClassLabel), or the one named by `split`
    ("val" is accepted for "validation"). `cache_dir` is passed to `load_dataset` (default: the datasets cache).
    """
    root = Path(os.path.expanduser(os.fspath(data_dir)))
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist; pass the dataset's root folder")
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is a file; pass the folder holding <split>/<class>/<image> or <class>/<image>")
    try:
        splits = datasets.load_dataset("imagefolder", data_dir=str(root),
                                       cache_dir=str(cache_dir) if cache_dir is not None else None)
    except (FileNotFoundError, ValueError) as err:
        raise FileNotFoundError(f"no images found under {str(root)!r} ({type(err).__name__}: {err}); expected "
                                "<split>/<class>/<image> or <class>/<image> with image files") from None
    for name, ds in splits.items():
        if not isinstance(ds.features.get("label"), datasets.ClassLabel):
            raise ValueError(f"split {name!r} of {str(root)!r} has no class labels: its images are not all one folder "
                             "level below a class folder; arrange them as <split>/<class>/<image>")
    if split is None:
        return splits
    name = _SPLIT_ALIASES.get(split, split)
    if name not in splits:
        raise ValueError(f"split {split!r} is not in {str(root)!r}; its splits are {sorted(splits)}")
    return splits[name]


def label_names(dataset: datasets.Dataset | datasets.DatasetDict, label_column: str = "label") -> list[str]:
    """The class names in id order (for `id2label`)."""
    if isinstance(dataset, datasets.DatasetDict):
        dataset = next(iter(dataset.values()))
    feature = dataset.features.get(label_column)
    if not isinstance(feature, datasets.ClassLabel):
        raise ValueError(f"column {label_column!r} is {feature!r}, not a ClassLabel; its columns are "
                         f"{dataset.column_names}")
    return list(feature.names)


def _normalise(mean: Sequence[float], std: Sequence[float]) -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def train_transform(image_size: int = 224, *, scale: tuple[float, float] = (0.08, 1.0),
                    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """RandomResizedCrop(image_size, scale) + RandomHorizontalFlip, then [0, 1] scaling and normalisation."""
    _check_int("image_size", image_size, 1)
    return v2.Compose([v2.ToImage(), v2.RandomResizedCrop(image_size, scale=scale, antialias=True),
                       v2.RandomHorizontalFlip(), *_normalise(mean, std)])


def eval_transform(image_size: int = 224, resize_size: int | None = None, *, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Resize the shorter side to `resize_size` (default round(image_size·256/224)), CenterCrop(image_size), then
    [0, 1] scaling and normalisation: the image processor's steps."""
    _check_int("image_size", image_size, 1)
    resize_size = round(image_size * 256 / 224) if resize_size is None else resize_size
    _check_int("resize_size", resize_size, image_size)
    return v2.Compose([v2.ToImage(), v2.Resize(resize_size, antialias=True), v2.CenterCrop(image_size),
                       *_normalise(mean, std)])


def with_image_transform(dataset: datasets.Dataset, transform: Callable, *, image_column: str = "image",
                         label_column: str = "label") -> datasets.Dataset:
    """A view of `dataset` (via `with_transform`, i.e. `set_transform` on a copy) whose rows are
    {"pixel_values": transform(RGB image), "labels": int}; transforms run lazily, per access."""
    if isinstance(dataset, datasets.DatasetDict):
        raise TypeError(f"pass one split (a datasets.Dataset), not a DatasetDict with splits {list(dataset)}")
    for column in (image_column, label_column):
        if column not in dataset.column_names:
            raise ValueError(f"the dataset has no column {column!r}; its columns are {dataset.column_names}")

    def apply(batch: dict[str, list]) -> dict[str, list]:
        images = [img if img.mode == "RGB" else img.convert("RGB") for img in batch[image_column]]
        return {"pixel_values": [transform(img) for img in images], "labels": batch[label_column]}

    return dataset.with_transform(apply, columns=[image_column, label_column])


def image_collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack rows: {"pixel_values": float32 (B, C, H, W), "labels": int64 (B,)}."""
    pixels = torch.stack([torch.as_tensor(ex["pixel_values"]) for ex in examples])
    labels = torch.tensor([int(ex["labels"]) for ex in examples], dtype=torch.long)
    return {"pixel_values": pixels, "labels": labels}


def make_image_dataloader(dataset: Any, micro_batch_size: int, dp_rank: int, dp_size: int, seed: int,
                          start_step: int = 0, drop_last: bool = True, *, shuffle: bool = True, num_workers: int = 0,
                          pin_memory: bool = False) -> DataLoader:
    """A DataLoader of this DP rank's micro-batches of a transformed dataset (`with_image_transform`), positioned at
    `start_step` (micro-batches this rank already consumed since the start of training, across epochs).

    Its `sampler` is a `DPSampler` (see `adlr_hf.data.text`): call `loader.sampler.set_epoch(e)` before each epoch.
    `drop_last=True` gives disjoint shards and full batches only; `drop_last=False` (for evaluation: use
    shuffle=False) pads the shards by repeating samples and keeps each rank's final partial batch.
    """
    return make_dp_dataloader(dataset, micro_batch_size, dp_rank, dp_size, seed, image_collate, start_step, drop_last,
                              shuffle=shuffle, num_workers=num_workers, pin_memory=pin_memory, what="images")
