"""Top-k accuracy: against sklearn.metrics.top_k_accuracy_score (ties included), both input forms, offline loading."""

from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from sklearn.metrics import top_k_accuracy_score

from adlr_hf.metrics import metric_path
from adlr_hf.metrics.topk_accuracy import TopKAccuracy

METRIC_DIR = Path(__file__).resolve().parents[2] / "adlr_hf" / "metrics" / "topk_accuracy"


@pytest.mark.parametrize("integer_scores", [False, True])  # integer scores: many ties
def test_equals_sklearn_top_k_accuracy_score(integer_scores):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (300, 12)).astype(float) if integer_scores else rng.normal(size=(300, 12))
    labels = rng.integers(0, 12, 300)
    out = TopKAccuracy(keep_in_memory=True).compute(predictions=scores.tolist(), references=labels.tolist(),
                                                    k=(1, 2, 5, 11, 12))
    for k in (1, 2, 5, 11):
        assert out[f"top{k}"] == pytest.approx(top_k_accuracy_score(labels, scores, k=k, labels=np.arange(12)))
    assert out["num_examples"] == 300 and out["top12"] == 1.0


def test_hand_computed_example_and_default_ks():
    scores = [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]
    out = TopKAccuracy(keep_in_memory=True).compute(predictions=scores, references=[2, 0, 0])
    # ranks of the labels: 1, 0, 2 -> top1 = 1/3; top5 >= number of classes -> 1
    assert out == {"top1": pytest.approx(1 / 3), "top5": 1.0, "num_examples": 3}


def test_loads_offline_by_path_with_add_batch_and_indices_config():
    logits = torch.randn(40, 20, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 20, (40,), generator=torch.Generator().manual_seed(1))
    metric = evaluate.load(str(METRIC_DIR))
    metric.add_batch(predictions=logits[:25].tolist(), references=labels[:25].tolist())
    metric.add_batch(predictions=logits[25:].tolist(), references=labels[25:].tolist())
    by_scores = metric.compute()
    ranked = evaluate.load(metric_path("topk_accuracy"), "indices")
    by_indices = ranked.compute(predictions=logits.topk(5).indices.tolist(), references=labels.tolist())
    assert by_scores == by_indices
    expected = (logits.topk(5).indices == labels[:, None]).any(1).float().mean().item()  # the reference's rule
    assert by_scores["top5"] == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, match", [
    (dict(predictions=[[0.1, 0.9]], references=[2]), r"class ids in \[0, 2\)"),
    (dict(predictions=[[0.1, 0.9], [0.3]], references=[0, 0]), "same, non-zero number of classes"),
    (dict(predictions=[[float("nan"), 0.9]], references=[0]), "NaN"),
    (dict(predictions=[[0.1, 0.9]], references=[0], k=0), "positive int"),
    (dict(predictions=[], references=[]), "no examples"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TopKAccuracy(keep_in_memory=True).compute(**kwargs)


def test_indices_need_at_least_k_entries():
    with pytest.raises(ValueError, match="example 0 ranks 2 classes but k=5"):
        TopKAccuracy(config_name="indices", keep_in_memory=True).compute(predictions=[[1, 2]], references=[1])
