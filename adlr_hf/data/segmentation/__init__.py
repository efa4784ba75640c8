"""Semantic-segmentation data: dataset layouts (CamVid, Cityscapes, KITTI semantics, a plain folder), joint
augmentation of image and label, class-uniform sampling and the boundary-relaxation target."""

from .class_uniform import ClassUniformPlan, class_centroids
from .dataset import Relaxation, SegmentationDataset, segmentation_collate
from .layouts import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    CITYSCAPES_TRAIN_IDS,
    DATASETS,
    IGNORE_INDEX,
    SegmentationPairs,
    find_pairs,
    has_split,
)
from .reading import check_pairs, read_label, read_pair
from .transforms import JointTransform, sample_generator

__all__ = [
    "CAMVID_CLASSES", "CITYSCAPES_CLASSES", "CITYSCAPES_TRAIN_IDS", "ClassUniformPlan", "DATASETS", "IGNORE_INDEX",
    "JointTransform", "Relaxation", "SegmentationDataset", "SegmentationPairs", "class_centroids", "find_pairs",
    "has_split", "check_pairs", "read_label", "read_pair", "sample_generator", "segmentation_collate",
]
