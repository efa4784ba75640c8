"""A segmentation dataset for the training loop: pairs of one split, read, augmented from (seed, epoch, index),
normalised, with plain class-id labels or the boundary-relaxation multi-hot target, and an optional class-uniform
epoch plan. `set_epoch` (called by the loop each epoch, also after a resume) changes the augmentation draws, the
class-uniform plan and, after `rlx_off_epoch`, the relaxation target."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ...layers.relaxed_boundary import reduced_border_at, relaxed_boundary_target
from .class_uniform import ClassUniformPlan
from .layouts import IGNORE_INDEX, SegmentationPairs
from .reading import read_label, read_pair
from .transforms import JointTransform, sample_generator


@dataclass(frozen=True)
class Relaxation:
    """Boundary relaxation options (the reference's --jointwtborder with --strict_bdr_cls / --rlx_off_epoch)."""

    border_window: int = 1
    strict_classes: tuple[int, ...] = ()
    rlx_off_epoch: int = -1


class SegmentationDataset(torch.utils.data.Dataset):
    """Items {"pixel_values": float32 (3, h, w) normalised, "labels": int64 (h, w) class ids, or uint8 (C+1, h, w)
    relaxation target}. `transform` None: whole images, no augmentation (evaluation)."""

    def __init__(self, pairs: SegmentationPairs, transform: JointTransform | None = None,
                 relaxation: Relaxation | None = None, class_uniform: ClassUniformPlan | None = None, seed: int = 0,
                 mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD):
        self.pairs, self.transform, self.relaxation = pairs, transform, relaxation
        self.class_uniform, self.seed = class_uniform, int(seed)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.epoch = 0
        self._plan = None
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._plan = self.class_uniform.epoch(self.epoch) if self.class_uniform is not None else None

    def item_source(self, index: int) -> tuple[int, tuple[int, int] | None]:
        """(pair index, centroid or None) read at position `index` in the current epoch."""
        return self._plan[index] if self._plan is not None else (int(index), None)

    def __getitem__(self, index):
        source, centroid = self.item_source(int(index))
        pairs = self.pairs
        image, label = read_pair(pairs.images[source], pairs.labels[source], pairs.lookup_for(source))
        if self.transform is not None:
            image, label = self.transform(image, label, sample_generator(self.seed, self.epoch, index), centroid)
        pixel_values = (image.float() / 255 - self.mean) / self.std
        if self.relaxation is not None:
            r = self.relaxation
            label = relaxed_boundary_target(label, self.pairs.num_classes, IGNORE_INDEX, r.border_window,
                                            r.strict_classes, reduced_border_at(self.epoch, r.rlx_off_epoch),
                                            dtype=torch.uint8)
        return {"pixel_values": pixel_values, "labels": label}

    def labels(self):
        """Every label map of the split, as class ids (for class-uniform centroids)."""
        for index, path in enumerate(self.pairs.labels):
            yield read_label(path, self.pairs.lookup_for(index))


def segmentation_collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack items; a relaxation target (uint8) becomes float32. Maps of different sizes (whole-image evaluation)
    are padded bottom/right to the largest: images with 0, labels with the ignore index."""
    images = [e["pixel_values"] for e in examples]
    labels = [e["labels"] for e in examples]
    h = max(x.shape[-2] for x in images)
    w = max(x.shape[-1] for x in images)
    if any(x.shape[-2:] != (h, w) for x in images):
        images = [torch.nn.functional.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2])) for x in images]
        labels = [torch.nn.functional.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2]), value=IGNORE_INDEX)
                  for y in labels]
    labels = torch.stack(labels)
    return {"pixel_values": torch.stack(images), "labels": labels.float() if labels.dtype == torch.uint8 else labels}
