"""Per-label decision thresholds tuned on validation probabilities (arXiv 1812.01207; reference
NVIDIA/sentiment-discovery `threshold.py` `_binary_threshold`, `metric_utils.py` `get_f1`).

For every label independently: try the thresholds `np.linspace(0.005, 1, 200)`, predict the label where
probability > threshold, score F1 = 2tp / (2tp + fp + fn) (0 when tp = 0), and keep the best. Ties keep the smallest
threshold; a label whose F1 is 0 at every threshold (e.g. no positive example) gets the last one, 1.0, which predicts
it never. Both follow from the reference's update rule `score > best or best == 0` scanning thresholds upwards.
Not ported: the reference's optional random `global_tweaks` (±0.04 perturbations kept when micro-F1 improves).
"""

from __future__ import annotations

import numpy as np

DEFAULT_GRID = np.linspace(0.005, 1, 200)


def f1_from_counts(tp, fp, fn):
    """F1 = 2tp / (2tp + fp + fn), 0 where tp = 0 (the reference's `get_f1`); works elementwise on arrays."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.where(tp > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)


def best_thresholds_from_counts(tp, fp, fn, grid=DEFAULT_GRID) -> list[float]:
    """The per-label best threshold given counts at every grid threshold: arrays [num_labels, len(grid)]."""
    scores = f1_from_counts(tp, fp, fn)
    grid = np.asarray(grid, dtype=np.float64)
    best = []
    for row in scores:
        best.append(float(grid[int(np.argmax(row))]) if row.max() > 0 else float(grid[-1]))
    return best


def threshold_counts(probs, labels, grid=DEFAULT_GRID):
    """tp, fp, fn per label and grid threshold ([num_labels, len(grid)] each), for probability > threshold."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    if probs.ndim != 2 or probs.shape != labels.shape:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be [num_examples, num_labels]")
    grid = np.asarray(grid, dtype=np.float64)
    shape = (probs.shape[1], len(grid))
    tp, fp, fn = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for c in range(probs.shape[1]):
        predicted = probs[:, c, None] > grid[None, :]
        gold = labels[:, c, None]
        tp[c] = (predicted & gold).sum(0)
        fp[c] = (predicted & ~gold).sum(0)
        fn[c] = (~predicted & gold).sum(0)
    return tp, fp, fn


def tune_thresholds(probs, labels, grid=DEFAULT_GRID) -> list[float]:
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


def select_emotions(pipeline_output, config) -> list[str]:
    """The emotions the model predicts, from one `pipeline("text-classification", top_k=None)` result (a list of
    {"label", "score"} over all labels) and the model's config, using `config.thresholds`."""
    limits = {config.id2label[i]: t for i, t in enumerate(config.thresholds)}
    return [item["label"] for item in pipeline_output if item["score"] > limits[item["label"]]]
