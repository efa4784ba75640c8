"""Relationship data: the VRD loader on the real annotations, Visual Genome and OpenImages loaders on small written
files, joint image/box transforms, the collator through the training loop's `to_device`, and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf.data.bad_samples import BadSamples
from adlr_hf.data.relationships import (
    RelationshipDataset,
    load_openimages,
    load_visual_genome,
    load_vrd,
    relationship_collate,
    relationship_transform,
)
from adlr_hf.training.trainer import to_device

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
VRD, VRD_IMAGES = DATA / "vrd", DATA / "vrd-images" / "test"
needs_vrd = pytest.mark.skipif(not (VRD / "annotations_train.json").is_file(),
                               reason="the VRD annotations (shared/data/vrd) are not on this machine")


@pytest.fixture(scope="module")
def vrd_train():
    return load_vrd(VRD, "train")


@needs_vrd
def test_vrd_train_split_counts_and_box_order(vrd_train):
    raw = json.loads((VRD / "annotations_train.json").read_text())
    assert len(vrd_train.records) + vrd_train.empty_images == len(raw) == 4000
    assert vrd_train.empty_images == 220  # images without relations are left out and counted
    assert len(vrd_train.object_names) == 100 and len(vrd_train.predicate_names) == 70
    # a relation listed twice for the same image counts once
    unique = sum(len({(json.dumps(r["subject"], sort_keys=True), json.dumps(r["object"], sort_keys=True),
                       r["predicate"]) for r in rels}) for rels in raw.values())
    assert sum(len(r) for r in vrd_train.records["relations"]) == unique
    row = vrd_train.records[0]
    assert row["file_name"] == "2113966890_c65030a7e7_o.jpg"
    first = raw[row["file_name"]][0]  # umbrella -above-> table (SOURCE.md's check of the predicate order)
    s, o, p = row["relations"][0]
    assert vrd_train.object_names[row["box_labels"][s]] == "umbrella"
    assert vrd_train.object_names[row["box_labels"][o]] == "table"
    assert vrd_train.predicate_names[p] == "above"
    ymin, ymax, xmin, xmax = first["subject"]["bbox"]
    assert row["boxes"][s] == [xmin, ymin, xmax, ymax]
    # without the image the size is the boxes' extent
    assert row["size_from"] == "boxes"
    assert row["width"] == max(b[2] for b in row["boxes"]) + 1 and row["height"] == max(b[3] for b in row["boxes"]) + 1
    assert sum(1 for _ in vrd_train.triplets()) == unique


@needs_vrd
def test_vrd_test_images_give_sizes_and_pixels():
    data = load_vrd(VRD, "test", image_dir=VRD_IMAGES)
    assert len(data.records) + data.empty_images == 1000
    dataset = RelationshipDataset(data.records, image_dir=VRD_IMAGES)
    names = data.records["file_name"]
    for file_name, size in (("3845770407_1a8cd41230_b.jpg", (1024, 751)), ("4392556686_44d71ff5a0_o.jpg", (480, 640))):
        sample = dataset[names.index(file_name)]
        assert sample["image_size"] == size
        assert sample["pixel_values"].shape == (3, *size) and sample["pixel_values"].dtype == torch.float32
        assert 0 <= sample["pixel_values"].min() and sample["pixel_values"].max() <= 1
        assert data.records[names.index(file_name)]["size_from"] == "image"
    # an image the folder lacks: a clear error naming the fix
    missing = next(i for i, f in enumerate(names) if not (VRD_IMAGES / f).is_file())
    with pytest.raises(FileNotFoundError, match="without the visual module"):
        dataset[missing]


def write_vrd(folder: Path, annotations: dict, objects=("person", "horse"), predicates=("ride", "near")):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "annotations_train.json").write_text(json.dumps(annotations))
    (folder / "objects.json").write_text(json.dumps(list(objects)))
    (folder / "predicates.json").write_text(json.dumps(list(predicates)))
    return folder


def rel(s_cat, s_box, p, o_cat, o_box):
    return {"predicate": p, "subject": {"category": s_cat, "bbox": s_box}, "object": {"category": o_cat, "bbox": o_box}}


GOOD = rel(0, [10, 40, 5, 30], 0, 1, [20, 60, 0, 50])


def test_bad_vrd_input_is_one_clear_error_or_a_counted_skip(tmp_path):
    flipped = rel(0, [40, 10, 5, 30], 0, 1, [20, 60, 0, 50])  # ymin > ymax
    folder = write_vrd(tmp_path / "a", {"good.jpg": [GOOD], "flipped.jpg": [flipped], "empty.jpg": []})
    with pytest.raises(ValueError, match=r"flipped\.jpg.*y1 > y2.*\[ymin, ymax, xmin, xmax\].*on-bad-sample skip"):
        load_vrd(folder, "train")
    bad = BadSamples("skip")
    data = load_vrd(folder, "train", bad=bad)
    assert data.records["file_name"] == ["good.jpg"] and data.empty_images == 1
    assert bad.summary()["skipped_samples"] == 1 and len(data.skipped) == 1
    # a class id beyond objects.json, a predicate beyond predicates.json
    folder = write_vrd(tmp_path / "b", {"c.jpg": [rel(7, [10, 40, 5, 30], 0, 1, [20, 60, 0, 50])]})
    with pytest.raises(ValueError, match="object class 7 .* vocabulary of 2 classes"):
        load_vrd(folder, "train")
    folder = write_vrd(tmp_path / "c", {"c.jpg": [rel(0, [10, 40, 5, 30], 5, 1, [20, 60, 0, 50])]})
    with pytest.raises(ValueError, match="predicate 5 is outside the vocabulary of 2"):
        load_vrd(folder, "train")
    # a box outside the image, once the image's size is known
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 40)).save(images / "good.jpg")
    folder = write_vrd(tmp_path / "d", {"good.jpg": [GOOD]})
    with pytest.raises(ValueError, match="outside the 40x40 image"):
        load_vrd(folder, "train", image_dir=images)
    # only empty images: nothing to train on
    folder = write_vrd(tmp_path / "e", {"empty.jpg": []})
    with pytest.raises(ValueError, match="no image with a usable relation"):
        load_vrd(folder, "train")
    with pytest.raises(FileNotFoundError, match="annotations_test.json"):
        load_vrd(folder, "test")


def test_visual_genome_raw_json_with_the_vg150_vocabulary(tmp_path):
    relationships = [
        {"image_id": 1, "relationships": [
            {"predicate": "ON ", "subject": {"object_id": 10, "x": 5, "y": 6, "w": 10, "h": 20, "name": "Cup"},
             "object": {"object_id": 11, "x": 0, "y": 20, "w": 50, "h": 30, "names": ["table"]}},
            {"predicate": "on", "subject": {"object_id": 10, "x": 5, "y": 6, "w": 10, "h": 20, "name": "cup"},
             "object": {"object_id": 11, "x": 0, "y": 20, "w": 50, "h": 30, "names": ["table"]}},
            {"predicate": "holding", "subject": {"object_id": 12, "x": 1, "y": 1, "w": 5, "h": 5, "name": "dragon"},
             "object": {"object_id": 10, "x": 5, "y": 6, "w": 10, "h": 20, "name": "cup"}}]},
        {"image_id": 2, "relationships": [
            {"predicate": "near", "subject": {"object_id": 20, "x": 0, "y": 0, "w": 4, "h": 4, "name": "cup"},
             "object": {"object_id": 21, "x": 3, "y": 3, "w": 4, "h": 4, "name": "cup"}}]},
    ]
    (tmp_path / "relationships.json").write_text(json.dumps(relationships))
    (tmp_path / "image_data.json").write_text(json.dumps([{"image_id": 1, "width": 64, "height": 60},
                                                          {"image_id": 2, "width": 8, "height": 8}]))
    (tmp_path / "VG-SGG-dicts.json").write_text(json.dumps({"label_to_idx": {"table": 2, "cup": 1},
                                                            "predicate_to_idx": {"on": 1, "near": 2}}))
    (tmp_path / "train.txt").write_text("1\n")
    data = load_visual_genome(tmp_path, "train")
    assert data.object_names == ["cup", "table"] and data.predicate_names == ["on", "near"]
    row = data.records[0]
    assert row["file_name"] == "1.jpg" and (row["height"], row["width"]) == (60, 64)
    assert row["boxes"] == [[5, 6, 14, 25], [0, 20, 49, 49]] and row["box_labels"] == [0, 1]
    assert row["relations"] == [[0, 1, 0]]  # the duplicate is kept once; "dragon" is outside the vocabulary
    assert data.skipped == [("1", "1 relations outside the vocabulary")]
    assert len(data.records) == 1  # train.txt lists image 1 only


def test_openimages_csv_to_pixels(tmp_path):
    header = "ImageID,LabelName1,LabelName2,XMin1,XMax1,YMin1,YMax1,XMin2,XMax2,YMin2,YMax2,RelationshipLabel\n"
    rows = ["img1,/m/man,/m/guitar,0.1,0.5,0.2,0.9,0.3,0.6,0.5,0.7,plays\n",
            "img1,/m/man,/m/chair,0.1,0.5,0.2,0.9,0.0,0.4,0.6,1.0,on\n",
            "img2,/m/chair,/m/man,0.0,0.5,0.0,0.5,0.25,0.75,0.25,0.75,under\n"]
    (tmp_path / "train.csv").write_text(header + "".join(rows))
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (200, 100)).save(images / "img1.jpg")
    data = load_openimages(tmp_path, "train", image_dir=images)
    assert data.object_names == ["/m/chair", "/m/guitar", "/m/man"]
    assert data.predicate_names == ["on", "plays", "under"]
    one, two = data.records[0], data.records[1]
    assert (one["height"], one["width"], one["size_from"]) == (100, 200, "image")
    assert one["boxes"][0] == pytest.approx([20, 20, 100, 90]) and one["box_labels"] == [2, 1, 0]
    assert one["relations"] == [[0, 1, 1], [0, 2, 0]]  # the man is one entity
    assert (two["height"], two["width"], two["size_from"]) == (1000, 1000, "nominal")
    assert two["boxes"][1] == pytest.approx([250, 250, 750, 750])
    (tmp_path / "bad.csv").write_text("ImageID,LabelName1\nx,y\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        load_openimages(tmp_path, "bad")


def test_flip_moves_image_and_boxes_together(tmp_path):
    image = np.zeros((20, 40, 3), dtype=np.uint8)
    image[5:10, 2:8] = 255  # a bright patch at x 2..7, y 5..9
    Image.fromarray(image).save(tmp_path / "a.png")
    record = {"file_name": "a.png", "height": 20, "width": 40, "boxes": [[2, 5, 8, 10]], "box_labels": [0],
              "relations": [[0, 0, 0]]}
    torch.manual_seed(0)
    flipped_once = False
    dataset = RelationshipDataset([record], image_dir=tmp_path, transform=relationship_transform(flip=True))
    for _ in range(8):
        sample = dataset[0]
        x1, y1, x2, y2 = sample["boxes"][0].round().int().tolist()
        patch = sample["pixel_values"][:, y1:y2, x1:x2]
        assert patch.min() > 0.9, "the box must still frame the bright patch"
        flipped_once |= x1 == 32
    assert flipped_once


def test_collate_keeps_per_image_lists_through_to_device():
    records = [{"file_name": "a", "height": 50, "width": 60, "boxes": [[0, 0, 10, 10], [5, 5, 20, 30]],
                "box_labels": [1, 0], "relations": [[0, 1, 2]]},
               {"file_name": "b", "height": 40, "width": 30, "boxes": [[0, 0, 10, 10], [1, 1, 9, 9], [2, 2, 8, 8]],
                "box_labels": [0, 0, 1], "relations": [[2, 0, 1], [1, 2, 0]]}]
    dataset = RelationshipDataset(records)  # no images: PredCls without the visual module
    batch = to_device(relationship_collate([dataset[0], dataset[1]]), torch.device("cpu"))
    assert set(batch) == {"boxes", "box_labels", "relations", "image_sizes"}
    assert [b.shape for b in batch["boxes"]] == [(2, 4), (3, 4)]
    assert [type(b) for b in batch["boxes"]] == [torch.Tensor, torch.Tensor]
    assert batch["relations"][1].tolist() == [[2, 0, 1], [1, 2, 0]]
    assert batch["image_sizes"] == [(50, 60), (40, 30)]
