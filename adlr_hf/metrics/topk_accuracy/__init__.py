"""Top-k classification accuracy (top-1 / top-5), as NVIDIA/partialconv's `main.py` reports it."""

from .topk_accuracy import TopKAccuracy

__all__ = ["TopKAccuracy"]
