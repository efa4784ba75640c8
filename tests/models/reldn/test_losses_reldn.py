"""RelDN's graphical contrastive losses against hand-computed cases (skipped nodes, skipped classes, the dummy pair),
the node sample's caps and order, and the weighted total over both anchorings."""

import math

import pytest
import torch

from adlr_hf.models.reldn.losses_reldn import (
    AnchoredPairs,
    anchored_contrastive_losses,
    graphical_contrastive_losses,
    sample_anchored_pairs,
)


def logits_for(relatedness, predicted_column):
    """Logits over (no relation, predicate 0, predicate 1) whose softmax is exactly (1 - r, ...), with the larger
    foreground share on `predicted_column` (1 or 2)."""
    rows = []
    for r, col in zip(relatedness, predicted_column):
        fg = (0.7 * r, 0.3 * r) if col == 1 else (0.3 * r, 0.7 * r)
        rows.append([math.log(1 - r), math.log(fg[0]), math.log(fg[1])])
    return torch.tensor(rows, dtype=torch.float64, requires_grad=True)


# One anchoring, 9 pairs. Node 0: positives r=.9 (other class 5, GT column 1) and .6 (class 7, column 2); negatives
# r=.8 (class 5, predicted column 1) and .3 (unmatched other entity, predicted column 2). Node 1: positives only
# (skipped). Node 2: negatives only (skipped). Node 3: positive .4 (class 5, column 2), negative .35 (class 7,
# predicted column 1).
R = [0.9, 0.6, 0.8, 0.3, 0.5, 0.7, 0.4, 0.35, 0.45]
PREDICTED = [1, 2, 1, 2, 1, 1, 1, 1, 2]
NODE = [0, 0, 0, 0, 1, 2, 3, 3, 1]
POSITIVE = [True, True, False, False, True, False, True, False, True]
OTHER = [5, 7, 5, -1, 5, 5, 5, 7, 7]
GT_COLUMN = [1, 2, 0, 0, 1, 0, 2, 0, 2]


def hand_pairs():
    return AnchoredPairs(rows=torch.arange(len(R)), node=torch.tensor(NODE), positive=torch.tensor(POSITIVE),
                         other_labels=torch.tensor(OTHER), predicate_labels=torch.tensor(GT_COLUMN))


def test_each_loss_equals_the_hand_computation_with_skips_and_the_dummy_pair():
    logits = logits_for(R, PREDICTED)
    l1, l2, l3 = anchored_contrastive_losses(logits, hand_pairs()).tolist()
    # L1: node 0 -> 0.2 - (min pos .6 - max neg .8) = .4; node 3 -> 0.2 - (.4 - .35) = .15; nodes 1, 2 skipped;
    # the dummy (1, 0) adds a zero term: mean over 3.
    assert l1 == pytest.approx((0 + 0.4 + 0.15) / 3, abs=1e-12)
    # L2: node 0 class 5 -> 0.2 - (.9 - .8) = .1; node 0 class 7 has no negative of class 7 -> skipped (the unmatched
    # negative .3 never matches); node 3 class 5 has no negative of class 5 -> skipped. Mean over dummy + 1.
    assert l2 == pytest.approx((0 + 0.1) / 2, abs=1e-12)
    # L3: node 0 column 1 -> 0.2 - (.9 - .8) = .1; column 2 -> max(0, 0.2 - (.6 - .3)) = 0 (still counted);
    # node 3 column 2 has no negative predicted as column 2 -> skipped. Mean over dummy + 2.
    assert l3 == pytest.approx((0 + 0.1 + 0) / 3, abs=1e-12)


def test_gradient_reaches_only_the_min_positive_and_max_negative_pairs():
    logits = logits_for(R, PREDICTED)
    anchored_contrastive_losses(logits, hand_pairs())[0].backward()
    touched = (logits.grad.abs().sum(1) > 0).tolist()
    # L1 uses node 0's .6 (row 1) and .8 (row 2), node 3's .4 (row 6) and .35 (row 7)
    assert touched == [False, True, True, False, False, False, True, True, False]


