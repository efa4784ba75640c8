"""Megatron-LM LAMBADA cloze accuracy (strict whole-word and last-token)."""

from .lambada_accuracy import LambadaAccuracy

__all__ = ["LambadaAccuracy"]
