"""LAMBADA cloze accuracy (teacher-forced, greedy per position), as an `evaluate` module.

Reference: NVIDIA/Megatron-LM tag v1.0, `tasks/zeroshot_gpt2/evaluate.py` (`forward_step`, the 'accuracy' branch):
an example counts as correct when the argmax of the logits equals the target at every target position,
acc = (1/N) sum_i prod_j 1[argmax_v logits_ij = x_ij]. Paper: Shoeybi et al., arXiv 1909.08053, Table 3.

Inputs (one row per example):
    predictions: the argmax token id at each target position (teacher forcing: position j sees the true targets < j)
    references:  the target token ids (the last word, tokenized with a leading space, under the strict protocol)
Outputs:
    accuracy:            every target token matched (the reference's strict whole-word accuracy)
    accuracy_last_token: the last target token matched (whatever happened at the earlier ones)
    num_examples:        N

    m = evaluate.load("/path/to/adlr_hf/metrics/lambada_accuracy")   # or LambadaAccuracy()
    m.compute(predictions=[[5, 7], [2]], references=[[5, 8], [2]])
"""

import datasets
import evaluate

from .megatron_citation import MEGATRON_CITATION

_CITATION = MEGATRON_CITATION + """\
@inproceedings{paperno2016lambada,
  title={The LAMBADA dataset: Word prediction requiring a broad discourse context},
  author={Paperno, Denis and Kruszewski, Germ{\\'a}n and Lazaridou, Angeliki and others},
  booktitle={ACL},
  year={2016}
}
"""

_DESCRIPTION = """\
LAMBADA last-word accuracy as Megatron-LM's zero-shot evaluation computes it (tasks/zeroshot_gpt2/evaluate.py,
tag v1.0): an example is correct when every target token is the argmax at its (teacher-forced) position.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of int): argmax token ids at the target positions of each example.
    references (list of list of int): target token ids of each example (same lengths, >= 1 each).
Returns:
    accuracy (float): fraction of examples whose target tokens all match.
    accuracy_last_token (float): fraction of examples whose last target token matches.
    num_examples (int): number of examples.
Examples:
    >>> m = LambadaAccuracy()
    >>> m.compute(predictions=[[5, 7], [2]], references=[[5, 8], [2]])
    {'accuracy': 0.5, 'accuracy_last_token': 0.5, 'num_examples': 2}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LambadaAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64")),
                                        "references": datasets.Sequence(datasets.Value("int64"))}),
            reference_urls=["https://github.com/NVIDIA/Megatron-LM/blob/v1.0/tasks/zeroshot_gpt2/evaluate.py"],
        )

    def _compute(self, predictions, references):
        if not references:
            raise ValueError("no LAMBADA examples were given")
        strict = last = 0
        for index, (predicted, target) in enumerate(zip(predictions, references)):
            if len(target) == 0 or len(predicted) != len(target):
                raise ValueError(f"example {index}: predictions has {len(predicted)} token(s) and references "
                                 f"{len(target)}; give one argmax per target token (at least one)")
            strict += all(p == t for p, t in zip(predicted, target))
            last += predicted[-1] == target[-1]
        n = len(references)
        return {"accuracy": strict / n, "accuracy_last_token": last / n, "num_examples": n}
