"""The relationship head: late fusion, contributions, module switches, pair targets, modes and bad inputs."""

import pytest
import torch
import torch.nn.functional as F

from adlr_hf import registry
from adlr_hf.models.reldn import ReldnConfig, ReldnForRelationshipDetection, frequency_table, ordered_pairs

BOXES = torch.tensor([[[0.0, 0, 10, 10], [5, 5, 20, 20], [2, 3, 8, 30]],
                      [[1.0, 1, 5, 5], [3, 3, 9, 9], [0, 0, 0, 0]]])
LABELS = torch.tensor([[1, 2, 3], [4, 5, -1]])  # -1: a padding box
SIZES = torch.tensor([[40, 40], [20, 24]])
RELATIONS = torch.tensor([[[0, 1, 2], [1, 2, 0], [0, 1, 3]], [[1, 0, 4], [-1, -1, -1], [-1, -1, -1]]])


def model_for(name="reldn-tiny", seed=0, **changes):
    config = registry.get_config(name)
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    return ReldnForRelationshipDetection(config).eval()


def inputs_for(model, **extra):
    kwargs = dict(boxes=BOXES, box_labels=LABELS, image_sizes=SIZES, **extra)
    if model.config.use_visual:
        kwargs["pixel_values"] = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    return kwargs


def test_pairs_are_every_ordered_pair_and_padding_boxes_pair_with_nothing():
    assert ordered_pairs(3).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    out = model_for()(**inputs_for(model_for()))
    assert out.pair_mask.tolist() == [[True] * 6, [True, False, True, False, False, False]]
    assert out.pair_index[1].tolist() == [[0, 1], [-1, -1], [1, 0], [-1, -1], [-1, -1], [-1, -1]]
    assert (out.predicate_logits[~out.pair_mask] == 0).all()


@pytest.mark.parametrize("name", ["reldn-tiny", "reldn-tiny-visual"])
def test_fused_logits_are_the_sum_of_the_module_contributions(name):
    model = model_for(name)
    model.load_frequency_table(torch.randn(model.config.num_object_classes ** 2, model.config.num_predicate_logits))
    with torch.no_grad():
        out = model(**inputs_for(model), return_contributions=True)
    assert tuple(out.contributions) == model.config.enabled_modules
    total = sum(out.contributions.values())
    torch.testing.assert_close(total, out.predicate_logits, rtol=0, atol=1e-6)
    # each module really contributes (none is identically zero on the real pairs)
    assert all(value[out.pair_mask].abs().sum() > 0 for value in out.contributions.values())


def test_each_module_can_be_switched_off_and_the_rest_are_unchanged():
    full = model_for("reldn-tiny-visual")
    with torch.no_grad():
        everything = full(**inputs_for(full), return_contributions=True).contributions
    for off in ("use_spatial", "use_semantic", "use_subject_object"):
        part = model_for("reldn-tiny-visual", **{off: False})
        part.load_state_dict(full.state_dict(), strict=False)
        with torch.no_grad():
            out = part(**inputs_for(part), return_contributions=True)
        assert set(out.contributions) == set(part.config.enabled_modules) < set(everything)
        torch.testing.assert_close(out.predicate_logits, sum(everything[k] for k in out.contributions), rtol=0,
                                   atol=1e-5)


def test_language_bias_alone_is_the_frequency_table_lookup():
    triplets = [(1, 2, 2), (1, 2, 2), (1, 2, 0), (4, 5, 4)]
    model = model_for(use_spatial=False, frequency_bias_trainable=False)
    config = model.config
    table = frequency_table(triplets, config.num_object_classes, config.num_predicates)
    model.load_frequency_table(table)
    assert not any(p.requires_grad for p in model.parameters())  # 1811.09543's fixed table
    with torch.no_grad():
        out = model(boxes=BOXES, box_labels=LABELS)  # no image size needed without the spatial module
    for b in range(2):
        for slot, (s, o) in enumerate(out.pair_index[b].tolist()):
            if s >= 0:
                torch.testing.assert_close(out.predicate_logits[b, slot], table[LABELS[b, s], LABELS[b, o]])
    assert out.predicate_logits[0, 0].argmax() == 3  # (1, 2): predicate 2 twice -> column 3


