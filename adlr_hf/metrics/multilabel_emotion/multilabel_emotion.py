"""Multi-label classification metrics for emotion detection, as an `evaluate` module.

References: NVIDIA/sentiment-discovery `metric_utils.py` (per-class tp/fp/fn; `get_f1` = 2tp / (2tp + fp + fn), 0 when
tp = 0; macro = mean of the per-class values, micro = the formula on the summed counts), the metrics of arXiv
1812.01207; SemEval-2018 Task 1 E-c's official "accuracy" (Mohammad et al. 2018): the example-based Jaccard index
(1/|T|) Σ_t |G_t ∩ P_t| / |G_t ∪ P_t|.

The empty-empty rule: an example with no gold and no predicted label (|G ∪ P| = 0) scores `empty_score`, by default
1.0 (predicting "no emotion" for a tweet that has none is a perfect answer; sklearn's
`jaccard_score(average="samples", zero_division=1)`). Pass `empty_score=0.0` for `zero_division=0`.
A class with tp = 0 has F1 0 whatever fp and fn are (the reference's rule; sklearn's `f1_score(zero_division=0)`).

Inputs: `predictions` and `references`, one 0/1 label vector per example (all the same length C).
Outputs: "macro_f1", "micro_f1", "jaccard_accuracy", "per_class_f1" (a list of C values, or {name: value} when
`label_names` is given), "num_examples".

    m = evaluate.load("/path/to/adlr_hf/metrics/multilabel_emotion")     # or MultilabelEmotion()
    m.compute(predictions=[[1, 0, 1], [0, 0, 0]], references=[[1, 1, 0], [0, 0, 0]])
    # {'macro_f1': 0.3333, 'micro_f1': 0.5, 'jaccard_accuracy': 0.6667, 'per_class_f1': [1.0, 0.0, 0.0], ...}
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@article{kant2018practical,
  title={Practical Text Classification With Large Pre-Trained Language Models},
  author={Kant, Neel and Puri, Raul and Yakovenko, Nikolai and Catanzaro, Bryan},
  journal={arXiv preprint arXiv:1812.01207},
  year={2018}
}
@inproceedings{mohammad2018semeval,
  title={SemEval-2018 Task 1: Affect in Tweets},
  author={Mohammad, Saif M. and Bravo-Marquez, Felipe and Salameh, Mohammad and Kiritchenko, Svetlana},
  booktitle={Proceedings of the 12th International Workshop on Semantic Evaluation},
  year={2018}
}
"""

_DESCRIPTION = """\
Macro-F1 and micro-F1 over labels (F1 = 2tp/(2tp+fp+fn), 0 when tp = 0; NVIDIA/sentiment-discovery metric_utils.py),
per-class F1, and SemEval-2018 E-c's example-based Jaccard accuracy (an example with no gold and no predicted label
scores `empty_score`, 1.0 by default).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of int): predicted 0/1 label vectors, one per example.
    references (list of list of int): gold 0/1 label vectors.
    empty_score (float, default 1.0): the Jaccard score of an example with no gold and no predicted label.
    label_names (list of str, optional): names for per_class_f1 (then a dict).
Returns:
    macro_f1, micro_f1, jaccard_accuracy (float), per_class_f1 (list or dict), num_examples (int).
Examples:
    >>> m = MultilabelEmotion()
    >>> out = m.compute(predictions=[[1, 0, 1], [0, 0, 0]], references=[[1, 1, 0], [0, 0, 0]])
    >>> round(out["jaccard_accuracy"], 4), round(out["micro_f1"], 4)
    (0.6667, 0.5)
"""


