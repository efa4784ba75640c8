"""The WikiText perplexity metric (Megatron-LM's formula) on hand-computed cases, by path and as a class."""

import math
from pathlib import Path

import evaluate
import pytest

from adlr_hf.metrics import metric_path
from adlr_hf.metrics.wikitext_perplexity import WikitextPerplexity as _WikitextPerplexity



def WikitextPerplexity():  # noqa: N802 - in memory: a failed compute leaves no cache-file lock for the next test
    return _WikitextPerplexity(keep_in_memory=True)


METRIC_DIR = Path(__file__).resolve().parents[2] / "adlr_hf" / "metrics" / "wikitext_perplexity"


def test_loads_offline_by_path():
    assert metric_path("wikitext_perplexity") == str(METRIC_DIR)
    metric = evaluate.load(str(METRIC_DIR))
    out = metric.compute(predictions=[0.5, 1.0, 1.5, 2.0], references=[1, 1, 1, 1], num_original_tokens=3)
    assert out["num_tokens"] == 5


def test_hand_computed():
    # Four targets (T = 5) with NLLs 0.5, 1, 1.5, 2: L = 5/4 = 1.25; T_o = 3, so the word-level exponent is
    # L * (T-1)/(T_o-1) = 1.25 * 4/2 = 2.5.
    out = WikitextPerplexity().compute(predictions=[0.5, 1.0, 1.5, 2.0], references=[1, 1, 1, 1],
                                       num_original_tokens=3)
    assert out == {"perplexity": pytest.approx(3.4903429574618414, rel=1e-12),
                   "adjusted_perplexity": pytest.approx(12.182493960703473, rel=1e-12),
                   "num_tokens": 5, "num_original_tokens": 3}
    assert out["perplexity"] == pytest.approx(math.exp(1.25), rel=1e-12)
    assert out["adjusted_perplexity"] == pytest.approx(math.exp(2.5), rel=1e-12)


def test_grouped_rows_and_add_batch_equal_per_token_rows():
    per_token = WikitextPerplexity().compute(predictions=[0.5, 1.0, 1.5, 2.0], references=[1, 1, 1, 1],
                                             num_original_tokens=3)
    grouped = WikitextPerplexity().compute(predictions=[1.5, 3.5], references=[2, 2], num_original_tokens=3)
    metric = WikitextPerplexity()
    metric.add_batch(predictions=[1.5], references=[2])
    metric.add_batch(predictions=[0.0, 3.5], references=[0, 2])
    batched = metric.compute(num_original_tokens=3)
    for out in (grouped, batched):
        assert out["num_tokens"] == 5
        assert out["perplexity"] == pytest.approx(per_token["perplexity"], rel=1e-12)
        assert out["adjusted_perplexity"] == pytest.approx(per_token["adjusted_perplexity"], rel=1e-12)


def test_adjusted_is_scaled_before_exponentiating():
    out = WikitextPerplexity().compute(predictions=[30.0], references=[10], num_original_tokens=5)
    loss, ratio = 3.0, 10 / 4  # T - 1 = 10, T_o - 1 = 4
    assert out["adjusted_perplexity"] == pytest.approx(math.exp(loss * ratio), rel=1e-12)
    assert out["adjusted_perplexity"] == pytest.approx(math.exp(math.log(out["perplexity"]) * ratio), rel=1e-12)


def test_exponents_clamped_at_20_separately():
    out = WikitextPerplexity().compute(predictions=[15.0 * 4], references=[4], num_original_tokens=3)
    assert out["perplexity"] == pytest.approx(math.exp(15.0), rel=1e-12)  # L = 15 < 20
    assert out["adjusted_perplexity"] == pytest.approx(math.exp(20.0), rel=1e-12)  # 15 * 4/2 = 30 -> 20
    out = WikitextPerplexity().compute(predictions=[1000.0], references=[1], num_original_tokens=2)
    assert out["perplexity"] == out["adjusted_perplexity"] == pytest.approx(math.exp(20.0), rel=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(predictions=[1.0], references=[1]), "pass num_original_tokens"),
    (dict(predictions=[1.0], references=[1], num_original_tokens=1), "must be an integer >= 2"),
    (dict(predictions=[1.0], references=[0], num_original_tokens=3), "no token was scored"),
    (dict(predictions=[1.0], references=[-1], num_original_tokens=3), ">= 0"),
    (dict(predictions=[float("nan")], references=[1], num_original_tokens=3), "non-finite"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WikitextPerplexity().compute(**kwargs)
