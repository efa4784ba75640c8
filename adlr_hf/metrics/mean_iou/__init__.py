"""Mean IoU of semantic segmentation (huggingface/evaluate `mean_iou` semantics), with a confusion-matrix core."""

from .mean_iou import MeanIoU, confusion_matrix, scores_from_confusion

__all__ = ["MeanIoU", "confusion_matrix", "scores_from_confusion"]
