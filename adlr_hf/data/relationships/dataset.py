"""Relationship records as model inputs: a torch dataset with joint image/box transforms (torchvision transforms.v2
with tv_tensors.BoundingBoxes), and the collator.

A sample is {"boxes": float [n, 4] xyxy, "box_labels": long [n], "relations": long [r, 3], "image_size": (h, w),
["pixel_values": float [3, h, w] in [0, 1]]}. Images are optional: PredCls with the visual module off needs only boxes,
labels and the image size (the spatial and semantic modules), so `image_dir=None` reads no image.

The collator keeps per-image tensors in lists (images differ in size and box count), the layout the model takes:
{"boxes": [...], "box_labels": [...], "relations": [...], "image_sizes": [(h, w), ...], ["pixel_values": [...]]};
the training loop's `to_device` moves every tensor in the lists.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def relationship_transform(flip: bool = False):
    """Image to float in [0, 1], boxes along. `flip`: random horizontal flips of image and boxes together (off by
    default: it would make "left of" and "right of" labels wrong). The detector resizes on its own."""
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class RelationshipDataset(torch.utils.data.Dataset):
    """The records of a `RelationshipData` (or any sequence of record dicts) as samples."""

    def __init__(self, records, image_dir=None, transform=None):
        self.records = records
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.transform = transform if transform is not None else (relationship_transform() if image_dir else None)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[int(index)]
        size = (int(record["height"]), int(record["width"]))
        boxes = tv_tensors.BoundingBoxes(torch.tensor(record["boxes"], dtype=torch.float32).reshape(-1, 4),
                                         format="XYXY", canvas_size=size)
        sample = {"boxes": boxes}
        if self.image_dir is not None:
            path = self.image_dir / record["file_name"]
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; pass the folder holding the split's images, or train "
                                        "PredCls without the visual module (no images needed)")
            from PIL import Image

            with Image.open(path) as image:
                sample["image"] = image.convert("RGB")
        if self.transform is not None:
            sample = self.transform(sample)
        out = {"boxes": sample["boxes"].as_subclass(torch.Tensor),
               "box_labels": torch.tensor(record["box_labels"], dtype=torch.long),
               "relations": torch.tensor(record["relations"], dtype=torch.long).reshape(-1, 3),
               "image_size": tuple(sample["boxes"].canvas_size)}
        if "image" in sample:
            out["pixel_values"] = sample["image"].as_subclass(torch.Tensor)
        return out


def relationship_collate(samples: list[dict]) -> dict:
    """Per-image lists of the samples' tensors (see the module docstring)."""
    batch = {"boxes": [s["boxes"] for s in samples], "box_labels": [s["box_labels"] for s in samples],
             "relations": [s["relations"] for s in samples], "image_sizes": [tuple(s["image_size"]) for s in samples]}
    if all("pixel_values" in s for s in samples):
        batch["pixel_values"] = [s["pixel_values"] for s in samples]
    return batch