def f1_from_counts(tp, fp, fn):
    """F1 = 2tp / (2tp + fp + fn), 0 where tp = 0 (the reference's `get_f1`); works elementwise on arrays."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.where(tp > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)


# -- per-label decision thresholds (reference `threshold.py` `_binary_threshold`) -------------------------------------
# For every label independently: try the thresholds `np.linspace(0.005, 1, 200)`, predict the label where
# probability > threshold, score F1, and keep the best. Ties keep the smallest threshold; a label whose F1 is 0 at
# every threshold (e.g. no positive example) gets the last one, 1.0, which predicts it never. Both follow from the
# reference's update rule `score > best or best == 0` scanning thresholds upwards. Not ported: the reference's
# optional random `global_tweaks` (+-0.04 perturbations kept when micro-F1 improves).
DEFAULT_GRID = np.linspace(0.005, 1, 200)


def best_thresholds_from_counts(tp, fp, fn, grid=DEFAULT_GRID) -> list:
    """The per-label best threshold given counts at every grid threshold: arrays [num_labels, len(grid)]."""
    scores = f1_from_counts(tp, fp, fn)
    grid = np.asarray(grid, dtype=np.float64)
    return [float(grid[int(np.argmax(row))]) if row.max() > 0 else float(grid[-1]) for row in scores]


def threshold_counts(probs, labels, grid=DEFAULT_GRID):
    """tp, fp, fn per label and grid threshold ([num_labels, len(grid)] each), for probability > threshold."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    if probs.ndim != 2 or probs.shape != labels.shape:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be [num_examples, num_labels]")
    predicted = probs[:, :, None] > np.asarray(grid, dtype=np.float64)[None, None, :]
    gold = labels[:, :, None]
    return ((predicted & gold).sum(0).astype(np.float64), (predicted & ~gold).sum(0).astype(np.float64),
            (~predicted & gold).sum(0).astype(np.float64))


def tune_thresholds(probs, labels, grid=DEFAULT_GRID) -> list:
    """Per-label thresholds maximising that label's F1 on (probs, labels), both [num_examples, num_labels]
    (probabilities after the sigmoid; 0/1 gold labels). Store the result as `model.config.thresholds`."""
    if len(probs) == 0:
        raise ValueError("no examples to tune thresholds on")
    return best_thresholds_from_counts(*threshold_counts(probs, labels, grid), grid=grid)


def apply_thresholds(probs, thresholds) -> np.ndarray:
    """0/1 predictions: probability > the label's threshold (the reference's `threshold_predictions`)."""
    probs = np.asarray(probs, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if probs.shape[-1] != thresholds.shape[-1]:
        raise ValueError(f"{thresholds.shape[-1]} thresholds for {probs.shape[-1]} labels")
    return (probs > thresholds).astype(np.int64)


def multilabel_scores(predictions, references, empty_score: float = 1.0, label_names=None) -> dict:
    """The metric's computation on arrays (usable without `evaluate`)."""
    pred = np.asarray(predictions)
    gold = np.asarray(references)
    if pred.ndim != 2 or gold.ndim != 2 or pred.shape != gold.shape:
        raise ValueError(f"predictions {pred.shape} and references {gold.shape} must both be [num_examples, "
                         "num_labels] 0/1 matrices of the same shape")
    if len(pred) == 0 or pred.shape[1] == 0:
        raise ValueError("no examples (or no labels) were given")
    for name, values in (("predictions", pred), ("references", gold)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1 (threshold probabilities first)")
    pred, gold = pred.astype(bool), gold.astype(bool)
    tp = (pred & gold).sum(0)
    fp = (pred & ~gold).sum(0)
    fn = (~pred & gold).sum(0)
    per_class = f1_from_counts(tp, fp, fn)
    inter = (pred & gold).sum(1).astype(np.float64)
    union = (pred | gold).sum(1).astype(np.float64)
    jaccard = np.where(union > 0, inter / np.where(union > 0, union, 1.0), float(empty_score))
    per_class_list = [float(v) for v in per_class]
    if label_names is not None:
        if len(label_names) != len(per_class_list):
            raise ValueError(f"{len(label_names)} label_names for {len(per_class_list)} labels")
        per_class_out = dict(zip(label_names, per_class_list))
    else:
        per_class_out = per_class_list
    return {"macro_f1": float(per_class.mean()), "micro_f1": float(f1_from_counts(tp.sum(), fp.sum(), fn.sum())),
            "jaccard_accuracy": float(jaccard.mean()), "per_class_f1": per_class_out, "num_examples": int(len(pred))}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultilabelEmotion(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("int8")),
                                        "references": datasets.Sequence(datasets.Value("int8"))}),
            reference_urls=["https://github.com/NVIDIA/sentiment-discovery/blob/master/metric_utils.py",
                            "https://competitions.codalab.org/competitions/17751"],
        )

    def _compute(self, predictions, references, empty_score=1.0, label_names=None):
        lengths = {len(row) for row in predictions} | {len(row) for row in references}
        if len(lengths) > 1:
            raise ValueError(f"every label vector must have the same length; got lengths {sorted(lengths)[:5]}")
        return multilabel_scores(predictions, references, empty_score=empty_score, label_names=label_names)
