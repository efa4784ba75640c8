"""Segmentation layouts and label mapping: the real CamVid subset (11 = ignore -> 255), Cityscapes labelIds -> 19
trainIds on written files, KITTI's cv split, the plain folder, and bad input (label values, size mismatch) naming
the file."""

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf.data.segmentation import (
    CITYSCAPES_TRAIN_IDS,
    IGNORE_INDEX,
    SegmentationDataset,
    find_pairs,
    read_pair,
    segmentation_collate,
)

from models.deeplabv3plus.seg_data_utils import camvid_root, write_cityscapes, write_png


def test_camvid_subset_pairs_and_ignore_mapping():
    root = camvid_root()
    train, val = find_pairs(root, "camvid", "train"), find_pairs(root, "camvid", "val")
    assert (len(train), len(val)) == (80, 60) and train.num_classes == 11
    stored = np.asarray(Image.open(train.labels[0]))
    image, label = read_pair(train.images[0], train.labels[0], train.lookup)
    assert image.shape == (3, 360, 480) and image.dtype == torch.uint8 and label.shape == (360, 480)
    np.testing.assert_array_equal(label.numpy(), np.where(stored == 11, IGNORE_INDEX, stored))
    assert (stored == 11).any()  # the subset has unlabelled pixels, so the mapping is exercised
    batch = segmentation_collate([SegmentationDataset(val)[i] for i in range(2)])
    assert batch["pixel_values"].shape == (2, 3, 360, 480) and batch["labels"].dtype == torch.int64


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    ids = np.arange(34, dtype=np.uint8).repeat(2).reshape(4, 17)
    ids[0, 0] = 255  # the license plate's -1 as stored in uint8
    write_cityscapes(tmp_path, ids, split="val")
    pairs = find_pairs(tmp_path, "cityscapes", "val")
    assert pairs.num_classes == 19 and pairs.class_names[13] == "car"
    _, label = read_pair(pairs.images[0], pairs.labels[0], pairs.lookup)
    expected = np.vectorize(lambda v: CITYSCAPES_TRAIN_IDS.get(int(v), IGNORE_INDEX))(ids)
    np.testing.assert_array_equal(label.numpy(), expected)
    assert label[ids == 26].unique().tolist() == [13] and label[ids == 0].unique().tolist() == [IGNORE_INDEX]


def test_kitti_cv_split_and_folder_layout(tmp_path):
    for i in range(20):
        write_png(tmp_path / "kitti/training/image_2" / f"{i:06d}_10.png", np.zeros((4, 5, 3), np.uint8))
        write_png(tmp_path / "kitti/training/semantic" / f"{i:06d}_10.png", np.full((4, 5), 7, np.uint8))
    train = find_pairs(tmp_path / "kitti", "kitti", "train", cv=1)
    val = find_pairs(tmp_path / "kitti", "kitti", "val", cv=1)
    assert len(train) == 18 and len(val) == 2 and not set(train.images) & set(val.images)
    assert read_pair(val.images[0], val.labels[0], val.lookup)[1].unique().tolist() == [0]  # road
    write_png(tmp_path / "f/train/images/a.jpg", np.zeros((3, 3, 3), np.uint8))
    write_png(tmp_path / "f/train/labels/a.png", np.array([[0, 1, 2], [2, 2, 255], [0, 0, 0]], np.uint8))
    folder = find_pairs(tmp_path / "f", "folder", "train")
    assert folder.class_names == ("class_0", "class_1", "class_2")
    (tmp_path / "f/classes.txt").write_text("road\ncar\nsky\nperson\n")
    assert find_pairs(tmp_path / "f", "folder", "train").class_names == ("road", "car", "sky", "person")


def test_bad_labels_name_the_file(tmp_path):
    images = tmp_path / "camvid"
    write_png(images / "train/x.png", np.zeros((4, 6, 3), np.uint8))
    bad = write_png(images / "trainannot/x.png", np.array([[0, 1, 12, 40, 11, 3]] * 4, np.uint8))
    pairs = find_pairs(images, "camvid", "train")
    with pytest.raises(ValueError, match=rf"{bad}.*values \[12, 40\] outside the classes.*0-11, 255"):
        read_pair(pairs.images[0], pairs.labels[0], pairs.lookup)
    write_png(images / "trainannot/x.png", np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match=r"x.png is 6x4 but its label map .*x.png is 6x5"):
        SegmentationDataset(pairs)[0]
    with pytest.raises(FileNotFoundError, match="not a cityscapes folder"):
        find_pairs(images, "cityscapes", "train")
    (images / "trainannot/x.png").unlink()
    with pytest.raises(FileNotFoundError, match="have no label map"):
        find_pairs(images, "camvid", "train")
