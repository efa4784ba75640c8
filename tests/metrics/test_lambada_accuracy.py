"""The LAMBADA accuracy metric: strict (every target token) vs last token, hand-computed."""

from pathlib import Path

import evaluate
import pytest

from adlr_hf.metrics.lambada_accuracy import LambadaAccuracy

METRIC_DIR = Path(__file__).resolve().parents[2] / "adlr_hf" / "metrics" / "lambada_accuracy"

PREDICTIONS = [[1, 2], [3, 9], [5], [7, 8]]
REFERENCES = [[1, 2], [4, 9], [6], [7, 0]]
# strict: only example 0 matches everywhere -> 1/4; last token: examples 0 and 1 -> 2/4.


def test_strict_and_last_token_differ():
    out = LambadaAccuracy(keep_in_memory=True).compute(predictions=PREDICTIONS, references=REFERENCES)
    assert out == {"accuracy": 0.25, "accuracy_last_token": 0.5, "num_examples": 4}


def test_loads_offline_by_path_and_add_batch():
    metric = evaluate.load(str(METRIC_DIR))
    metric.add_batch(predictions=PREDICTIONS[:3], references=REFERENCES[:3])
    metric.add_batch(predictions=PREDICTIONS[3:], references=REFERENCES[3:])
    assert metric.compute() == {"accuracy": 0.25, "accuracy_last_token": 0.5, "num_examples": 4}


@pytest.mark.parametrize("predictions, references, match", [
    ([[1]], [[1, 2]], "example 0"),
    ([[]], [[]], "at least one"),
    ([], [], "no LAMBADA examples"),
])
def test_bad_inputs(predictions, references, match):
    with pytest.raises(ValueError, match=match):
        LambadaAccuracy(keep_in_memory=True).compute(predictions=predictions, references=references)
