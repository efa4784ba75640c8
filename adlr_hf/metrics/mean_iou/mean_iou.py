"""Mean intersection-over-union of semantic segmentation maps, as an `evaluate` module and as torch functions.

Semantics of huggingface/evaluate `metrics/mean_iou` (which `evaluate` no longer ships offline), as the segmentation
references score (NVIDIA/semantic-segmentation `utils/misc.py` `fast_hist` / `evaluate_eval`, arXiv 1812.01593):
pixels whose reference is `ignore_index` are dropped; over all images together, per class c

    IoU_c = |pred = c and ref = c| / |pred = c or ref = c|,     Acc_c = |pred = c and ref = c| / |ref = c|

mean_iou and mean_accuracy are their means over classes that occur (NaN classes skipped, `nanmean`),
overall_accuracy = correct pixels / counted pixels. Every number is read off one (num_labels, num_labels)
confusion matrix (rows = reference, columns = prediction), which the training loop accumulates per batch on the
device and sums over data-parallel ranks.

Two ways in, one implementation:
    m = confusion_matrix(pred, ref, num_labels, ignore_index=255)      # torch (..., H, W) -> int64 (C, C)
    scores_from_confusion(m)                                           # -> the dict below
    metric = evaluate.load(".../adlr_hf/metrics/mean_iou")             # or MeanIoU()
    metric.compute(predictions=[pred_map], references=[ref_map], num_labels=11, ignore_index=255)
"""

import datasets
import evaluate
import numpy as np
import torch

__all__ = ["MeanIoU", "confusion_matrix", "scores_from_confusion"]

_CITATION = """\
@inproceedings{zhu2019improving,
  title={Improving Semantic Segmentation via Video Propagation and Label Relaxation},
  author={Zhu, Yi and Sapra, Karan and Reda, Fitsum A. and Shih, Kevin J. and Newsam, Shawn and Tao, Andrew and
          Catanzaro, Bryan},
  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2019}
}
"""

_DESCRIPTION = """\
Mean IoU: per-class intersection over union of predicted and reference segmentation maps over all images, averaged
over the classes that occur; also per-class and mean accuracy and overall pixel accuracy. Reference pixels equal to
ignore_index are not counted.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted segmentation maps, 2-D arrays of class ids in [0, num_labels).
    references: ground-truth maps of the same shapes (class ids or ignore_index).
    num_labels (int): number of classes.
    ignore_index (int): reference value that is not counted (e.g. 255).
    nan_to_num (float, optional): replace NaN per-class values (classes absent from both) with this number.
    label_map (dict, optional): old id -> new id, applied to the references first.
    reduce_labels (bool, default False): references 0 become ignore_index and the others drop by one
        (ADE20k's convention).
Returns:
    mean_iou, mean_accuracy, overall_accuracy (float); per_category_iou, per_category_accuracy (arrays of
    num_labels, NaN for classes absent from references and predictions / from the references).
Examples:
    >>> m = MeanIoU()
    >>> out = m.compute(predictions=[[[0, 1], [1, 1]]], references=[[[0, 1], [0, 255]]], num_labels=2,
    ...                 ignore_index=255)
    >>> round(out["mean_iou"], 4)  # class 0: 1/2, class 1: 1/2
    0.5
"""


def confusion_matrix(predictions: torch.Tensor, references: torch.Tensor, num_labels: int,
                     ignore_index: int | None = 255) -> torch.Tensor:
    """The (num_labels, num_labels) int64 confusion matrix (rows = reference, columns = prediction) of class-id
    maps of equal shape, reference pixels equal to `ignore_index` dropped. Values outside [0, num_labels) (other
    than the ignored reference) are an error naming them."""
    predictions, references = torch.as_tensor(predictions), torch.as_tensor(references)
    if predictions.shape != references.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and references {tuple(references.shape)} must "
                         "have the same shape")
    predictions, references = predictions.long().flatten(), references.long().flatten().to(predictions.device)
    if ignore_index is not None:
        keep = references != ignore_index
        predictions, references = predictions[keep], references[keep]
    for name, values in (("references", references), ("predictions", predictions)):
        bad = (values < 0) | (values >= num_labels)
        if bad.any():
            found = sorted(values[bad].unique().tolist())[:10]
            raise ValueError(f"{name} hold values {found} outside the classes [0, {num_labels})"
                             + (f" and other than ignore_index {ignore_index}" if name == "references" else "")
                             + "; map them to a class or to the ignore index")
    counts = torch.bincount(references * num_labels + predictions, minlength=num_labels * num_labels)
    return counts.view(num_labels, num_labels)


def scores_from_confusion(matrix, nan_to_num: float | None = None) -> dict:
    """mean_iou, mean_accuracy, overall_accuracy and the per-category arrays of a confusion matrix (rows =
    reference)."""
    matrix = np.asarray(torch.as_tensor(matrix).cpu(), dtype=np.float64)
    intersect = np.diag(matrix)
    area_label, area_pred = matrix.sum(1), matrix.sum(0)
    union = area_label + area_pred - intersect
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersect / union
        accuracy = intersect / area_label
        overall = intersect.sum() / area_label.sum()
    out = {"mean_iou": float(np.nanmean(iou)) if not np.isnan(iou).all() else float("nan"),
           "mean_accuracy": float(np.nanmean(accuracy)) if not np.isnan(accuracy).all() else float("nan"),
           "overall_accuracy": float(overall), "per_category_iou": iou, "per_category_accuracy": accuracy}
    if nan_to_num is not None:
        out = {key: np.nan_to_num(value, nan=nan_to_num) if isinstance(value, np.ndarray)
               else (nan_to_num if np.isnan(value) else value) for key, value in out.items()}
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanIoU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                                        "references": datasets.Sequence(datasets.Sequence(datasets.Value("int64")))}),
            reference_urls=["https://github.com/huggingface/evaluate/tree/main/metrics/mean_iou",
                            "https://github.com/NVIDIA/semantic-segmentation"],
        )

    def _compute(self, predictions, references, num_labels: int, ignore_index: int, nan_to_num=None,
                 label_map=None, reduce_labels: bool = False):
        if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
            raise ValueError(f"num_labels={num_labels!r} must be a positive int (the number of classes)")
        if len(predictions) != len(references) or not len(references):
            raise ValueError(f"got {len(predictions)} predictions and {len(references)} references; pass one "
                             "prediction per reference map (at least one)")
        total = torch.zeros(num_labels, num_labels, dtype=torch.int64)
        for i, (pred, ref) in enumerate(zip(predictions, references)):
            pred, ref = np.asarray(pred, dtype=np.int64), np.array(ref, dtype=np.int64)
            if label_map:
                mapped = ref.copy()
                for old, new in label_map.items():
                    mapped[ref == old] = new
                ref = mapped
            if reduce_labels:
                ref = np.where(ref == 0, 255, ref - 1)
                ref[ref == 254] = 255
            if pred.shape != ref.shape:
                raise ValueError(f"prediction {i} has shape {pred.shape} but its reference {ref.shape}")
            total += confusion_matrix(torch.from_numpy(pred), torch.from_numpy(ref), num_labels, ignore_index)
        return scores_from_confusion(total, nan_to_num)
