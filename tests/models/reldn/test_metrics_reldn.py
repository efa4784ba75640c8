"""The relationship metrics (relationship_recall, openimages_vrd) against a hand computation and against plain-loop
implementations written here from the reference's description, on made-up detections."""

import random

import evaluate
import numpy as np
import pytest

from adlr_hf.metrics import metric_path
from adlr_hf.metrics.openimages_vrd import openimages_vrd_score
from adlr_hf.metrics.relationship_recall import relationship_recall


def iou(a, b):
    """Inclusive-pixel IoU of two xyxy boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(iw, 0) * max(ih, 0)
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def union(a, b):
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def plain_triplets(pred, prd_k, top=100, threshold=None):
    cands = []
    for i, probs in enumerate(pred["predicate_scores"]):
        best = sorted(range(len(probs)), key=lambda c: -probs[c])[:prd_k]
        for rank, c in enumerate(best):
            score = pred["subject_scores"][i] * pred["object_scores"][i] * probs[c]
            cands.append((score, i, rank, c))
    cands.sort(key=lambda t: (-t[0], t[1], t[2]))
    cands = cands[:top]
    if threshold is not None:
        cands = [t for t in cands if t[0] > threshold]
    return [dict(score=s, sb=pred["subject_boxes"][i], ob=pred["object_boxes"][i], sl=pred["subject_labels"][i],
                 ol=pred["object_labels"][i], p=c) for s, i, _, c in cands]


def plain_recall(preds, refs, k, prd_k, phrase):
    hit = total = 0
    for pred, ref in zip(preds, refs):
        dets = plain_triplets(pred, prd_k)[:k]
        for g in range(len(ref["predicate_labels"])):
            total += 1
            gsb, gob = ref["subject_boxes"][g], ref["object_boxes"][g]
            for d in dets:
                if (d["sl"], d["p"], d["ol"]) != (ref["subject_labels"][g], ref["predicate_labels"][g],
                                                  ref["object_labels"][g]):
                    continue
                if phrase:
                    ok = iou(union(d["sb"], d["ob"]), union(gsb, gob)) >= 0.5
                else:
                    ok = iou(d["sb"], gsb) >= 0.5 and iou(d["ob"], gob) >= 0.5
                if ok:
                    hit += 1
                    break
    return hit / total


def plain_ap(preds, refs, c, phrase, prd_k=2, threshold=1e-5):
    dets = []
    for image, pred in enumerate(preds):
        dets += [(d, image) for d in plain_triplets(pred, prd_k, threshold=threshold) if d["p"] == c]
    dets.sort(key=lambda t: -t[0]["score"])
    gts = [[g for g in range(len(ref["predicate_labels"])) if ref["predicate_labels"][g] == c] for ref in refs]
    npos = sum(len(g) for g in gts)
    claimed = set()
    flags = []
    for d, image in dets:
        ref, best, best_overlap = refs[image], None, 0.0
        for g in gts[image]:
            if (ref["subject_labels"][g], ref["object_labels"][g]) != (d["sl"], d["ol"]):
                continue
            if phrase:
                o = iou(union(d["sb"], d["ob"]), union(ref["subject_boxes"][g], ref["object_boxes"][g]))
            else:
                o = min(iou(d["sb"], ref["subject_boxes"][g]), iou(d["ob"], ref["object_boxes"][g]))
            if best is None or o > best_overlap:
                best, best_overlap = g, o
        tp = best is not None and best_overlap > 0.5 and (image, best) not in claimed
        if tp:
            claimed.add((image, best))
        flags.append(tp)
    if npos == 0:
        return 0.0, 0
    # AP = sum over true positives of (1 / npos) x (best precision at this rank or any later one)
    precisions = [sum(flags[: i + 1]) / (i + 1) for i in range(len(flags))]
    ap = sum(max(precisions[i:]) / npos for i in range(len(flags)) if flags[i])
    return ap, npos


def random_case(seed, images=4, classes=3, predicates=4):
    rng = random.Random(seed)

    def box():
        x, y = rng.randint(0, 60), rng.randint(0, 60)
        return [x, y, x + rng.randint(5, 30), y + rng.randint(5, 30)]

    def jitter(b):
        return [v + rng.randint(-3, 3) for v in b]

    preds, refs = [], []
    for _ in range(images):
        g = rng.randint(0, 5)
        ref = {"subject_boxes": [box() for _ in range(g)], "object_boxes": [box() for _ in range(g)],
               "subject_labels": [rng.randrange(classes) for _ in range(g)],
               "object_labels": [rng.randrange(classes) for _ in range(g)],
               "predicate_labels": [rng.randrange(predicates) for _ in range(g)]}
        n = rng.randint(0, 30)
        pred = {k: [] for k in ("subject_boxes", "object_boxes", "subject_labels", "object_labels", "subject_scores",
                                "object_scores", "predicate_scores")}
        for _ in range(n):
            if g and rng.random() < 0.6:  # near a GT relation, labels right or wrong
                j = rng.randrange(g)
                sb, ob = jitter(ref["subject_boxes"][j]), jitter(ref["object_boxes"][j])
                sl = ref["subject_labels"][j] if rng.random() < 0.8 else rng.randrange(classes)
                ol = ref["object_labels"][j] if rng.random() < 0.8 else rng.randrange(classes)
            else:
                sb, ob, sl, ol = box(), box(), rng.randrange(classes), rng.randrange(classes)
            probs = [rng.random() for _ in range(predicates)]
            pred["subject_boxes"].append(sb)
            pred["object_boxes"].append(ob)
            pred["subject_labels"].append(sl)
            pred["object_labels"].append(ol)
            pred["subject_scores"].append(rng.uniform(0.3, 1))
            pred["object_scores"].append(rng.uniform(0.3, 1))
            pred["predicate_scores"].append([p / sum(probs) for p in probs])
        preds.append(pred)
        refs.append(ref)
    return preds, refs


def test_recall_by_hand():
    # one GT relation (class 0 --predicate 1--> class 2). Pair 0 has the right labels but a far subject box; pair 1
    # a subject box shifted by one pixel (IoU 90/110 with the GT) and the exact object box.
    ref = {"subject_boxes": [[0, 0, 9, 9]], "object_boxes": [[0, 10, 9, 19]], "subject_labels": [0],
           "object_labels": [2], "predicate_labels": [1]}
    pred = {"subject_boxes": [[40, 40, 49, 49], [1, 0, 10, 9]], "object_boxes": [[0, 10, 9, 19], [0, 10, 9, 19]],
            "subject_labels": [0, 0], "object_labels": [2, 2], "subject_scores": [1.0, 1.0],
            "object_scores": [1.0, 1.0], "predicate_scores": [[0.1, 0.9], [0.4, 0.6]]}
    # triplets by score: pair 0 pred 1 (.9, subject far: miss), pair 1 pred 1 (.6, IoU 90/110 and 1: hit),
    # pair 1 pred 0 (.4), pair 0 pred 0 (.1) -- with one predicate per pair, K=1 sees only the miss
    out = relationship_recall([pred], [ref], k=(1, 2), predicates_per_pair=1)
    assert out["R@1"] == 0.0 and out["R@2"] == pytest.approx(1.0)
    # phrase: pair 0's union box [0, 10, 49, 49] vs GT union [0, 0, 9, 19]: miss; pair 1's union matches
    assert out["phrase_R@1"] == 0.0 and out["phrase_R@2"] == pytest.approx(1.0)
    assert out["num_relations"] == 1


@pytest.mark.parametrize("seed", range(6))
def test_recall_equals_a_plain_loop(seed):
    preds, refs = random_case(seed)
    if not any(r["predicate_labels"] for r in refs):
        refs[0] = {k: [[0, 0, 5, 5]] if k.endswith("boxes") else [0] for k in refs[0]}
    for prd_k in (1, 2, 4):
        out = relationship_recall(preds, refs, k=(1, 5, 20), predicates_per_pair=prd_k)
        for k in (1, 5, 20):
            assert out[f"R@{k}"] == pytest.approx(plain_recall(preds, refs, k, prd_k, False), abs=1e-9)
            assert out[f"phrase_R@{k}"] == pytest.approx(plain_recall(preds, refs, k, prd_k, True), abs=1e-9)


def test_openimages_score_by_hand():
    # one image, two GT relations of predicate 0; three triplets of predicate 0: TP, duplicate of the same GT (FP),
    # TP of the second GT. Relationship AP: precisions 1, 1/2, 2/3 at recalls 1/2, 1/2, 1 -> envelope 1 then 2/3:
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6. Every triplet also matches as a phrase -> same AP. R@50 = 1.
    ref = {"subject_boxes": [[0, 0, 9, 9], [50, 50, 59, 59]], "object_boxes": [[20, 0, 29, 9], [70, 50, 79, 59]],
           "subject_labels": [0, 1], "object_labels": [1, 0], "predicate_labels": [0, 0]}
    pred = {"subject_boxes": [[0, 0, 9, 9], [0, 0, 9, 9], [50, 50, 59, 59]],
            "object_boxes": [[20, 0, 29, 9], [20, 0, 29, 9], [70, 50, 79, 59]],
            "subject_labels": [0, 0, 1], "object_labels": [1, 1, 0], "subject_scores": [1.0, 1.0, 1.0],
            "object_scores": [1.0, 1.0, 1.0], "predicate_scores": [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]]}
    out = openimages_vrd_score([pred], [ref])
    assert out["AP_rel"][0] == pytest.approx(5 / 6) and out["AP_phr"][0] == pytest.approx(5 / 6)
    assert out["R@50"] == pytest.approx(1.0)
    assert out["wmAP_rel"] == pytest.approx(5 / 6)  # predicate 1 has no GT: weight 0
    assert out["score"] == pytest.approx(0.2 * 1.0 + 0.4 * 5 / 6 + 0.4 * 5 / 6)


@pytest.mark.parametrize("seed", range(6))
def test_openimages_score_equals_a_plain_loop(seed):
    preds, refs = random_case(seed, images=5)
    out = openimages_vrd_score(preds, refs, num_predicates=4)
    total = sum(len(r["predicate_labels"]) for r in refs)
    wm = {}
    for kind, phrase in (("rel", False), ("phr", True)):
        results = [plain_ap(preds, refs, c, phrase) for c in range(4)]
        for c, (ap, npos) in enumerate(results):
            if npos:
                assert out[f"AP_{kind}"][c] == pytest.approx(ap, abs=1e-9)
        wm[kind] = sum(ap * n / total for ap, n in results)
        assert out[f"wmAP_{kind}"] == pytest.approx(wm[kind], abs=1e-9)
    r50 = sum(plain_recall([p], [r], 50, 2, False) * len(r["predicate_labels"])
              for p, r in zip(preds, refs) if r["predicate_labels"]) / total
    # the OpenImages R@50 also drops triplets scoring <= 1e-5; none of these do
    assert out["R@50"] == pytest.approx(r50, abs=1e-9)
    assert out["score"] == pytest.approx(0.2 * r50 + 0.4 * wm["rel"] + 0.4 * wm["phr"], abs=1e-9)


def test_modules_load_offline_and_equal_the_functions():
    preds, refs = random_case(3)
    recall = evaluate.load(metric_path("relationship_recall"))
    assert recall.compute(predictions=preds, references=refs, predicates_per_pair=(1, 4)) == pytest.approx(
        relationship_recall(preds, refs, predicates_per_pair=(1, 4)))
    oi = evaluate.load(metric_path("openimages_vrd"))
    got = oi.compute(predictions=preds, references=refs)
    want = openimages_vrd_score(preds, refs)
    assert got["score"] == pytest.approx(want["score"]) and got["AP_rel"] == pytest.approx(want["AP_rel"])


def test_bad_inputs_are_refused():
    pred = {"subject_boxes": [[0, 0, 1, 1]], "object_boxes": [[0, 0, 1, 1]], "subject_labels": [0],
            "object_labels": [0], "subject_scores": [1.0], "object_scores": [1.0, 1.0], "predicate_scores": [[1.0]]}
    ref = {"subject_boxes": [], "object_boxes": [], "subject_labels": [], "object_labels": [], "predicate_labels": []}
    with pytest.raises(ValueError, match="same pairs"):
        relationship_recall([pred], [ref])
    with pytest.raises(ValueError, match="above 100"):
        relationship_recall([pred], [ref], k=200)
    with pytest.raises(ValueError, match="one of each per image"):
        openimages_vrd_score([pred], [ref, ref])
    assert np.isfinite(relationship_recall([dict(pred, object_scores=[1.0])], [ref])["R@50"])
