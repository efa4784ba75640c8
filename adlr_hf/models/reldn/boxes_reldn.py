"""Box geometry of the relationship head: union boxes and the 28-d spatial feature (arXiv 1903.02728; reference
NVIDIA/ContrastiveLosses4VRD `lib/utils_rel/boxes_rel.py`, Detectron's `bbox_transform_inv`).

Boxes are xyxy in pixels with Detectron's "+1" width convention (a box from x1 to x2 covers x2 - x1 + 1 pixels), as
the reference computes the feature; the feature only has to be consistent between training and inference.
"""

from __future__ import annotations

import torch

SPATIAL_FEATURE_DIM = 28


def union_boxes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest box holding both boxes, elementwise over [..., 4] xyxy."""
    return torch.cat([torch.minimum(a[..., :2], b[..., :2]), torch.maximum(a[..., 2:], b[..., 2:])], dim=-1)


def _centres_and_sizes(boxes: torch.Tensor):
    size = boxes[..., 2:] - boxes[..., :2] + 1.0
    return boxes[..., :2] + 0.5 * size, size


def box_deltas(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Detectron's regression targets from `source` to `target` (weights 1): (dx, dy, log dw, log dh), [..., 4]."""
    source_centre, source_size = _centres_and_sizes(source)
    target_centre, target_size = _centres_and_sizes(target)
    return torch.cat([(target_centre - source_centre) / source_size, torch.log(target_size / source_size)], dim=-1)


def pair_feature(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Δ(a, b): the deltas from a to b and the centre offsets (dx, dy) from b to a, [..., 6]."""
    return torch.cat([box_deltas(a, b), box_deltas(b, a)[..., :2]], dim=-1)


def box_feature(boxes: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
    """[x1/W, y1/H, x2/W, y2/H, area/(W·H)] with `image_sizes` (..., 2) as (height, width), [..., 5]."""
    height, width = image_sizes[..., 0:1], image_sizes[..., 1:2]
    size = boxes[..., 2:] - boxes[..., :2] + 1.0
    area = size[..., 0:1] * size[..., 1:2]
    return torch.cat([boxes[..., 0:1] / width, boxes[..., 1:2] / height, boxes[..., 2:3] / width,
                      boxes[..., 3:4] / height, area / (width * height)], dim=-1)


def spatial_features(subject_boxes: torch.Tensor, object_boxes: torch.Tensor,
                     image_sizes: torch.Tensor) -> torch.Tensor:
    """The 28-d feature of each (subject, object) pair: [Δ(s,o), Δ(s,u), Δ(u,o), box(s), box(o)] with u their union.

    `subject_boxes`, `object_boxes`: [..., 4] xyxy pixels; `image_sizes`: [..., 2] (height, width), broadcastable.
    """
    subject_boxes, object_boxes = subject_boxes.float(), object_boxes.float()
    image_sizes = image_sizes.to(subject_boxes).expand(*subject_boxes.shape[:-1], 2)
    union = union_boxes(subject_boxes, object_boxes)
    return torch.cat([pair_feature(subject_boxes, object_boxes), pair_feature(subject_boxes, union),
                      pair_feature(union, object_boxes), box_feature(subject_boxes, image_sizes),
                      box_feature(object_boxes, image_sizes)], dim=-1)
