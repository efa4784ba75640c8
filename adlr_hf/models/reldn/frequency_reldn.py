"""The semantic module's prior: log empirical P(predicate | subject class, object class) from the training triplets
(arXiv 1811.09543's "language bias"; RelDN arXiv 1903.02728 trains it further; reference NVIDIA/ContrastiveLosses4VRD
`lib/datasets_rel/pytorch_misc.py`, `tools/get_dataset_counts_rel.py`, `lib/modeling_rel/sparse_targets_rel.py`)."""

from __future__ import annotations

import torch

FREQUENCY_EPS = 1e-3  # the reference's floor inside the log, so unseen predicates get log(1e-3), not -inf


def _as_long(rows, columns: int, what: str) -> torch.Tensor:
    tensor = torch.as_tensor(rows, dtype=torch.long)
    if tensor.numel() == 0:
        return tensor.reshape(0, columns)
    if tensor.dim() != 2 or tensor.shape[1] != columns:
        raise ValueError(f"{what} has shape {tuple(tensor.shape)}; expected (n, {columns})")
    return tensor


def frequency_counts(triplets, num_objects: int, num_predicates: int, background_pairs=None) -> torch.Tensor:
    """Counts [num_objects, num_objects, num_predicates + 1]: column p + 1 counts the training triplets
    (subject class, object class, predicate p) (0-based ids); column 0 the background pairs (subject class, object
    class) of `background_pairs` (e.g. the overlapping ground-truth box pairs, `overlapping_class_pairs`) plus 1."""
    triplets = _as_long(triplets, 3, "triplets (subject class, object class, predicate)")
    for column, limit, what in ((0, num_objects, "subject class"), (1, num_objects, "object class"),
                                (2, num_predicates, "predicate")):
        values = triplets[:, column]
        if values.numel() and (values.min() < 0 or values.max() >= limit):
            bad = values[(values < 0) | (values >= limit)][0].item()
            raise ValueError(f"a triplet has {what} {bad}, outside [0, {limit}); ids are 0-based")
    counts = torch.zeros(num_objects, num_objects, num_predicates + 1, dtype=torch.float64)
    flat = (triplets[:, 0] * num_objects + triplets[:, 1]) * (num_predicates + 1) + triplets[:, 2] + 1
    counts.view(-1).index_add_(0, flat, torch.ones(len(flat), dtype=torch.float64))
    background = torch.ones(num_objects, num_objects, dtype=torch.float64)
    if background_pairs is not None:
        pairs = _as_long(background_pairs, 2, "background_pairs (subject class, object class)")
        background.view(-1).index_add_(0, pairs[:, 0] * num_objects + pairs[:, 1],
                                       torch.ones(len(pairs), dtype=torch.float64))
    counts[..., 0] = background
    return counts


def frequency_table(triplets, num_objects: int, num_predicates: int, background_pairs=None) -> torch.Tensor:
    """log(count / counts over predicates and background + 1e-3), [num_objects, num_objects, num_predicates + 1]
    (float32): the semantic module's logits for each (subject class, object class)."""
    counts = frequency_counts(triplets, num_objects, num_predicates, background_pairs)
    return torch.log(counts / (counts.sum(-1, keepdim=True) + 1e-8) + FREQUENCY_EPS).float()


def overlapping_class_pairs(boxes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(subject class, object class) of every ordered pair of distinct boxes of one image that overlap (IoU > 0);
    of every ordered pair when none overlap, as the reference counts background pairs."""
    from torchvision.ops import box_iou

    n = len(boxes)
    if n < 2:
        return torch.zeros(0, 2, dtype=torch.long)
    distinct = ~torch.eye(n, dtype=torch.bool)
    keep = (box_iou(boxes.float(), boxes.float()) > 0) & distinct
    if not keep.any():
        keep = distinct
    first, second = keep.nonzero(as_tuple=True)
    return torch.stack([labels[first], labels[second]], dim=1).long()
