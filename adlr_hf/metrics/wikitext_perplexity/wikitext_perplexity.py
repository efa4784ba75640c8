"""WikiText perplexity with Megatron-LM's word-level adjustment, as an `evaluate` module.

Reference: NVIDIA/Megatron-LM tag v1.0, `tasks/zeroshot_gpt2/evaluate.py` (`evaluate_and_print_results`, the
'loss' branch), the same formula as `evaluate_gpt2.py` at commit abe36e2; the scaling happens before exponentiating
(openai/gpt-2#78). Paper: Shoeybi et al., arXiv 1909.08053, Table 3 reports the adjusted value.

    L                   = sum(NLL) / (T - 1)
    perplexity          = exp(min(20, L))
    adjusted_perplexity = exp(min(20, L * (T - 1) / (T_o - 1)))      # = exp(sum(NLL) / (T_o - 1)), word level

T is the number of BPE tokens of the detokenized text, T_o the reference's word count of the original file
(`adlr_hf.data.wikitext.original_word_count`). Every token but the first is a target exactly once (the sliding
window of `adlr_hf.evaluation` guarantees it), so T - 1 = sum(references).

Inputs (one row per group of scored tokens; a single token's NLL is a group of one):
    predictions: summed negative log-likelihood (nats) of the group's target tokens
    references:  number of target tokens in the group
compute(..., num_original_tokens=T_o) is required.

    m = evaluate.load("/path/to/adlr_hf/metrics/wikitext_perplexity")   # or WikitextPerplexity()
    m.compute(predictions=[3.2, 1.4], references=[2, 1], num_original_tokens=3)
"""

import math

import datasets
import evaluate

from .megatron_citation import MEGATRON_CITATION

_CITATION = MEGATRON_CITATION

_DESCRIPTION = """\
Token-level and word-level-adjusted perplexity of a causal LM on WikiText, computed exactly as Megatron-LM's
zero-shot evaluation (tasks/zeroshot_gpt2/evaluate.py, tag v1.0): L = sum(NLL)/(T-1), ppl = exp(min(20, L)),
adjusted ppl = exp(min(20, L*(T-1)/(T_o-1))).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): summed NLL in nats of a group of scored target tokens.
    references (list of int): number of target tokens in that group (>= 0).
    num_original_tokens (int): T_o, the word count of the original file (>= 2).
Returns:
    perplexity (float): exp(min(20, L)) with L = sum(NLL) / (T - 1).
    adjusted_perplexity (float): exp(min(20, L * (T - 1) / (T_o - 1))).
    num_tokens (int): T = sum(references) + 1 (the first token is never a target).
    num_original_tokens (int): T_o.
Examples:
    >>> m = WikitextPerplexity()
    >>> r = m.compute(predictions=[2.0, 1.0], references=[2, 1], num_original_tokens=3)
    >>> round(r["perplexity"], 6), round(r["adjusted_perplexity"], 6), r["num_tokens"]
    (2.718282, 4.481689, 4)
"""

MAX_LOSS = 20.0  # the reference clamps the exponent at 20 (exp(20) ~ 4.85e8)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WikitextPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("int64")}),
            reference_urls=["https://github.com/NVIDIA/Megatron-LM/blob/v1.0/tasks/zeroshot_gpt2/evaluate.py"],
        )

    def _compute(self, predictions, references, num_original_tokens=None):
        if num_original_tokens is None:
            raise ValueError("pass num_original_tokens=T_o (the word count of the original WikiText file, "
                             "adlr_hf.data.wikitext.original_word_count) to compute()")
        if isinstance(num_original_tokens, bool) or int(num_original_tokens) != num_original_tokens \
                or num_original_tokens < 2:
            raise ValueError(f"num_original_tokens={num_original_tokens!r} must be an integer >= 2")
        if any(count < 0 for count in references):
            raise ValueError("references are counts of scored tokens and must be >= 0")
        if not all(math.isfinite(nll) for nll in predictions):
            raise ValueError("predictions hold a non-finite NLL sum; check the model's logits")
        targets = int(sum(references))  # T - 1
        if targets < 1:
            raise ValueError("no token was scored (sum(references) == 0); the text needs at least two tokens")
        total_nll = math.fsum(predictions)
        loss = total_nll / targets
        token_ratio = targets / (int(num_original_tokens) - 1)
        return {
            "perplexity": math.exp(min(MAX_LOSS, loss)),
            "adjusted_perplexity": math.exp(min(MAX_LOSS, loss * token_ratio)),
            "num_tokens": targets + 1,
            "num_original_tokens": int(num_original_tokens),
        }
