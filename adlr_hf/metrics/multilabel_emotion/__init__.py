"""Multi-label emotion metrics (macro/micro F1, per-class F1, SemEval's example-based Jaccard accuracy)."""

from .multilabel_emotion import MultilabelEmotion, multilabel_scores

__all__ = ["MultilabelEmotion", "multilabel_scores"]
