"""Triplet plumbing the relationship metrics share (relationship_recall, openimages_vrd): the inputs' features and
checks, the ranking of (subject, predicate, object) triplets, box IoU and GT matching, as NVIDIA/ContrastiveLosses4VRD
`lib/datasets_rel/task_evaluation_vg_and_vrd.py` / `task_evaluation_sg.py` compute them. The openimages_vrd folder
carries this file as a symlink, because `evaluate.load(path)` copies a metric script with the files it imports from
its own folder.

Conventions kept from the reference: boxes are xyxy pixels and IoU uses Detectron's inclusive-pixel areas
((x2 - x1 + 1) * (y2 - y1 + 1)); a triplet's score is subject score x object score x predicate probability; each pair
proposes its `predicates_per_pair` best predicates; each image keeps its 100 best triplets. Ties in score keep the
order of pairs, then of predicate rank (a stable sort; the reference's numpy quicksort leaves it unspecified).
"""

from __future__ import annotations

import datasets
import numpy as np

TOP_TRIPLETS = 100  # per image, the reference's `topk`

_BOXES = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
_LABELS = datasets.Sequence(datasets.Value("int64"))
_SCORES = datasets.Sequence(datasets.Value("float64"))

PREDICTION_FEATURES = {
    "subject_boxes": _BOXES, "object_boxes": _BOXES,
    "subject_labels": _LABELS, "object_labels": _LABELS,
    "subject_scores": _SCORES, "object_scores": _SCORES,
    "predicate_scores": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
}
REFERENCE_FEATURES = {
    "subject_boxes": _BOXES, "object_boxes": _BOXES,
    "subject_labels": _LABELS, "object_labels": _LABELS, "predicate_labels": _LABELS,
}
FEATURES = datasets.Features({"predictions": PREDICTION_FEATURES, "references": REFERENCE_FEATURES})

INPUTS_DESCRIPTION = """
Args:
    predictions: one dict per image over its scored pairs (n pairs, K foreground predicates):
        subject_boxes, object_boxes ([n, 4] xyxy pixels), subject_labels, object_labels ([n] class ids),
        subject_scores, object_scores ([n] detection scores; 1.0 for ground-truth boxes in PredCls),
        predicate_scores ([n, K] probabilities of the foreground predicates, i.e. softmax of the fused logits
        without the no-relation column).
    references: one dict per image over its ground-truth relations (g of them): subject_boxes, object_boxes
        ([g, 4]), subject_labels, object_labels, predicate_labels ([g], predicate ids 0..K-1).
"""


def _array(value, shape_tail, dtype, name, image):
    array = np.asarray(value if value is not None else [], dtype=dtype)
    if array.size == 0:
        return array.reshape((0,) + shape_tail)
    if array.shape[1:] != shape_tail and shape_tail:
        raise ValueError(f"image {image}: {name} must be [n, {', '.join(map(str, shape_tail))}]; got {array.shape}")
    return array


def image_arrays(prediction: dict, reference: dict, image: int) -> tuple[dict, dict]:
    """numpy arrays of one image's prediction and reference, with their shapes checked."""
    pred = {k: _array(prediction.get(k), (4,) if k.endswith("boxes") else (), np.float64 if "label" not in k
                      else np.int64, k, image) for k in PREDICTION_FEATURES if k != "predicate_scores"}
    scores = prediction.get("predicate_scores")
    scores = np.asarray(scores if scores is not None else [], dtype=np.float64)
    pred["predicate_scores"] = scores.reshape(len(scores), -1) if scores.size else np.zeros((len(scores), 0))
    sizes = {k: len(v) for k, v in pred.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"image {image}: the prediction's fields must list the same pairs; got lengths {sizes}")
    ref = {k: _array(reference.get(k), (4,) if k.endswith("boxes") else (), np.float64 if "label" not in k
                     else np.int64, k, image) for k in REFERENCE_FEATURES}
    sizes = {k: len(v) for k, v in ref.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"image {image}: the reference's fields must list the same relations; got lengths {sizes}")
    return pred, ref


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] IoU of xyxy boxes with inclusive-pixel areas (Detectron's bbox_overlaps)."""
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def union_boxes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], axis=1)


def top_triplets(pred: dict, predicates_per_pair: int, top: int = TOP_TRIPLETS,
                 score_threshold: float | None = None) -> dict:
    """The image's best `top` triplets, best first: each pair's `predicates_per_pair` best predicates scored
    subject x object x predicate; `score_threshold` drops triplets at or below it (the OpenImages evaluation)."""
    scores = pred["predicate_scores"]
    n = len(scores)
    if n == 0:
        empty_boxes = np.zeros((0, 4))
        return {"subject_boxes": empty_boxes, "object_boxes": empty_boxes, "subject_labels": np.zeros(0, np.int64),
                "predicate_labels": np.zeros(0, np.int64), "object_labels": np.zeros(0, np.int64),
                "scores": np.zeros(0)}
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :predicates_per_pair]
    triplet_scores = (pred["subject_scores"] * pred["object_scores"])[:, None] * np.take_along_axis(scores, ranked, 1)
    order = np.argsort(-triplet_scores.ravel(), kind="stable")[:top]
    pair, rank = np.unravel_index(order, triplet_scores.shape)
    keep = slice(None) if score_threshold is None else triplet_scores[pair, rank] > score_threshold
    pair, rank = pair[keep], rank[keep]
    return {"subject_boxes": pred["subject_boxes"][pair], "object_boxes": pred["object_boxes"][pair],
            "subject_labels": pred["subject_labels"][pair], "predicate_labels": ranked[pair, rank],
            "object_labels": pred["object_labels"][pair], "scores": triplet_scores[pair, rank]}


def matches(dets: dict, ref: dict, phrase: bool, iou_threshold: float = 0.5) -> np.ndarray:
    """[len(dets), len(ref)] bool: the triplet labels are equal and IoU >= threshold on both boxes (relationship)
    or on the union box (phrase)."""
    same = ((dets["subject_labels"][:, None] == ref["subject_labels"][None])
            & (dets["predicate_labels"][:, None] == ref["predicate_labels"][None])
            & (dets["object_labels"][:, None] == ref["object_labels"][None]))
    if phrase:
        close = box_iou(union_boxes(dets["subject_boxes"], dets["object_boxes"]),
                        union_boxes(ref["subject_boxes"], ref["object_boxes"])) >= iou_threshold
    else:
        close = ((box_iou(dets["subject_boxes"], ref["subject_boxes"]) >= iou_threshold)
                 & (box_iou(dets["object_boxes"], ref["object_boxes"]) >= iou_threshold))
    return same & close


def recalled(dets: dict, ref: dict, ks, phrase: bool) -> dict:
    """{K: number of ground-truth relations matched by at least one of the K best triplets}."""
    hit = matches(dets, ref, phrase)
    return {k: int(hit[:k].any(axis=0).sum()) for k in ks}


def check_ks(ks, name="k"):
    ks = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in ks):
        raise ValueError(f"{name}={ks!r} must be a positive int or a non-empty sequence of them")
    return [int(v) for v in ks]
