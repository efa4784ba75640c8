"""Triplet entity scores in the relationship-detection evaluation: the detector's softmax over background + classes
(as the reference scores an entity), not a softmax renormalised over the object classes without background."""

from types import SimpleNamespace

import pytest
import torch

from adlr_hf import registry
from adlr_hf.models.reldn import ReldnForRelationshipDetection
from adlr_hf.models.reldn.task_relationship_detection import batch_predictions


def test_entity_score_is_the_softmax_with_background_by_hand():
    # one image, two boxes, two classes. Detector scores (background, c0, c1): box 0 (2, 1, 0), box 1 (0, 0, 3).
    raw = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    log_probabilities = raw.log_softmax(-1)[:, 1:]
    pairs = torch.tensor([[[0, 1], [1, 0]]])
    outputs = SimpleNamespace(pair_mask=torch.tensor([[True, True]]), pair_index=pairs,
                              boxes=torch.tensor([[[0.0, 0, 4, 4], [2, 2, 8, 8]]]),
                              predicate_logits=torch.zeros(1, 2, 3),
                              subject_logits=log_probabilities[pairs[..., 0]],
                              object_logits=log_probabilities[pairs[..., 1]])
    got = batch_predictions(outputs)[0]
    e = torch.e
    box0 = e / (e ** 2 + e + 1)  # class 0; the renormalised score would be e / (e + 1)
    box1 = e ** 3 / (e ** 3 + 2)  # class 1; renormalised e^3 / (e^3 + 1)
    assert got["subject_labels"].tolist() == [0, 1] and got["object_labels"].tolist() == [1, 0]
    assert got["subject_scores"].tolist() == pytest.approx([box0, box1], rel=1e-6)
    assert got["object_scores"].tolist() == pytest.approx([box1, box0], rel=1e-6)


@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_entity_scores_of_the_model_are_the_detectors_softmax_with_background(mode):
    config = registry.get_config("reldn-tiny-visual")
    config.mode = mode
    torch.manual_seed(0)
    model = ReldnForRelationshipDetection(config).eval()
    raw = []
    predictor = model.detector.model.roi_heads.box_predictor
    handle = predictor.register_forward_hook(lambda module, args, output: raw.append(output[0].detach()))
    boxes = torch.tensor([[[0.0, 0, 10, 10], [5, 5, 20, 20], [2, 3, 8, 30]]])
    with torch.no_grad():
        out = model(pixel_values=torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(1)), boxes=boxes,
                    box_labels=torch.tensor([[1, 2, 3]]), image_sizes=torch.tensor([[40, 40]]))
    handle.remove()
    probabilities = raw[-1].softmax(-1)  # the relation model's class scores of its boxes (after any detection)
    n = out.boxes.shape[1]
    assert probabilities.shape[0] == n and out.pair_mask.any()
    got = batch_predictions(out)[0]
    pairs = out.pair_index[0][out.pair_mask[0]]
    best, label = probabilities[:, 1:].max(-1)
    assert got["subject_labels"].tolist() == label[pairs[:, 0]].tolist()
    assert got["subject_scores"].tolist() == pytest.approx(best[pairs[:, 0]].tolist(), rel=1e-5)
    assert got["object_scores"].tolist() == pytest.approx(best[pairs[:, 1]].tolist(), rel=1e-5)
    # the background takes a share: the scores stay under the renormalised ones
    assert (torch.as_tensor(got["subject_scores"]) < (best / probabilities[:, 1:].sum(-1))[pairs[:, 0]] - 1e-6).all()
