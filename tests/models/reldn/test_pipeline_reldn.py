"""The relationship-detection pipeline on a real VRD test image with its annotated boxes (a tiny random model: the
structure of the answer, not its quality)."""

import json
import math
from pathlib import Path

import pytest
import torch
import transformers

import adlr_hf  # noqa: F401 - registers the family and its pipeline
from adlr_hf import registry
from adlr_hf.models.reldn import ReldnForRelationshipDetection

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
IMAGE = DATA / "vrd-images" / "test" / "4392556686_44d71ff5a0_o.jpg"
pytestmark = pytest.mark.skipif(not IMAGE.is_file() or not (DATA / "vrd").is_dir(),
                                reason="the shared VRD data (vrd/, vrd-images/) is not staged")


def annotated_boxes():
    """The image's distinct annotated boxes as xyxy (VRD stores [ymin, ymax, xmin, xmax]) and their classes."""
    relations = json.loads((DATA / "vrd" / "annotations_test.json").read_text())[IMAGE.name]
    boxes = {}
    for relation in relations:
        for role in ("subject", "object"):
            ymin, ymax, xmin, xmax = relation[role]["bbox"]
            boxes.setdefault((xmin, ymin, xmax, ymax), relation[role]["category"])
    return [list(box) for box in boxes], list(boxes.values())


def vrd_model(tmp_path, **changes):
    config = registry.get_config("reldn-tiny-visual")
    config.num_object_classes, config.num_predicates = 100, 70
    config.object_names = json.loads((DATA / "vrd" / "objects.json").read_text())
    config.predicate_names = json.loads((DATA / "vrd" / "predicates.json").read_text())
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    model = ReldnForRelationshipDetection(config).eval()
    model.save_pretrained(tmp_path / "model")
    return transformers.pipeline("relationship-detection", model=str(tmp_path / "model"))


def test_predcls_triplets_on_a_real_vrd_image(tmp_path):
    detect = vrd_model(tmp_path)
    boxes, labels = annotated_boxes()
    n = len(boxes)
    results = detect(str(IMAGE), boxes=boxes, labels=labels, top_k=10, predicates_per_pair=2)
    assert len(results) == min(10, n * (n - 1) * 2)
    names = detect.model.config.object_names
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    everything = detect(str(IMAGE), boxes=boxes, labels=labels, top_k=10_000)
    assert len(everything) == n * (n - 1)
    for result in results:
        assert list(result) == ["subject", "predicate", "object", "score", "subject_box", "object_box",
                                "contributions"]
        subject, obj = boxes.index(result["subject_box"]), boxes.index(result["object_box"])
        assert subject != obj
        assert result["subject"] == names[labels[subject]] and result["object"] == names[labels[obj]]
        assert result["predicate"] in detect.model.config.predicate_names
        assert set(result["contributions"]) == {"visual", "spatial", "semantic", "subject", "object"}
    # the contributions explain the score: their sum is the fused logit, whose softmax (with the other columns) is
    # the predicate probability = the score in predcls (entity scores 1)
    with torch.no_grad():
        from PIL import Image
        import numpy as np

        image = torch.from_numpy(np.asarray(Image.open(IMAGE).convert("RGB")).copy()).permute(2, 0, 1).float() / 255
        out = detect.model(pixel_values=[image], boxes=torch.tensor([boxes], dtype=torch.float32),
                           box_labels=torch.tensor([labels]), image_sizes=[image.shape[1:]])
    top = results[0]
    slot = [tuple(p) for p in out.pair_index[0].tolist()].index((boxes.index(top["subject_box"]),
                                                                 boxes.index(top["object_box"])))
    logits = out.predicate_logits[0, slot]
    column = detect.model.config.predicate_names.index(top["predicate"]) + 1
    assert math.isclose(sum(top["contributions"].values()), float(logits[column]), rel_tol=1e-5, abs_tol=1e-5)
    assert math.isclose(top["score"], float(logits.softmax(-1)[column]), rel_tol=1e-5)


def test_sgdet_needs_only_the_image(tmp_path):
    detect = vrd_model(tmp_path, mode="sgdet", detector_score_threshold=0.0, detections_per_image=4)
    results = detect(str(IMAGE), top_k=5)
    assert 0 < len(results) <= 5
    assert all(len(r["subject_box"]) == 4 and 0 < r["score"] <= 1 for r in results)


def test_bad_pipeline_inputs_are_refused(tmp_path):
    detect = vrd_model(tmp_path)
    boxes, labels = annotated_boxes()
    with pytest.raises(ValueError, match="pass boxes"):
        detect(str(IMAGE))
    with pytest.raises(ValueError, match="outside the 640×480 image"):
        detect(str(IMAGE), boxes=[[0, 0, 700, 10]], labels=[0])
    with pytest.raises(ValueError, match="pass labels"):
        detect(str(IMAGE), boxes=boxes)
    with pytest.raises(ValueError, match="top_k=0"):
        detect(str(IMAGE), boxes=boxes, labels=labels, top_k=0)
