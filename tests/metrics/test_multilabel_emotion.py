"""Multi-label emotion metric: equal to sklearn on random cases, the empty-empty Jaccard rule, offline loading."""

from pathlib import Path

import evaluate
import numpy as np
import pytest
from sklearn.metrics import f1_score, jaccard_score

from adlr_hf.metrics import metric_path
from adlr_hf.metrics.multilabel_emotion import MultilabelEmotion

METRIC_DIR = Path(__file__).resolve().parents[2] / "adlr_hf" / "metrics" / "multilabel_emotion"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("empty_score", [1.0, 0.0])
def test_equals_sklearn_on_random_cases(seed, empty_score):
    rng = np.random.default_rng(seed)
    gold = (rng.random((200, 8)) < 0.2).astype(int)
    pred = (rng.random((200, 8)) < 0.25).astype(int)
    gold[:15] = 0  # examples with no gold label, some of them with no prediction either
    pred[:8] = 0
    gold[:, 7] = 0  # a class that never occurs: F1 0 (tp = 0)
    out = MultilabelEmotion(keep_in_memory=True).compute(predictions=pred.tolist(), references=gold.tolist(),
                                                          empty_score=empty_score)
    per_class = f1_score(gold, pred, average=None, zero_division=0)
    assert out["per_class_f1"] == pytest.approx(per_class.tolist())
    assert out["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro", zero_division=0))
    assert out["micro_f1"] == pytest.approx(f1_score(gold, pred, average="micro", zero_division=0))
    assert out["jaccard_accuracy"] == pytest.approx(
        jaccard_score(gold, pred, average="samples", zero_division=empty_score))
    assert out["num_examples"] == 200


def test_hand_computed_example_and_empty_rule():
    out = MultilabelEmotion(keep_in_memory=True).compute(predictions=[[1, 0, 1], [0, 0, 0]],
                                                          references=[[1, 1, 0], [0, 0, 0]],
                                                          label_names=["a", "b", "c"])
    # example 1: |{a}| / |{a, b, c}| = 1/3; example 2 has neither gold nor predicted labels -> 1 (the default rule)
    assert out["jaccard_accuracy"] == pytest.approx((1 / 3 + 1) / 2)
    assert out["per_class_f1"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert out["micro_f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    zero = MultilabelEmotion(keep_in_memory=True).compute(predictions=[[0, 0]], references=[[0, 0]], empty_score=0.0)
    assert zero["jaccard_accuracy"] == 0.0 and zero["macro_f1"] == 0.0


def test_loads_offline_by_path_with_add_batch_and_rejects_bad_input():
    metric = evaluate.load(str(METRIC_DIR))
    assert metric_path("multilabel_emotion") == str(METRIC_DIR)
    metric.add_batch(predictions=[[1, 0]], references=[[1, 0]])
    metric.add_batch(predictions=[[0, 1]], references=[[1, 1]])
    out = metric.compute()
    assert out["per_class_f1"] == [pytest.approx(2 / 3), 1.0] and out["num_examples"] == 2
    with pytest.raises(ValueError, match="only 0 and 1"):
        MultilabelEmotion(keep_in_memory=True).compute(predictions=[[2, 0]], references=[[1, 0]])