def test_list_inputs_give_the_padded_results():
    model = model_for()
    padded = model(**inputs_for(model))
    listed = model(boxes=[BOXES[0], BOXES[1, :2]], box_labels=[LABELS[0], LABELS[1, :2]], image_sizes=SIZES.tolist())
    torch.testing.assert_close(listed.predicate_logits, padded.predicate_logits)
    assert torch.equal(listed.pair_mask, padded.pair_mask)


def test_loss_is_cross_entropy_on_every_pair_with_hand_made_targets():
    model = model_for()
    out = model(**inputs_for(model), labels=RELATIONS)
    # slots of image 0: (0,1) (0,2) (1,0) (1,2) (2,0) (2,1); (0,1) has predicates 2 and 3: the first listed wins
    targets = torch.tensor([[3, 0, 0, 1, 0, 0], [0, 0, 5, 0, 0, 0]])
    expected = F.cross_entropy(out.predicate_logits[out.pair_mask], targets[out.pair_mask])
    torch.testing.assert_close(out.loss, expected)
    assert next(iter(out.keys())) == "loss"
    relations_kw = model(**inputs_for(model), relations=[RELATIONS[0], RELATIONS[1, :1]])
    torch.testing.assert_close(relations_kw.loss, expected)


def test_training_samples_at_most_the_configured_pairs():
    model = model_for(fg_pairs_per_image=1, pairs_per_image=3).train()
    targets = torch.tensor([[3, 0, 0, 1, 0, 0]])
    chosen = model._sample_for_loss(targets, torch.ones(1, 6, dtype=torch.bool))
    assert chosen.sum() == 3 and (chosen & (targets > 0)).sum() == 1
    assert model.eval()._sample_for_loss(targets, torch.ones(1, 6, dtype=torch.bool)).all()


def test_contrastive_losses_are_added_to_the_cross_entropy():
    model = model_for(use_contrastive_losses=True)
    out = model(**inputs_for(model), labels=RELATIONS)
    terms = out.loss_terms
    assert {"cross_entropy", "class_agnostic_subject", "predicate_aware_object"} <= set(terms)
    weights = dict(zip(("class_agnostic", "entity_aware", "predicate_aware"), model.config.contrastive_weights))
    expected = terms["cross_entropy"] + sum(weights[k.rsplit("_", 1)[0]] * v for k, v in terms.items()
                                            if k != "cross_entropy")
    torch.testing.assert_close(out.loss.detach(), expected)
    assert terms["class_agnostic_subject"] > 0


@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_detector_modes_take_labels_and_boxes_from_the_frozen_detector(mode):
    model = model_for("reldn-tiny-visual", mode=mode, detector_score_threshold=0.0, detections_per_image=5).train()
    out = model(**inputs_for(model), labels=RELATIONS)
    out.loss.backward()
    assert all(p.grad is None for p in model.detector.parameters())  # frozen, as the reference
    assert model.union_box_head.fc6.weight.grad is not None and model.head.visual_mlp[0].weight.grad is not None
    n = out.boxes.shape[1]
    assert out.predicate_logits.shape == (2, n * (n - 1), 6) and out.subject_logits.shape[-1] == 8
    if mode == "sgcls":  # the given boxes, labelled by the detector's classifier
        assert torch.equal(out.boxes, BOXES)
        assert torch.equal(out.subject_logits[0, 0].argmax(), out.subject_logits[0, 1].argmax())  # both box 0
    else:  # training adds the ground-truth boxes to the detections, as the reference adds them to the proposals
        detected = model.eval()(**inputs_for(model)).boxes
        assert detected.shape[1] <= 5 and n == detected.shape[1] + 3
        assert torch.equal(out.boxes[0, -3:], BOXES[0])
        assert (out.pair_mask.sum(1) > 0).all()


def test_sgdet_with_nothing_detected_has_no_pairs_and_a_zero_loss():
    model = model_for("reldn-tiny-visual", mode="sgdet", detector_score_threshold=1.0)
    out = model(**inputs_for(model), labels=RELATIONS)
    assert out.predicate_logits.shape == (2, 0, 6) and out.boxes.shape == (2, 0, 4)
    assert out.loss.item() == 0.0
    with pytest.raises(ValueError, match="one class per box"):
        model_for()(boxes=BOXES, box_labels=LABELS[:, :2], image_sizes=SIZES)


@pytest.mark.parametrize("name,mode", [("reldn-tiny", "predcls"), ("reldn-tiny-visual", "predcls"),
                                       ("reldn-tiny-visual", "sgcls"), ("reldn-tiny-visual", "sgdet")])
