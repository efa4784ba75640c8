"""The OpenImages Visual Relationship Detection score, as an `evaluate` module.

Reference: NVIDIA/ContrastiveLosses4VRD `lib/datasets_rel/task_evaluation_sg.py` (the OpenImages branch) and
`ap_eval_rel.py` (RelDN, arXiv 1903.02728; the same evaluation as the challenge-winning model of arXiv 1811.09543):

    score = 0.2 * R@50 + 0.4 * wmAP_rel + 0.4 * wmAP_phr

- Triplets: each pair proposes its 2 best predicates, scored subject x object x predicate; each image keeps its 100
  best and drops those scoring <= 1e-5 (`TEST.SPO_SCORE_THRESH`).
- R@50: relationship detection recall over all ground-truth relations (IoU >= 0.5 on both boxes), as
  relationship_recall.
- AP per predicate c (VOC-style, all-point interpolated): the triplets predicting c from all images, best first; a
  triplet is a true positive when the subject and object labels of some unclaimed ground-truth relation of c in its
  image are equal and the overlap exceeds 0.5 (strictly, as the reference), else a false positive. Overlap is
  min(IoU subject, IoU object) for relationships and the IoU of the union boxes for phrases; the candidate is the GT
  of highest overlap (if it is already claimed, the triplet is a false positive).
- wmAP weighs each predicate's AP by its share of the ground-truth relations; mAP (the plain mean over predicates,
  also reported) is not part of the score.

    m = evaluate.load(".../adlr_hf/metrics/openimages_vrd")
    m.compute(predictions=[...], references=[...])  # per-image dicts as relationship_recall
    # {'score': ..., 'R@50': ..., 'wmAP_rel': ..., 'wmAP_phr': ..., 'mAP_rel': ..., 'mAP_phr': ...,
    #  'AP_rel': [per predicate], 'AP_phr': [...], 'num_relations': ..., 'num_images': ...}
"""

import evaluate
import numpy as np

from .relationship_triplets import FEATURES, INPUTS_DESCRIPTION, box_iou, image_arrays, recalled, top_triplets, \
    union_boxes

_CITATION = """\
@inproceedings{zhang2019graphical,
  title={Graphical Contrastive Losses for Scene Graph Parsing},
  author={Zhang, Ji and Shih, Kevin J. and Elgammal, Ahmed and Tao, Andrew and Catanzaro, Bryan},
  booktitle={CVPR},
  year={2019}
}
@article{zhang2018interpretable,
  title={An Interpretable Model for Scene Graph Generation},
  author={Zhang, Ji and Shih, Kevin and Tao, Andrew and Catanzaro, Bryan and Elgammal, Ahmed},
  journal={arXiv preprint arXiv:1811.09543},
  year={2018}
}
"""

_DESCRIPTION = """\
OpenImages VRD challenge score 0.2 * R@50 + 0.4 * wmAP_rel + 0.4 * wmAP_phr with per-predicate AP for relationships
and phrases (RelDN's task_evaluation_sg.py / ap_eval_rel.py).
"""

_KWARGS_DESCRIPTION = INPUTS_DESCRIPTION + """\
    num_predicates (int, default: the width of predicate_scores): the predicates to compute AP for.
    predicates_per_pair (int, default 2), score_threshold (float, default 1e-5): as the reference.
Returns:
    score, R@50, wmAP_rel, wmAP_phr, mAP_rel, mAP_phr (floats in [0, 1]), AP_rel and AP_phr (one value per predicate),
    num_relations, num_images.
"""

