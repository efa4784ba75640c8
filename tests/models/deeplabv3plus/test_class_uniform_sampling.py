"""Class-uniform sampling: centroids are per-tile centres of mass (scipy's), each epoch holds floor(N*pct/C) crops
per class with centroids and random images for the rest, plans replay per (seed, epoch), and the loop's
data-parallel sampler gives each rank a disjoint share of the plan."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from adlr_hf.data.sampling import DPSampler
from adlr_hf.data.segmentation import ClassUniformPlan, SegmentationDataset, class_centroids, find_pairs

from models.deeplabv3plus.seg_data_utils import camvid_root


def test_centroids_equal_scipy_center_of_mass_per_tile():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (37, 50))
    label[label == 3] = 255
    ours = class_centroids(torch.from_numpy(label), 3, tile=16)
    expected = []
    for y0 in range(0, 37, 16):
        for x0 in range(0, 50, 16):
            patch = label[y0:y0 + 16, x0:x0 + 16]
            for c in range(3):
                if (patch == c).any():
                    cy, cx = ndimage.center_of_mass(patch == c)
                    expected.append((c, (y0 + int(cy), x0 + int(cx))))
    assert ours == expected


def test_epoch_plan_proportions_and_determinism():
    # 40 items; class 2 is rare (only in items 0 and 1), class 3 never occurs
    labels = [np.zeros((8, 8), np.int64) for _ in range(40)]
    for i in range(0, 40, 2):
        labels[i][:4] = 1
    labels[0][6, 6] = 2
    labels[1][0, 0] = 2
    plan = ClassUniformPlan.from_labels(labels, num_classes=4, pct=0.5, seed=7, tile=1024)
    epoch = plan.epoch(3)
    assert len(epoch) == 40 and plan.per_class == 5
    centred = [(i, p) for i, p in epoch if p is not None]
    assert len(centred) == 15  # classes 0, 1, 2 get 5 crops each; class 3 has no centroid: random images instead
    rare = [(i, p) for i, p in centred if i in (0, 1) and p in ((6, 6), (0, 0))]
    assert len(rare) == 5  # class 2's two centroids, drawn with wrap-round
    assert sum(p is None for _, p in epoch) == 25
    assert plan.epoch(3) == epoch and plan.epoch(4) != epoch
    assert ClassUniformPlan.from_labels(labels, 4, 0.5, seed=8).epoch(3) != epoch


def test_plan_shards_over_data_parallel_ranks_disjointly():
    pairs = find_pairs(camvid_root(), "camvid", "train")
    base = SegmentationDataset(pairs)
    plan = ClassUniformPlan.from_labels(base.labels(), pairs.num_classes, pct=0.5, seed=0)
    ds = SegmentationDataset(pairs, class_uniform=plan, seed=0)
    ds.set_epoch(1)
    shares = [list(DPSampler(len(ds), rank, 4, seed=0, epoch=1)) for rank in range(4)]
    flat = [i for share in shares for i in share]
    assert len(flat) == len(set(flat)) == 80
    sources = [ds.item_source(i) for i in flat]
    assert sum(c is not None for _, c in sources) == 11 * int(80 * 0.5 / 11)
    # the rare Bicyclist class (10) gets its share of crops, centred on its centroids
    assert sum(1 for i, c in sources if c is not None and i in {j for j, _ in plan.centroids[10]}) >= 3


def test_bad_pct():
    with pytest.raises(ValueError, match="pct 1.5"):
        ClassUniformPlan({}, 4, 2, 1.5)