def test_a_model_cast_to_bfloat16_trains_as_mixed_precision_engines_run_it(name, mode):
    # A freshly built model (train mode, never .eval()'d) cast as DeepSpeed / Accelerate bf16 cast it: the head runs in
    # bf16, the detector's RoIAlign, RPN and box heads in float32 (torchvision's CPU kernels have no bf16).
    config = registry.get_config(name)
    config.mode, config.detector_score_threshold, config.detections_per_image = mode, 0.0, 4
    torch.manual_seed(0)
    model = ReldnForRelationshipDetection(config).to(torch.bfloat16)
    out = model(**inputs_for(model), labels=RELATIONS)
    assert out.predicate_logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.head.semantic.weight.grad is not None


def test_detector_weights_from_a_local_file_load_into_the_detector_and_its_trainable_copies(tmp_path):
    from adlr_hf.models.reldn.convert_reldn import load_detector_weights

    model = model_for("reldn-tiny-visual")
    other = model_for("reldn-tiny-visual", seed=3)
    torch.save(other.detector.model.state_dict(), tmp_path / "detector.pth")
    load_detector_weights(model, tmp_path / "detector.pth")
    expected = other.detector.model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.detector.model.state_dict().items())
    source = other.detector.model.roi_heads.box_head.state_dict()
    for head in (model.subject_box_head, model.object_box_head, model.union_box_head):
        assert all(torch.equal(head.state_dict()[k], v) for k, v in source.items())
    with pytest.raises(FileNotFoundError, match="torchvision Faster R-CNN state dict"):
        load_detector_weights(model, tmp_path / "missing.pth")


def test_bad_inputs_are_refused_with_the_value_and_the_fix():
    model = model_for()
    flipped = BOXES.clone()
    flipped[0, 1] = torch.tensor([20.0, 5, 5, 20])
    with pytest.raises(ValueError, match=r"box 1 of image 0 .* x2 < x1.*ymin, ymax, xmin, xmax"):
        model(boxes=flipped, box_labels=LABELS, image_sizes=SIZES)
    with pytest.raises(ValueError, match="class 9, beyond the 8 object classes"):
        model(boxes=BOXES, box_labels=torch.tensor([[1, 2, 9], [0, 0, -1]]), image_sizes=SIZES)
    with pytest.raises(ValueError, match="pass box_labels"):
        model(boxes=BOXES, image_sizes=SIZES)
    with pytest.raises(ValueError, match="pass image_sizes"):
        model(boxes=BOXES, box_labels=LABELS)
    with pytest.raises(ValueError, match="beyond the 5 predicates"):
        model(boxes=BOXES, box_labels=LABELS, image_sizes=SIZES, labels=torch.tensor([[[0, 1, 5]], [[0, 1, 0]]]))
    with pytest.raises(ValueError, match="box index beyond the image's boxes"):  # box 2 of image 1 is padding
        model(boxes=BOXES, box_labels=LABELS, image_sizes=SIZES, labels=torch.tensor([[[0, 1, 0]], [[0, 2, 0]]]))
    visual = model_for("reldn-tiny-visual")
    with pytest.raises(ValueError, match="needs pixel_values"):
        visual(boxes=BOXES, box_labels=LABELS, image_sizes=SIZES)
    with pytest.raises(ValueError, match="use_subject_object=True needs the visual features"):
        ReldnConfig(use_visual=False)
    with pytest.raises(ValueError, match="mode='sgdet'"):
        ReldnConfig(use_visual=False, use_subject_object=False, mode="sgdet")


def test_an_image_without_boxes_has_no_pairs_and_no_loss_share():
    model = model_for()
    boxes = torch.cat([BOXES[:1], torch.zeros(1, 3, 4)])
    labels = torch.cat([LABELS[:1], torch.full((1, 3), -1)])
    out = model(boxes=boxes, box_labels=labels, image_sizes=SIZES, labels=RELATIONS[:1].expand(2, -1, -1) *
                torch.tensor([1, 0])[:, None, None] - torch.tensor([0, 1])[:, None, None])
    assert not out.pair_mask[1].any()
    alone = model(boxes=BOXES[:1], box_labels=LABELS[:1], image_sizes=SIZES[:1], labels=RELATIONS[:1])
    torch.testing.assert_close(out.loss, alone.loss)
