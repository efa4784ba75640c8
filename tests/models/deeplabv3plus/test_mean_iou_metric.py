"""The mean_iou metric module against an independent confusion-matrix computation (sklearn) on random and
hand-made maps, through the evaluate module (loaded offline from its folder) and the torch functions."""


import evaluate
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion

from adlr_hf.metrics import metric_path
from adlr_hf.metrics.mean_iou import MeanIoU, confusion_matrix, scores_from_confusion


def sklearn_scores(preds, refs, num_labels, ignore_index):
    ref = np.concatenate([r.ravel() for r in refs])
    pred = np.concatenate([p.ravel() for p in preds])
    keep = ref != ignore_index
    cm = sk_confusion(ref[keep], pred[keep], labels=np.arange(num_labels)).astype(float)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (cm.sum(0) + cm.sum(1) - tp)
        acc = tp / cm.sum(1)
    return {"mean_iou": np.nanmean(iou), "mean_accuracy": np.nanmean(acc), "overall_accuracy": tp.sum() / cm.sum(),
            "per_category_iou": iou, "per_category_accuracy": acc}


def assert_scores_equal(ours, expected):
    for key, value in expected.items():
        np.testing.assert_allclose(ours[key], value, rtol=1e-12, equal_nan=True, err_msg=key)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_maps_equal_sklearn_confusion_matrix(seed):
    rng = np.random.default_rng(seed)
    num_labels = 6
    refs = [rng.integers(0, num_labels, (5, 7)) for _ in range(4)]
    for r in refs:
        r[rng.random(r.shape) < 0.2] = 255
    preds = [np.where(rng.random(r.shape) < 0.6, np.clip(r, 0, num_labels - 1), rng.integers(0, num_labels, r.shape))
             for r in refs]
    preds[0][preds[0] == 5] = 4  # class 5 predicted less often: IoU and accuracy differ per class
    expected = sklearn_scores(preds, refs, num_labels, 255)
    ours = MeanIoU(keep_in_memory=True).compute(predictions=preds, references=refs, num_labels=num_labels,
                                                ignore_index=255)
    assert_scores_equal(ours, expected)
    matrix = sum(confusion_matrix(torch.from_numpy(p), torch.from_numpy(r), num_labels) for p, r in zip(preds, refs))
    assert_scores_equal(scores_from_confusion(matrix), expected)


def test_hand_made_case():
    """class 0: ref 3 pixels, pred 2 of them + 1 more -> IoU 2/4, acc 2/3; class 1: ref 2, pred 1 of them -> IoU
    1/3, acc 1/2; class 2 absent from both -> NaN, skipped; the ignored pixel (predicted 2) is not counted."""
    ref = np.array([[0, 0, 0], [1, 1, 255]])
    pred = np.array([[0, 0, 1], [0, 1, 2]])
    out = evaluate.load(metric_path("mean_iou")).compute(predictions=[pred], references=[ref], num_labels=3,
                                                         ignore_index=255)
    assert out["mean_iou"] == pytest.approx((2 / 4 + 1 / 3) / 2)
    assert out["mean_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert out["overall_accuracy"] == pytest.approx(3 / 5)
    assert np.isnan(out["per_category_iou"][2])
    filled = MeanIoU().compute(predictions=[pred], references=[ref], num_labels=3, ignore_index=255, nan_to_num=0)
    assert filled["per_category_iou"][2] == 0


def test_camvid_style_ignore_11_through_label_map():
    ref = np.array([[0, 11], [1, 1]])
    pred = np.array([[0, 0], [1, 0]])
    out = MeanIoU().compute(predictions=[pred], references=[ref], num_labels=11, ignore_index=255,
                            label_map={11: 255})
    assert out["per_category_iou"][0] == pytest.approx(1 / 2) and out["per_category_iou"][1] == pytest.approx(1 / 2)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match=r"references hold values \[7\] outside the classes \[0, 3\)"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([7, 1]), 3)
    with pytest.raises(ValueError, match=r"predictions hold values \[3\]"):
        confusion_matrix(torch.tensor([3, 1]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), 3)