def test_no_valid_node_gives_zero_from_the_dummy_pair_alone():
    logits = logits_for([0.9, 0.2], [1, 1])
    pairs = AnchoredPairs(rows=torch.arange(2), node=torch.tensor([0, 1]), positive=torch.tensor([True, False]),
                          other_labels=torch.tensor([3, 3]), predicate_labels=torch.tensor([1, 0]))
    values = anchored_contrastive_losses(logits, pairs)
    assert values.tolist() == [0.0, 0.0, 0.0]
    values.sum().backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_dummy_pair_dilutes_the_mean_of_one_node_by_half():
    logits = logits_for([0.5, 0.6], [1, 1])
    pairs = AnchoredPairs(rows=torch.arange(2), node=torch.tensor([4, 4]), positive=torch.tensor([True, False]),
                          other_labels=torch.tensor([2, 2]), predicate_labels=torch.tensor([1, 0]))
    l1, l2, l3 = anchored_contrastive_losses(logits, pairs).tolist()
    assert l1 == l2 == l3 == pytest.approx((0.2 - (0.5 - 0.6)) / 2, abs=1e-12)


def test_node_sample_caps_and_orders_positives_then_matched_then_unmatched_negatives():
    # 6 entities; entity 5 matches no ground truth. Subject 0 pairs with everyone.
    entity_labels = torch.tensor([1, 2, 3, 4, 0, -1])
    pair_index = torch.tensor([[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [5, 0], [1, 2]])
    predicate_labels = torch.tensor([3, 0, 0, 2, 0, 1, 0])
    g = torch.Generator().manual_seed(0)
    s = sample_anchored_pairs(pair_index, predicate_labels, entity_labels, "subject", node_sample_size=2, generator=g)
    # positives: rows 0, 3, 5 capped at 2; matched negatives rows 1, 2, 6 capped at 2; no room left for row 4
    assert s.positive.tolist() == [True, True, False, False]
    assert set(s.rows[:2].tolist()) <= {0, 3, 5} and set(s.rows[2:].tolist()) <= {1, 2, 6}
    assert s.predicate_labels[2:].tolist() == [0, 0]
    big = sample_anchored_pairs(pair_index, predicate_labels, entity_labels, "subject", node_sample_size=3,
                                generator=g)
    assert sorted(big.rows[:3].tolist()) == [0, 3, 5]
    assert sorted(big.rows[3:].tolist()) == [1, 2, 6]  # 3 matched negatives fill the cap: row 4 left out
    full = sample_anchored_pairs(pair_index, predicate_labels, entity_labels, "subject", node_sample_size=8,
                                 generator=g)
    # with room left, the negative whose object matches no ground truth (row 4 = (0, 5)) comes last
    assert full.rows[~full.positive].tolist()[-1] == 4 and full.other_labels[-1] == -1
    obj = sample_anchored_pairs(pair_index, predicate_labels, entity_labels, "object", node_sample_size=8,
                                generator=g)
    # object-anchored: row 4's anchor (entity 5) matches no ground truth, so row 4 is no node's negative
    assert sorted(obj.rows[~obj.positive].tolist()) == [1, 2, 6]
    for row, node, other in zip(obj.rows.tolist(), obj.node.tolist(), obj.other_labels.tolist()):
        assert node == pair_index[row, 1] and other == entity_labels[pair_index[row, 0]]


def loop_losses(logits, pairs, margin=0.2):
    """A plain per-node loop over one anchoring, written from the reference's description."""
    probs = logits.softmax(1)
    r = 1 - probs[:, 0]
    predicted = probs[:, 1:].argmax(1) + 1
    out = []
    for kind in ("agnostic", "entity", "predicate"):
        pos_terms, neg_terms = [1.0], [0.0]
        for node in sorted(set(pairs.node.tolist())):
            rows = [i for i in range(len(pairs.node)) if pairs.node[i] == node]
            pos = [i for i in rows if pairs.positive[i]]
            neg = [i for i in rows if not pairs.positive[i]]
            if not pos or not neg:
                continue
            if kind == "agnostic":
                pos_terms.append(min(r[i].item() for i in pos))
                neg_terms.append(max(r[i].item() for i in neg))
                continue
            key_pos = pairs.other_labels if kind == "entity" else pairs.predicate_labels
            key_neg = pairs.other_labels if kind == "entity" else predicted
            for c in sorted(set(key_pos[i].item() for i in pos)):
                match = [i for i in neg if key_neg[i].item() == c]
                if match:
                    pos_terms.append(min(r[i].item() for i in pos if key_pos[i].item() == c))
                    neg_terms.append(max(r[i].item() for i in match))
        out.append(sum(max(0.0, margin - (p - n)) for p, n in zip(pos_terms, neg_terms)) / len(pos_terms))
    return out


def test_batch_total_weights_both_anchorings_and_keeps_images_apart():
    torch.manual_seed(0)
    # two images with 4 and 3 GT entities, all ordered pairs; entity ids restart per image
    pair_index = [torch.tensor([(s, o) for s in range(n) for o in range(n) if s != o]) for n in (4, 3)]
    entity_labels = [torch.tensor([0, 1, 1, 2]), torch.tensor([2, 0, 1])]
    predicate_labels = [torch.randint(0, 4, (p.shape[0],)) for p in pair_index]
    logits = torch.randn(sum(p.shape[0] for p in pair_index), 4, dtype=torch.float64)
    out = graphical_contrastive_losses(logits, pair_index, predicate_labels, entity_labels)
    expected_total = 0.0
    for anchor, col in (("subject", 0), ("object", 1)):
        rows, nodes, offset, entity_offset = [], [], 0, 0
        for p, n in zip(pair_index, entity_labels):
            rows += list(range(offset, offset + p.shape[0]))
            nodes += (p[:, col] + entity_offset).tolist()
            offset += p.shape[0]
            entity_offset += n.shape[0]
        all_entities = torch.cat(entity_labels)
        other = torch.cat([p[:, 1 - col] + sum(e.shape[0] for e in entity_labels[:i])
                           for i, p in enumerate(pair_index)])
        labels = torch.cat(predicate_labels)
        pairs = AnchoredPairs(rows=torch.tensor(rows), node=torch.tensor(nodes), positive=labels > 0,
                              other_labels=all_entities[other], predicate_labels=labels)
        want = loop_losses(logits, pairs)
        got = [out.terms[f"{name}_{anchor}"].item() for name in ("class_agnostic", "entity_aware", "predicate_aware")]
        assert got == pytest.approx(want, abs=1e-12)
        expected_total += 1.0 * want[0] + 0.5 * want[1] + 0.1 * want[2]
    assert out.loss.item() == pytest.approx(expected_total, abs=1e-12)
    assert expected_total > 0


def test_bad_inputs_are_refused_with_the_fix():
    pair_index = [torch.tensor([[0, 1]])]
    with pytest.raises(ValueError, match="column 0 = no relation"):
        graphical_contrastive_losses(torch.zeros(1), pair_index, [torch.tensor([1])], [torch.tensor([0, 1])])
    with pytest.raises(ValueError, match="logit columns in"):
        graphical_contrastive_losses(torch.zeros(1, 3), pair_index, [torch.tensor([3])], [torch.tensor([0, 1])])
    with pytest.raises(ValueError, match="has 1 entities"):
        graphical_contrastive_losses(torch.zeros(1, 3), pair_index, [torch.tensor([1])], [torch.tensor([0])])
    with pytest.raises(ValueError, match="lists 1 pairs"):
        graphical_contrastive_losses(torch.zeros(2, 3), pair_index, [torch.tensor([1])], [torch.tensor([0, 1])])
