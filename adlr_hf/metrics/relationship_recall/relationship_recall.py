"""Relationship and phrase detection Recall@K (Visual Genome / VRD scene-graph evaluation), as an `evaluate` module.

Reference: NVIDIA/ContrastiveLosses4VRD `lib/datasets_rel/task_evaluation_vg_and_vrd.py` (RelDN, arXiv 1903.02728;
adapted there from neural-motifs' sg_eval.py). Per image: each pair proposes its `predicates_per_pair` best
predicates (the reference sweeps 1..10, 15, 20 and, for VRD, 70 = all), triplets are scored subject x object x
predicate, the 100 best are kept, and a ground-truth relation is recalled at K when one of the K best triplets has
its three labels and IoU >= 0.5 with both its boxes (relationship detection) or with its union box (phrase
detection). R@K = recalled relations / all ground-truth relations, summed over the images (not a mean of per-image
recalls). Boxes are xyxy pixels with inclusive-pixel IoU (Detectron's convention, as the reference).

    m = evaluate.load(".../adlr_hf/metrics/relationship_recall")     # or RelationshipRecall()
    m.compute(predictions=[pred_image_1, ...], references=[gt_image_1, ...], k=(20, 50, 100), predicates_per_pair=1)
    # {'R@20': ..., 'R@50': ..., 'R@100': ..., 'phrase_R@20': ..., ..., 'num_relations': ..., 'num_images': ...}

With a sequence `predicates_per_pair=(1, 70)` each key gets the suffix `_top1` / `_top70`.
"""

import evaluate

from .relationship_triplets import (
    FEATURES,
    INPUTS_DESCRIPTION,
    TOP_TRIPLETS,
    check_ks,
    image_arrays,
    recalled,
    top_triplets,
)

_CITATION = """\
@inproceedings{zhang2019graphical,
  title={Graphical Contrastive Losses for Scene Graph Parsing},
  author={Zhang, Ji and Shih, Kevin J. and Elgammal, Ahmed and Tao, Andrew and Catanzaro, Bryan},
  booktitle={CVPR},
  year={2019}
}
"""

_DESCRIPTION = """\
Relationship detection and phrase detection Recall@K of scene-graph predictions (RelDN's VG/VRD evaluation): the
fraction of ground-truth (subject, predicate, object) relations found among each image's K best triplets, with
IoU >= 0.5 on both boxes (relationship) or on the union box (phrase).
"""

_KWARGS_DESCRIPTION = INPUTS_DESCRIPTION + """\
    k (int or sequence, default (20, 50, 100)): the K values (at most 100, the triplets kept per image).
    predicates_per_pair (int or sequence, default 1): predicates each pair proposes; a sequence reports each.
    phrase (bool, default True): also report phrase detection recall.
Returns:
    R@K: relationship detection recall for each K; phrase_R@K: phrase detection recall (with `phrase`);
    keys end in `_top{n}` when predicates_per_pair is a sequence.
    num_relations (int), num_images (int).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RelationshipRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=FEATURES,
            reference_urls=["https://github.com/NVIDIA/ContrastiveLosses4VRD/blob/master/lib/datasets_rel/"
                            "task_evaluation_vg_and_vrd.py"])

    def _compute(self, predictions, references, k=(20, 50, 100), predicates_per_pair=1, phrase=True):
        return relationship_recall(predictions, references, k=k, predicates_per_pair=predicates_per_pair,
                                   phrase=phrase)


def recall_keys(k=(20, 50, 100), predicates_per_pair=1, phrase=True) -> list[tuple[str, int, int, bool]]:
    """(result key, K, predicates per pair, phrase?) of every value the settings report, with the settings checked."""
    ks = check_ks(k)
    if max(ks) > TOP_TRIPLETS:
        raise ValueError(f"k={ks} goes above {TOP_TRIPLETS}, the triplets kept per image")
    sweep = not isinstance(predicates_per_pair, int)
    out = []
    for prd_k in check_ks(predicates_per_pair, "predicates_per_pair"):
        suffix = f"_top{prd_k}" if sweep else ""
        for is_phrase in (False, True) if phrase else (False,):
            out += [(f"{'phrase_' if is_phrase else ''}R@{key}{suffix}", key, prd_k, is_phrase) for key in ks]
    return out


def image_recall_counts(prediction: dict, reference: dict, keys, image: int = 0) -> dict:
    """One image's recalled relations for each of `recall_keys(...)`, and "num_relations": summed over images
    (and data-parallel ranks) they give the recalls."""
    pred, ref = image_arrays(prediction, reference, image)
    out = {"num_relations": len(ref["predicate_labels"])}
    by_setting: dict = {}
    for name, key, prd_k, is_phrase in keys:
        by_setting.setdefault((prd_k, is_phrase), []).append((name, key))
    for (prd_k, is_phrase), named in by_setting.items():
        hits = recalled(top_triplets(pred, prd_k), ref, [key for _, key in named], is_phrase)
        out.update({name: hits[key] for name, key in named})
    return out


def recalls_from_counts(counts: dict, keys, num_images: int) -> dict:
    total = counts.get("num_relations", 0)
    out = {name: counts.get(name, 0) / (total + 1e-12) for name, _, _, _ in keys}
    out["num_relations"] = int(total)
    out["num_images"] = int(num_images)
    return out


def relationship_recall(predictions, references, k=(20, 50, 100), predicates_per_pair=1, phrase=True) -> dict:
    """The module's computation on lists of per-image dicts (see the module docstring)."""
    keys = recall_keys(k, predicates_per_pair, phrase)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references: one of each per image")
    if not predictions:
        raise ValueError("no images were given")
    counts: dict = {}
    for i, (p, r) in enumerate(zip(predictions, references)):
        for name, value in image_recall_counts(p, r, keys, i).items():
            counts[name] = counts.get(name, 0) + value
    return recalls_from_counts(counts, keys, len(predictions))
