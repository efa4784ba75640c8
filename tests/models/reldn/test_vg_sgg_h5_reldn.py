"""The VG-150 benchmark release (VG-SGG.h5 + VG-SGG-dicts.json + image_data.json) on files written here: boxes from
(cx, cy, w, h) at the 1024 scale to xyxy pixels of the image, 1-based labels and predicates to 0-based, global box
rows to the image's entities, the train / val / test splits, skipped images, bad input, precedence over json, and
one `adlr-hf train --dataset vg` run on it."""

import json

import h5py
import numpy as np
import pytest

from adlr_hf.data.bad_samples import BadSamples
from adlr_hf.data.relationships import load_visual_genome
from adlr_hf.data.relationships.vg_sgg_h5 import load_vg_sgg_h5
from dist_utils import run_ranks
from models.video_utils import cli_train

VOCABULARY = {"label_to_idx": {"cup": 1, "table": 2, "man": 3}, "predicate_to_idx": {"on": 1, "near": 2},
              "idx_to_label": {"1": "cup", "2": "table", "3": "man"}}


def write_vg150(folder, images, sizes, relationships=None, labels=None):
    """`images`: per image (split flag, [(label, cx, cy, w, h)...], [(subject row, object row, predicate)...]) with
    rows local to the image; written with global rows, -1 for an image without boxes or relations."""
    boxes, box_labels, pairs, predicates, index = [], [], [], [], {k: [] for k in ("fb", "lb", "fr", "lr")}
    for _, entities, rels in images:
        first = len(boxes)
        index["fb"].append(first if entities else -1)
        index["lb"].append(first + len(entities) - 1 if entities else -1)
        index["fr"].append(len(pairs) if rels else -1)
        index["lr"].append(len(pairs) + len(rels) - 1 if rels else -1)
        for label, *box in entities:
            boxes.append(box)
            box_labels.append([label])
        for s, o, p in rels:
            pairs.append([first + s, first + o])
            predicates.append([p])
    with h5py.File(folder / "VG-SGG.h5", "w") as h5:
        h5["split"] = np.array([flag for flag, _, _ in images], dtype=np.int64)
        for key, name in (("fb", "first_box"), ("lb", "last_box"), ("fr", "first_rel"), ("lr", "last_rel")):
            h5[f"img_to_{name}"] = np.array(index[key], dtype=np.int32)
        h5["labels"] = np.array(labels if labels is not None else box_labels, dtype=np.int64).reshape(-1, 1)
        h5["boxes_1024"] = np.array(boxes, dtype=np.int32).reshape(-1, 4)
        h5["boxes_512"] = (np.array(boxes, dtype=np.int32) // 2).reshape(-1, 4)
        h5["relationships"] = np.array(relationships if relationships is not None else pairs,
                                       dtype=np.int32).reshape(-1, 2)
        h5["predicates"] = np.array(predicates, dtype=np.int64).reshape(-1, 1)
    (folder / "VG-SGG-dicts.json").write_text(json.dumps(VOCABULARY))
    (folder / "image_data.json").write_text(json.dumps(
        [{"image_id": 100 + i, "width": w, "height": h, "url": f"https://x/{100 + i}.jpg"}
         for i, (w, h) in enumerate(sizes)]))
    return folder


IMAGES = [
    (0, [(1, 100, 50, 40, 20), (2, 512, 256, 1024, 512)], [(0, 1, 1)]),  # 2048x1024: scale 2
    (0, [], []),  # no box: left out
    (0, [(1, 10, 10, 4, 4), (2, 30, 30, 4, 4)], []),  # no relation: left out
    (0, [(3, 512, 512, 200, 100), (1, 300, 1020, 100, 10), (2, 10, 10, 20, 20)],  # 512x600: scale 600/1024
     [(0, 1, 2), (2, 0, 1), (0, 1, 2)]),  # the third repeats the first
    (2, [(1, 512, 256, 512, 256), (2, 100, 100, 100, 100)], [(1, 0, 2)]),  # test, 100x50: scale 100/1024
]
SIZES = [(2048, 1024), (64, 64), (64, 64), (512, 600), (100, 50)]


def test_boxes_labels_relations_and_splits_by_hand(tmp_path):
    write_vg150(tmp_path, IMAGES, SIZES)
    val = load_vg_sgg_h5(tmp_path, "val", val_images=1)
    train = load_vg_sgg_h5(tmp_path, "train", val_images=1)
    test = load_vg_sgg_h5(tmp_path, "test", val_images=1)
    assert val.object_names == ["cup", "table", "man"] and val.predicate_names == ["on", "near"]
    # the usable train images are h5 images 0 and 3: val takes the first, train the rest
    assert [r["file_name"] for r in val.records] == ["100.jpg"]
    assert [r["file_name"] for r in train.records] == ["103.jpg"]
    assert [r["file_name"] for r in test.records] == ["104.jpg"]
    assert train.empty_images == 2 and test.empty_images == 0
    row = val.records[0]
    assert (row["width"], row["height"], row["size_from"]) == (2048, 1024, "annotation")
    # (100, 50, 40, 20) -> [80, 40, 120, 60] at 1024 -> x2; (512, 256, 1024, 512) -> the whole image
    assert row["boxes"] == [[160, 80, 240, 120], [0, 0, 2048, 1024]]
    assert row["box_labels"] == [0, 1] and row["relations"] == [[0, 1, 0]]
    row = train.records[0]
    s = 600 / 1024
    expected = [[412 * s, 462 * s, 612 * s, 562 * s],
                [250 * s, 1015 * s, 350 * s, 600],  # 1025 * s = 600.6 overshoots the 600-pixel image: clipped
                [0, 0, 20 * s, 20 * s]]
    np.testing.assert_allclose(row["boxes"], expected, rtol=0, atol=1e-4)
    assert row["box_labels"] == [2, 0, 1]
    assert row["relations"] == [[0, 1, 1], [2, 0, 0]]  # global rows 4..6 -> 0..2; the repeat kept once
    row = test.records[0]
    s = 100 / 1024
    np.testing.assert_allclose(row["boxes"], [[256 * s, 128 * s, 768 * s, 384 * s], [50 * s, 50 * s, 150 * s,
                                                                                      150 * s]], atol=1e-4)
    assert row["relations"] == [[1, 0, 1]] and row["box_labels"] == [0, 1]


def test_the_default_val_is_the_first_5000_usable_train_images(tmp_path):
    filler = [(0, [(1, 10, 10, 4, 4), (2, 30, 30, 4, 4)], [(0, 1, 1)])] * 5000
    write_vg150(tmp_path, filler + IMAGES, [(64, 64)] * 5000 + SIZES)
    train = load_vg_sgg_h5(tmp_path, "train")
    assert [r["file_name"] for r in train.records] == ["5100.jpg", "5103.jpg"]
    assert len(load_vg_sgg_h5(tmp_path, "val").records) == 5000


def test_the_h5_file_takes_precedence_over_json_annotations(tmp_path):
    write_vg150(tmp_path, IMAGES, SIZES)
    (tmp_path / "relationships.json").write_text("[]")
    (tmp_path / "annotations_test.json").write_text("{}")
    data = load_visual_genome(tmp_path, "test")
    assert [r["file_name"] for r in data.records] == ["104.jpg"] and data.source == "vg"


def test_the_four_corrupted_images_of_image_data_json_are_dropped(tmp_path):
    write_vg150(tmp_path, IMAGES, SIZES)
    listed = json.loads((tmp_path / "image_data.json").read_text())
    listed.insert(1, {"image_id": 1592, "width": 1, "height": 1})
    (tmp_path / "image_data.json").write_text(json.dumps(listed))
    assert load_vg_sgg_h5(tmp_path, "test").records[0]["file_name"] == "104.jpg"
    listed.insert(1, {"image_id": 7, "width": 1, "height": 1})
    (tmp_path / "image_data.json").write_text(json.dumps(listed))
    with pytest.raises(ValueError, match="lists 6 images .* the h5 file holds 5"):
        load_vg_sgg_h5(tmp_path, "test")


def test_a_box_row_beyond_the_file_and_a_label_beyond_the_vocabulary_follow_the_bad_sample_policy(tmp_path):
    pairs = [[0, 1], [4, 99], [6, 4], [4, 5], [8, 7]]  # image 3's first relation names box row 99
    labels = [[1], [2], [1], [2], [3], [1], [2], [4], [2]]  # image 4's first box has class 4 of 3
    write_vg150(tmp_path, IMAGES, SIZES, relationships=pairs, labels=labels)
    with pytest.raises(ValueError, match="beyond the image's 3"):
        load_vg_sgg_h5(tmp_path, "train", val_images=1)
    with pytest.raises(ValueError, match="object class 3 of box 0 is outside the vocabulary of 3"):
        load_vg_sgg_h5(tmp_path, "test")
    bad = BadSamples("skip")
    data = load_vg_sgg_h5(tmp_path, "train", val_images=0, bad=bad)  # no val: all usable train images
    assert [r["file_name"] for r in data.records] == ["100.jpg"]
    assert [name for name, _ in data.skipped] == ["103.jpg"] and len(bad.found) == 1


def test_adlr_hf_train_predcls_on_the_h5_release(tmp_path):
    filler = [(0, [(1, 100, 100, 80, 60), (2, 300, 200, 200, 100)], [(0, 1, 1)])] * 5000
    write_vg150(tmp_path, filler + IMAGES, [(640, 480)] * 5000 + SIZES)
    run = tmp_path / "run"
    argv = ["--model", "reldn-vrd-predcls-novisual", "--data", str(tmp_path), "--dataset", "vg", "--mode",
            "predcls", "--steps", "2", "--micro-batch-size", "2", "--lr", "1e-3", "--seed", "7", "--out", str(run),
            "--no-progress", "--eval-split", "test", "--eval-every", "2"]
    run_ranks(cli_train, argv, world_size=1)
    info = json.loads((run / "run_info.json").read_text())
    assert (info["dataset"], info["mode"], info["train_images"], info["eval_split"]) == ("vg", "predcls", 2, "test")
    assert 0 <= info["eval_R@20"] <= info["eval_R@50"] <= 1
    config = json.loads(next(run.rglob("config.json")).read_text())
    assert config["num_object_classes"] == 3 and config["num_predicates"] == 2
