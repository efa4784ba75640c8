"""Per-label decision thresholds of the emotion classifier (arXiv 1812.01207; reference NVIDIA/sentiment-discovery
`threshold.py`). Tuning and applying them is part of the evaluation protocol, so the functions live in the
`multilabel_emotion` metric module; this module re-exports them and picks emotions from a pipeline's output."""

from __future__ import annotations

from ...metrics.multilabel_emotion.multilabel_emotion import (
    DEFAULT_GRID,
    apply_thresholds,
    best_thresholds_from_counts,
    threshold_counts,
    tune_thresholds,
)


def select_emotions(pipeline_output, config) -> list[str]:
    """The emotions the model predicts, from one `pipeline("text-classification", top_k=None)` result (a list of
    {"label", "score"} over all labels) and the model's config, using `config.thresholds`."""
    limits = {config.id2label[i]: t for i, t in enumerate(config.thresholds)}
    return [item["label"] for item in pipeline_output if item["score"] > limits[item["label"]]]


__all__ = ["DEFAULT_GRID", "apply_thresholds", "best_thresholds_from_counts", "select_emotions", "threshold_counts",
           "tune_thresholds"]
