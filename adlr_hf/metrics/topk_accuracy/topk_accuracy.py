"""Top-k classification accuracy (top-1 and top-5 by default), as an `evaluate` module.

Reference: NVIDIA/partialconv `main.py` (`accuracy(output, target, topk=(1, 5))`, the ImageNet numbers of arXiv
1811.11718): an example is correct at k when its label is among the k highest scores,
top_k = (1/N) sum_i 1[label_i in topk(scores_i, k)]. The reference reports percentages; this module returns
fractions (as `evaluate`'s accuracy and sklearn's `top_k_accuracy_score` do).

Ties: the reference takes `torch.topk`, whose order among equal scores is unspecified. Here a tie ranks the higher
class index first, which is sklearn's rule, so results equal `sklearn.metrics.top_k_accuracy_score` exactly. With
float logits ties practically never occur.

Inputs (one row per example), two configurations:
    "default" (or "scores"): predictions = the score vector over all classes (logits or probabilities; every row the
        same length C); references = the class id in [0, C).
    "indices": predictions = class ids ranked best first (at least max(k) of them, e.g. `logits.topk(5).indices`;
        lighter to accumulate for 1000 classes); references = the class id.
Outputs: "top1", "top5" (one "top{k}" per requested k) and "num_examples". A k of C or more always counts as a hit.

    m = evaluate.load("/path/to/adlr_hf/metrics/topk_accuracy")          # or TopKAccuracy()
    m.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], references=[2, 0], k=(1, 2))
    # {'top1': 0.5, 'top2': 1.0, 'num_examples': 2}
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@article{liu2018partialpadding,
  title={Partial Convolution based Padding},
  author={Liu, Guilin and Shih, Kevin J. and Wang, Ting-Chun and Reda, Fitsum A. and Sapra, Karan and Yu, Zhiding
          and Tao, Andrew and Catanzaro, Bryan},
  journal={arXiv preprint arXiv:1811.11718},
  year={2018}
}
"""

_DESCRIPTION = """\
Top-k accuracy: the fraction of examples whose label is among the k highest-scoring classes (NVIDIA/partialconv
main.py `accuracy`, reported as top-1 / top-5 on ImageNet in arXiv 1811.11718). Ties rank the higher class index first
(sklearn's rule).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per example, the scores of all classes ("default" config), or the class ids ranked best first
        ("indices" config).
    references (list of int): the true class ids.
    k (int or sequence of int, default (1, 5)): the k values to report.
Returns:
    top{k} (float): top-k accuracy in [0, 1] for each requested k.
    num_examples (int): number of examples.
Examples:
    >>> m = TopKAccuracy()
    >>> m.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], references=[2, 0], k=(1, 2))
    {'top1': 0.5, 'top2': 1.0, 'num_examples': 2}
"""

_CONFIGS = ("default", "scores", "indices")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIGS:
            raise ValueError(f"config_name={self.config_name!r} is not one of {_CONFIGS}: 'default'/'scores' take "
                             "score vectors, 'indices' takes class ids ranked best first")
        value = "int64" if self.config_name == "indices" else "float32"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value(value)),
                                        "references": datasets.Value("int64")}),
            reference_urls=["https://github.com/NVIDIA/partialconv/blob/master/main.py"],
        )

    def _compute(self, predictions, references, k=(1, 5)):
        ks = [k] if isinstance(k, (int, np.integer)) else list(k)
        if not ks or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in ks):
            raise ValueError(f"k={k!r} must be a positive int or a non-empty sequence of them")
        if len(references) == 0:
            raise ValueError("no examples were given")
        labels = np.asarray(references, dtype=np.int64)
        if self.config_name == "indices":
            ranks = self._ranks_from_indices(predictions, labels, max(ks))
        else:
            ranks = self._ranks_from_scores(predictions, labels)
        out = {f"top{int(v)}": float(np.mean(ranks < v)) for v in ks}
        out["num_examples"] = int(len(labels))
        return out

    @staticmethod
    def _ranks_from_scores(predictions, labels) -> np.ndarray:
        lengths = {len(row) for row in predictions}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"every prediction must score the same, non-zero number of classes; got lengths "
                             f"{sorted(lengths)[:5]}")
        scores = np.asarray(predictions, dtype=np.float64)
        num_classes = scores.shape[1]
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"references must be class ids in [0, {num_classes}) (the score vectors' length); got "
                             f"values from {labels.min()} to {labels.max()}")
        if not np.isfinite(scores).all():
            raise ValueError("predictions hold NaN or infinite scores")
        true = scores[np.arange(len(labels)), labels][:, None]
        higher_index = np.arange(num_classes)[None, :] > labels[:, None]
        # rank = classes scored above the label, plus tied classes with a higher index (sklearn's order)
        return (scores > true).sum(1) + ((scores == true) & higher_index).sum(1)

    @staticmethod
    def _ranks_from_indices(predictions, labels, max_k: int) -> np.ndarray:
        ranks = np.empty(len(labels), dtype=np.int64)
        for i, (ranked, label) in enumerate(zip(predictions, labels)):
            if len(ranked) < max_k:
                raise ValueError(f"example {i} ranks {len(ranked)} classes but k={max_k} needs at least {max_k}; "
                                 "pass e.g. logits.topk(max_k).indices")
            hits = [j for j, c in enumerate(ranked) if c == label]
            ranks[i] = hits[0] if hits else len(ranked)
        return ranks
