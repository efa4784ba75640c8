"""Image-folder data: loading through `datasets`, transforms matching the image processor, DP shards and resume."""

import os
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image

from adlr_hf import PDResNetImageProcessor
from adlr_hf.data.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    image_collate,
    label_names,
    load_image_folder,
    make_image_dataloader,
    train_transform,
    with_image_transform,
)
from adlr_hf.data.text import DPSampler

datasets.disable_progress_bars()

CIFAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg-subset"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
needs_cifar = pytest.mark.skipif(not CIFAR.is_dir(), reason=f"CIFAR-10 JPEG subset not found at {CIFAR}")


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    """An ImageNet-style train/ + val/ tree linking the first 6 (train) / 3 (val) images of each CIFAR class."""
    if not CIFAR.is_dir():
        pytest.skip(f"CIFAR-10 JPEG subset not found at {CIFAR}")
    root = tmp_path_factory.mktemp("imagenet_style")
    for split, source, count in (("train", "train", 6), ("val", "test", 3)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for image in sorted((CIFAR / source / cls).glob("*.jpg"))[:count]:
                os.symlink(image, root / split / cls / image.name)
    return root


@pytest.fixture(scope="module")
def splits(small_tree, tmp_path_factory):
    return load_image_folder(small_tree, cache_dir=tmp_path_factory.mktemp("hf_cache"))


def test_imagenet_style_layout_loads_with_shared_labels(splits, small_tree, tmp_path):
    assert set(splits) == {"train", "validation"}
    assert len(splits["train"]) == 60 and len(splits["validation"]) == 30
    assert label_names(splits) == CLASSES and label_names(splits["validation"]) == CLASSES
    row = splits["validation"][0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (32, 32)
    val = load_image_folder(small_tree, "val", cache_dir=tmp_path)
    assert len(val) == 30 and val.features["label"].names == CLASSES


def test_batches_have_the_right_shapes_dtypes_and_normalisation(splits):
    train = with_image_transform(splits["train"], train_transform(24))
    loader = make_image_dataloader(train, micro_batch_size=8, dp_rank=0, dp_size=1, seed=0)
    batch = next(iter(loader))
    assert set(batch) == {"pixel_values", "labels"}
    assert batch["pixel_values"].shape == (8, 3, 24, 24) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].shape == (8,) and batch["labels"].dtype == torch.int64
    assert len(loader) == 60 // 8
    # normalised: the ImageNet mean maps to 0 -> values centred roughly on 0, far outside [0, 1]
    assert batch["pixel_values"].min() < -0.5 and batch["pixel_values"].max() > 1.0
    val = with_image_transform(splits["validation"], eval_transform(32, 36))
    assert val[0]["pixel_values"].shape == (3, 32, 32) and val[0]["labels"] == splits["validation"][0]["label"]


def test_eval_transform_matches_the_image_processor(splits):
    images = [splits["validation"][i]["image"] for i in range(4)]
    for size, resize in ((32, 36), (224, 256)):
        processor = PDResNetImageProcessor(size={"shortest_edge": resize}, crop_size={"height": size, "width": size})
        expected = processor(images, return_tensors="pt")["pixel_values"]
        got = torch.stack([eval_transform(size, resize)(img) for img in images])
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert tuple(processor.image_mean) == IMAGENET_MEAN and tuple(processor.image_std) == IMAGENET_STD
    assert eval_transform(224).transforms[1].size == [256]  # default resize: 224 * 256 / 224


def test_train_augmentation_is_random_and_flips():
    image = Image.fromarray(torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8).numpy())
    transform = train_transform(16)
    torch.manual_seed(0)
    crops = [transform(image) for _ in range(4)]
    assert all(c.shape == (3, 16, 16) for c in crops) and not torch.equal(crops[0], crops[1])
    grey = Image.new("L", (20, 20), 128)  # converted to RGB before the transform
    row = {"image": [grey], "label": [0]}
    ds = with_image_transform(datasets.Dataset.from_dict(row, features=datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a"])})), eval_transform(16))
    assert ds[0]["pixel_values"].shape == (3, 16, 16)


def test_dp_shards_are_disjoint_and_resume_mid_epoch(splits):
    train = with_image_transform(splits["train"], eval_transform(32, 32))
    labels_seen, index_sets = [], []
    for rank in range(2):
        loader = make_image_dataloader(train, micro_batch_size=5, dp_rank=rank, dp_size=2, seed=3)
        assert isinstance(loader.sampler, DPSampler)
        index_sets.append(list(loader.sampler))
        labels_seen.append(torch.cat([b["labels"] for b in loader]))
    assert not set(index_sets[0]) & set(index_sets[1])
    assert len(index_sets[0]) == len(index_sets[1]) == 30
    assert torch.equal(labels_seen[0], torch.tensor([splits["train"][i]["label"] for i in index_sets[0]]))
    # resume after 4 steps (6 steps per epoch): the rest of epoch 0 is the original's last 2 batches
    full = list(make_image_dataloader(train, micro_batch_size=5, dp_rank=1, dp_size=2, seed=3))
    resumed = make_image_dataloader(train, micro_batch_size=5, dp_rank=1, dp_size=2, seed=3, start_step=4)
    rest = list(resumed)
    assert len(rest) == 2
    for a, b in zip(rest, full[4:]):
        assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    later = make_image_dataloader(train, micro_batch_size=5, dp_rank=1, dp_size=2, seed=3, start_step=13)
    assert later.sampler.epoch == 2 and len(later) == 5


@needs_cifar
def test_the_whole_cifar_subset_loads(tmp_path):
    splits = load_image_folder(CIFAR, cache_dir=tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 2000, "test": 5000}
    assert label_names(splits["test"]) == CLASSES
    test = with_image_transform(splits["test"], eval_transform(32, 36))
    loader = make_image_dataloader(test, 64, dp_rank=0, dp_size=1, seed=0, shuffle=False, drop_last=False)
    assert len(loader) == 79 and image_collate([test[0], test[1]])["pixel_values"].shape == (2, 3, 32, 32)


def test_bad_inputs_fail_clearly(tmp_path, splits, small_tree):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        load_image_folder(tmp_path / "file.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images found"):
        load_image_folder(tmp_path / "empty", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="split 'test' is not in"):
        load_image_folder(small_tree, "test", cache_dir=tmp_path / "cache")
    with pytest.raises(TypeError, match="not a DatasetDict"):
        with_image_transform(splits, eval_transform(32))
    with pytest.raises(ValueError, match="no column 'img'"):
        with_image_transform(splits["train"], eval_transform(32), image_column="img")
    with pytest.raises(ValueError, match="no full micro-batch"):
        make_image_dataloader(splits["validation"], micro_batch_size=40, dp_rank=0, dp_size=1, seed=0)
    with pytest.raises(ValueError, match="resize_size=16 must be an integer >= 32"):
        eval_transform(32, 16)