SCORE_WEIGHTS = {"R@50": 0.2, "wmAP_rel": 0.4, "wmAP_phr": 0.4}


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, summed where recall changes (ap_eval_rel.get_ap)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def predicate_ap(dets: list[dict], refs: list[dict], predicate: int, phrase: bool) -> tuple[float, int]:
    """(AP, number of GT relations) of one predicate over the images' kept triplets."""
    entries = []  # (score, image, subject box, object box, subject label, object label)
    npos = 0
    gts = []
    for image, (det, ref) in enumerate(zip(dets, refs)):
        mine = det["predicate_labels"] == predicate
        entries += [(s, image, sb, ob, sl, ol) for s, sb, ob, sl, ol in zip(
            det["scores"][mine], det["subject_boxes"][mine], det["object_boxes"][mine],
            det["subject_labels"][mine], det["object_labels"][mine])]
        gt = {k: v[ref["predicate_labels"] == predicate] for k, v in ref.items()}
        gts.append(gt)
        npos += len(gt["predicate_labels"])
    order = np.argsort(-np.asarray([e[0] for e in entries], dtype=np.float64), kind="stable")
    claimed = [np.zeros(len(gt["predicate_labels"]), dtype=bool) for gt in gts]
    tp = np.zeros(len(entries))
    for d, index in enumerate(order):
        _, image, sb, ob, sl, ol = entries[index]
        gt = gts[image]
        if len(gt["predicate_labels"]) == 0:
            continue
        valid = (gt["subject_labels"] == sl) & (gt["object_labels"] == ol)
        if not valid.any():
            continue
        if phrase:
            overlap = box_iou(union_boxes(sb[None], ob[None]), union_boxes(gt["subject_boxes"], gt["object_boxes"]))[0]
        else:
            overlap = np.minimum(box_iou(sb[None], gt["subject_boxes"])[0], box_iou(ob[None], gt["object_boxes"])[0])
        overlap = overlap * valid
        best = int(np.argmax(overlap))
        if overlap[best] > 0.5 and not claimed[image][best]:
            tp[d] = 1.0
            claimed[image][best] = True
    tp_sum = np.cumsum(tp)
    fp_sum = np.cumsum(1.0 - tp)
    recall = tp_sum / (float(npos) + 1e-12)
    precision = tp_sum / np.maximum(tp_sum + fp_sum, np.finfo(np.float64).eps)
    return voc_ap(recall, precision), npos


def openimages_vrd_score(predictions, references, num_predicates=None, predicates_per_pair=2,
                         score_threshold=1e-5) -> dict:
    """The module's computation on lists of per-image dicts (see the module docstring)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references: one of each per image")
    if not predictions:
        raise ValueError("no images were given")
    images = [image_arrays(p, r, i) for i, (p, r) in enumerate(zip(predictions, references))]
    if num_predicates is None:
        widths = {pred["predicate_scores"].shape[1] for pred, _ in images if len(pred["predicate_scores"])}
        if len(widths) != 1:
            raise ValueError(f"predicate_scores have widths {sorted(widths)}; pass num_predicates")
        num_predicates = widths.pop()
    dets = [top_triplets(pred, predicates_per_pair, score_threshold=score_threshold) for pred, _ in images]
    return score_from_triplets(dets, [ref for _, ref in images], num_predicates)


def score_from_triplets(dets: list[dict], refs: list[dict], num_predicates: int) -> dict:
    """The score from each image's kept triplets (`top_triplets(..., 2, score_threshold=1e-5)`) and its reference
    arrays (`image_arrays`): an evaluation loop keeps only these instead of every pair's predicate scores."""
    total = sum(len(ref["predicate_labels"]) for ref in refs)
    r50 = sum(recalled(det, ref, [50], phrase=False)[50] for det, ref in zip(dets, refs)) / (total + 1e-12)
    out = {"R@50": r50}
    for kind, phrase in (("rel", False), ("phr", True)):
        aps, counts = zip(*(predicate_ap(dets, refs, c, phrase) for c in range(num_predicates)))
        out[f"AP_{kind}"] = list(aps)
        out[f"mAP_{kind}"] = float(np.mean(aps))
        out[f"wmAP_{kind}"] = float(sum(ap * n / total for ap, n in zip(aps, counts))) if total else 0.0
    out["score"] = sum(weight * out[key] for key, weight in SCORE_WEIGHTS.items())
    out["num_relations"] = int(total)
    out["num_images"] = len(refs)
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class OpenImagesVRD(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=FEATURES,
            reference_urls=["https://github.com/NVIDIA/ContrastiveLosses4VRD/blob/master/lib/datasets_rel/"
                            "task_evaluation_sg.py"])

    def _compute(self, predictions, references, num_predicates=None, predicates_per_pair=2, score_threshold=1e-5):
        return openimages_vrd_score(predictions, references, num_predicates=num_predicates,
                                    predicates_per_pair=predicates_per_pair, score_threshold=score_threshold)
