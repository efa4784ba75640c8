"""Class-uniform sampling (NVIDIA/semantic-segmentation@sdcnet `datasets/uniform.py`, arXiv 1812.01593).

Each label map is cut into tiles of `tile` pixels; for every (tile, class present) the class's centre of mass in
the tile is a centroid. An epoch of N items then holds, for every class c with centroids, ⌊N·pct/C⌋ crops centred on
random centroids of c (drawn without replacement, wrapping round when a class has fewer), and the remaining items
are random whole images (also without replacement, wrapping). Rare classes thus get as many crops as common ones.

Differences from the reference, on purpose: edge tiles smaller than `tile` count (the reference's floor division
gives an image smaller than a tile no tile at all, e.g. every 480x360 CamVid image at its default 1024); a class
without any centroid gives its share to random images instead of stopping the run.

The plan is a list of N (item index, centroid or None) drawn from (seed, epoch): the same epoch gives the same plan on
every rank and after a resume. The dataset keeps its length N, and the loop's data-parallel sampler shards the plan's
positions, so each rank reads its own disjoint share of the epoch's crops.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_TILE = 1024


def class_centroids(label: torch.Tensor | np.ndarray, num_classes: int, tile: int = DEFAULT_TILE) \
        -> list[tuple[int, tuple[int, int]]]:
    """(class, (y, x)) for each tile of `label` (class ids (H, W); other values ignored) and each class in it: the
    integer part of the class's centre of mass in the tile, in image coordinates."""
    label = torch.as_tensor(label).long()
    h, w = label.shape
    out = []
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            patch = label[y0:y0 + tile, x0:x0 + tile]
            inside = (patch >= 0) & (patch < num_classes)
            ids = torch.where(inside, patch, num_classes).flatten()
            ys, xs = torch.meshgrid(torch.arange(patch.shape[0], dtype=torch.float64),
                                    torch.arange(patch.shape[1], dtype=torch.float64), indexing="ij")
            counts = torch.bincount(ids, minlength=num_classes + 1)[:num_classes]
            sum_y = torch.bincount(ids, weights=ys.flatten(), minlength=num_classes + 1)[:num_classes]
            sum_x = torch.bincount(ids, weights=xs.flatten(), minlength=num_classes + 1)[:num_classes]
            for c in torch.nonzero(counts).flatten().tolist():
                out.append((c, (y0 + int(sum_y[c] / counts[c]), x0 + int(sum_x[c] / counts[c]))))
    return out


class ClassUniformPlan:
    """The centroids of every item by class and the per-epoch plan (see the module docstring)."""

    def __init__(self, centroids: dict[int, list[tuple[int, tuple[int, int]]]], num_items: int, num_classes: int,
                 pct: float, seed: int = 0):
        if not 0.0 <= pct <= 1.0:
            raise ValueError(f"class-uniform pct {pct} must be in [0, 1] (the reference uses 0.5)")
        if num_items < 1:
            raise ValueError("class-uniform sampling needs at least one item")
        self.centroids = {c: list(v) for c, v in centroids.items() if v}
        self.num_items, self.num_classes, self.pct, self.seed = num_items, num_classes, float(pct), int(seed)

    @classmethod
    def from_labels(cls, labels, num_classes: int, pct: float, seed: int = 0, tile: int = DEFAULT_TILE):
        """From an iterable of label maps (item order = dataset order)."""
        centroids: dict[int, list] = {}
        count = 0
        for index, label in enumerate(labels):
            count += 1
            for c, point in class_centroids(label, num_classes, tile):
                centroids.setdefault(c, []).append((index, point))
        return cls(centroids, count, num_classes, pct, seed)

    @property
    def per_class(self) -> int:
        return int(self.num_items * self.pct / self.num_classes)

    def epoch(self, epoch: int) -> list[tuple[int, tuple[int, int] | None]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch), 0x5E6]))
        plan = []
        for c in range(self.num_classes):
            points = self.centroids.get(c)
            if points:
                plan += [points[i] for i in _wrapped_permutation(rng, len(points), self.per_class)]
        rest = self.num_items - len(plan)
        plan = [(int(i), None) for i in _wrapped_permutation(rng, self.num_items, rest)] + plan
        return plan


def _wrapped_permutation(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """`count` indices of a random permutation of range(n), wrapping round when count > n (the reference's
    `random_sampling`)."""
    order = rng.permutation(n)
    return order[np.arange(count) % n] if count else order[:0]
