"""RelDN's graphical contrastive losses, vectorised (segment reductions instead of a Python loop per node).

Paper: Zhang, Shih, Elgammal, Tao, Catanzaro, "Graphical Contrastive Losses for Scene Graph Parsing", arXiv 1903.02728.
Reference: NVIDIA/ContrastiveLosses4VRD, `lib/modeling_rel/reldn_heads.py` (`split_pos_neg_spo_agnostic`,
`split_pos_neg_so_aware`, `split_pos_neg_p_aware`) and `lib/roi_data_rel/fast_rcnn_rel.py` (`_sample_pairs`, the node
sample).

Relatedness of a pair: r = 1 - softmax(fused logits)[:, 0] (column 0 is "no relation"). Each loss is computed twice,
anchored on the subject and anchored on the object; the anchor entity of a pair is its "node".

    L1 class-agnostic      per node: min r over its positive pairs  vs  max r over its negative pairs
    L2 entity-class-aware  per node and class c of the other entity among its positives: min r over those positives
                           vs max r over its negatives whose other entity has class c (entities matching no ground
                           truth have label -1 and never match)
    L3 predicate-aware     per node and GT predicate c among its positives: min r over those positives vs max r over
                           its negatives whose predicted foreground predicate (argmax of the logits' columns 1:) is c

each term max(0, margin - (pos - neg)) with margin 0.2. Skip rules, as the reference: a node without a positive or
without a negative pair gives no term; an (L2/L3) class with no matching negative gives no term (the reference's
`USE_SPO_AGNOSTIC_COMPENSATION` is off in every shipped config and is not offered).

The dummy pair. The reference starts each batch with one (pos=1, neg=0) pair so that a batch without any valid node
is not empty; it then calls `F.margin_ranking_loss`, a mean. The dummy's term is max(0, 0.2 - 1) = 0, so each loss is
sum(terms) / (n + 1) for n real terms: the mean is diluted by n / (n + 1) (halved with one node), and a batch with no
valid node gives exactly 0 (no gradient) instead of NaN. This module keeps that behaviour.

Total, as the shipped configs: 1.0 (L1_s + L1_o) + 0.5 (L2_s + L2_o) + 0.1 (L3_s + L3_o); CE on the fused logits is
the model's.

Node sample per image and anchoring (`sample_anchored_pairs`, the reference's `_sample_pairs`, subject-anchored; the
object-anchored one swaps the roles): up to 128 positive pairs (pairs with a relation), then up to 128 negative pairs
whose subject and object both match ground truth, then negatives whose subject matches and object does not, filling
up to 128 negatives; each drawn without replacement. Deviation: nodes are entities by index; the reference groups
pairs by identical subject box coordinates (the same thing unless two entities share a box) and, with more than one
image per GPU, would merge node ids across images (it trained with one image per GPU); here nodes never cross images.

Interface (called from the model's forward when `config.use_contrastive_losses` is on):

    graphical_contrastive_losses(
        predicate_logits,   # FloatTensor [sum_i p_i, 1 + num_predicates]: fused logits of every candidate pair of
                            #   the batch, image after image; column 0 is "no relation"
        pair_index,         # list (one per image) of LongTensor [p_i, 2]: (subject, object) entity index in the image
        predicate_labels,   # list of LongTensor [p_i] (or one [sum_i p_i]): the pair's logit column, 0 for no
                            #   relation, k + 1 for predicate k (one label per pair, as the reference)
        entity_labels,      # list of LongTensor [n_i]: class of each entity, -1 when it matches no ground-truth box
        node_sample_size=128, margins=(0.2, 0.2, 0.2), weights=(1.0, 0.5, 0.1), generator=None)
    -> GraphicalContrastiveLosses(loss=weighted sum, terms={"class_agnostic_subject": ..., ... 6 unweighted values})

The anchored pairs are rows of the candidate pairs, so the logits the reference computes in a second forward pass
on the sampled pairs are the same rows of one forward pass here (the head has no dropout).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = [
    "AnchoredPairs",
    "GraphicalContrastiveLosses",
    "LOSS_NAMES",
    "MARGINS",
    "NODE_SAMPLE_SIZE",
    "WEIGHTS",
    "anchored_contrastive_losses",
    "graphical_contrastive_losses",
    "sample_anchored_pairs",
]

NODE_SAMPLE_SIZE = 128  # cfg.MODEL.NODE_SAMPLE_SIZE
MARGINS = (0.2, 0.2, 0.2)  # NODE_CONTRASTIVE_MARGIN, _SO_AWARE_MARGIN, _P_AWARE_MARGIN
WEIGHTS = (1.0, 0.5, 0.1)  # NODE_CONTRASTIVE_WEIGHT, _SO_AWARE_WEIGHT, _P_AWARE_WEIGHT (shipped configs)
LOSS_NAMES = ("class_agnostic", "entity_aware", "predicate_aware")
ANCHORS = ("subject", "object")


@dataclass
class AnchoredPairs:
    """The pairs one anchoring's losses see: rows into the candidate pairs and what the losses group by."""

    rows: torch.Tensor  # [S] long: row of each pair in the candidate pairs (the logits' rows)
    node: torch.Tensor  # [S] long: the anchor entity, unique over the batch
    positive: torch.Tensor  # [S] bool: the pair has a relation
    other_labels: torch.Tensor  # [S] long: class of the non-anchor entity, -1 when it matches no ground truth
    predicate_labels: torch.Tensor  # [S] long: GT logit column (>= 1) of positives, 0 for negatives


@dataclass
class GraphicalContrastiveLosses:
    loss: torch.Tensor  # the weighted sum
    terms: dict = field(default_factory=dict)  # "<loss>_<anchor>" -> unweighted value


def _choose(candidates: torch.Tensor, count: int, generator) -> torch.Tensor:
    """`count` of `candidates` without replacement (npr.choice)."""
    if count >= candidates.numel():
        return candidates[torch.randperm(candidates.numel(), generator=generator).to(candidates.device)]
    return candidates[torch.randperm(candidates.numel(), generator=generator)[:count].to(candidates.device)]


def sample_anchored_pairs(pair_index: torch.Tensor, predicate_labels: torch.Tensor, entity_labels: torch.Tensor,
                          anchor: str, *, node_sample_size: int = NODE_SAMPLE_SIZE, row_offset: int = 0,
                          entity_offset: int = 0, generator: torch.Generator | None = None) -> AnchoredPairs:
    """One image's node sample for `anchor` ("subject" or "object"): positives, then negatives whose anchor matches
    ground truth (other entity matched first, then unmatched), each capped at `node_sample_size`. Rows and nodes are
    shifted by the offsets so that images can be concatenated."""
    if anchor not in ANCHORS:
        raise ValueError(f"anchor={anchor!r} must be one of {ANCHORS}")
    anchor_col, other_col = (0, 1) if anchor == "subject" else (1, 0)
    anchor_e, other_e = pair_index[:, anchor_col], pair_index[:, other_col]
    pair_pos = predicate_labels > 0
    anchor_pos = entity_labels[anchor_e] >= 0
    other_pos = entity_labels[other_e] >= 0
    positives = _choose(pair_pos.nonzero().flatten(), node_sample_size, generator)
    neg_matched = _choose((anchor_pos & other_pos & ~pair_pos).nonzero().flatten(), node_sample_size, generator)
    neg_unmatched = _choose((anchor_pos & ~other_pos & ~pair_pos).nonzero().flatten(),
                            max(node_sample_size - neg_matched.numel(), 0), generator)
    rows = torch.cat([positives, neg_matched, neg_unmatched])
    positive = torch.zeros(rows.numel(), dtype=torch.bool, device=rows.device)
    positive[:positives.numel()] = True
    return AnchoredPairs(rows=rows + row_offset, node=anchor_e[rows] + entity_offset, positive=positive,
                         other_labels=entity_labels[other_e[rows]], predicate_labels=predicate_labels[rows] * positive)


def anchored_contrastive_losses(predicate_logits: torch.Tensor, pairs: AnchoredPairs,
                                margins=MARGINS) -> torch.Tensor:
    """[L1, L2, L3] of one anchoring, unweighted, from the fused logits of the candidate pairs.

    One segment reduction serves the three losses: every (loss, group) is a key -- L1 groups by node, L2 by (node,
    class of the other entity), L3 by (node, predicate) -- and rows that take no part in a key go to a discarded
    last key. A key gives a term when it has a positive and a negative row: the min relatedness of its positives and
    the max of its negatives. Each loss is F.margin_ranking_loss over [dummy (1, 0)] + its terms, i.e.
    (max(0, m - 1) + sum of terms) / (1 + number of terms)."""
    logits = predicate_logits[pairs.rows]
    relatedness = 1 - logits.softmax(dim=1)[:, 0]
    margin = relatedness.new_tensor([float(m) for m in margins])
    dummy = (margin - 1).clamp(min=0)
    if pairs.rows.numel() == 0:  # only the dummy pair
        return dummy + relatedness.sum() * 0
    node = torch.unique(pairs.node, return_inverse=True)[1]
    num_nodes = int(node.max()) + 1
    classes = int(pairs.other_labels.max().clamp(min=0)) + 1
    columns = logits.shape[1]
    offsets = (0, num_nodes, num_nodes * (1 + classes))
    trash = num_nodes * (1 + classes + columns)
    positive = pairs.positive
    other_key = torch.where(pairs.other_labels >= 0, offsets[1] + node * classes + pairs.other_labels, trash)
    predicted = logits.detach()[:, 1:].argmax(dim=1) + 1
    pos_keys = torch.stack([node, other_key, offsets[2] + node * columns + pairs.predicate_labels])
    neg_keys = torch.stack([node, other_key, offsets[2] + node * columns + predicted])
    pos_keys = torch.where(positive, pos_keys, trash).flatten()
    neg_keys = torch.where(positive, trash, neg_keys).flatten()
    # compact the key space to the keys present (the discarded key sorts last)
    keys, compact = torch.unique(torch.cat([pos_keys, neg_keys]), return_inverse=True)
    pos_keys, neg_keys = compact.split(pos_keys.numel())
    size = keys.numel()
    values = relatedness.repeat(3)
    has_pos = torch.bincount(pos_keys, minlength=size) > 0
    has_neg = torch.bincount(neg_keys, minlength=size) > 0
    min_pos = values.new_zeros(size).scatter_reduce(0, pos_keys, values, "amin", include_self=False)
    max_neg = values.new_zeros(size).scatter_reduce(0, neg_keys, values, "amax", include_self=False)
    keep = has_pos & has_neg & (keys != trash)
    loss_of_key = torch.bucketize(keys, torch.tensor(offsets[1:], device=keys.device), right=True).clamp(max=2)
    terms = (margin[loss_of_key] - (min_pos - max_neg)).clamp(min=0) * keep
    sums = values.new_zeros(3).index_add(0, loss_of_key, terms)
    counts = torch.bincount(loss_of_key, weights=keep.to(values.dtype), minlength=3)
    return (dummy + sums) / (1 + counts)


def _as_list(values, lengths, name):
    if isinstance(values, torch.Tensor):
        if values.shape[0] != sum(lengths):
            raise ValueError(f"{name} has {values.shape[0]} rows but the images have {sum(lengths)} pairs")
        return list(values.split(lengths))
    return list(values)


def _check(predicate_logits, pair_index, predicate_labels, entity_labels):
    if predicate_logits.dim() != 2 or predicate_logits.shape[1] < 2:
        raise ValueError(f"predicate_logits must be [pairs, 1 + num_predicates] (column 0 = no relation); got shape "
                         f"{tuple(predicate_logits.shape)}")
    if not len(pair_index) == len(predicate_labels) == len(entity_labels):
        raise ValueError(f"pair_index, predicate_labels and entity_labels must list the same images; got "
                         f"{len(pair_index)}, {len(predicate_labels)} and {len(entity_labels)}")
    total = sum(p.shape[0] for p in pair_index)
    if total != predicate_logits.shape[0]:
        raise ValueError(f"predicate_logits has {predicate_logits.shape[0]} rows but pair_index lists {total} pairs")
    columns = predicate_logits.shape[1]
    for i, (pairs, labels, entities) in enumerate(zip(pair_index, predicate_labels, entity_labels)):
        if labels.shape[0] != pairs.shape[0]:
            raise ValueError(f"image {i}: {labels.shape[0]} predicate labels for {pairs.shape[0]} pairs")
        if labels.numel() and (labels.min() < 0 or labels.max() >= columns):
            raise ValueError(f"image {i}: predicate labels must be logit columns in [0, {columns}) (0 = no relation, "
                             f"k + 1 = predicate k); got {labels.min().item()}..{labels.max().item()}")
        if pairs.numel() and (pairs.min() < 0 or pairs.max() >= entities.shape[0]):
            raise ValueError(f"image {i}: pair_index refers to entity {pairs.max().item()} (or a negative one) but "
                             f"the image has {entities.shape[0]} entities")


def graphical_contrastive_losses(predicate_logits: torch.Tensor, pair_index, predicate_labels, entity_labels, *,
                                 node_sample_size: int = NODE_SAMPLE_SIZE, margins=MARGINS, weights=WEIGHTS,
                                 generator: torch.Generator | None = None) -> GraphicalContrastiveLosses:
    """The three losses, subject- and object-anchored, on a batch of candidate pairs (see the module docstring)."""
    pair_index = list(pair_index)
    predicate_labels = _as_list(predicate_labels, [p.shape[0] for p in pair_index], "predicate_labels")
    entity_labels = list(entity_labels)
    _check(predicate_logits, pair_index, predicate_labels, entity_labels)
    terms, loss = {}, predicate_logits.new_zeros(())
    for anchor in ANCHORS:
        samples, row_offset, entity_offset = [], 0, 0
        for pairs, labels, entities in zip(pair_index, predicate_labels, entity_labels):
            samples.append(sample_anchored_pairs(pairs, labels, entities, anchor, node_sample_size=node_sample_size,
                                                 row_offset=row_offset, entity_offset=entity_offset,
                                                 generator=generator))
            row_offset += pairs.shape[0]
            entity_offset += entities.shape[0]
        batch = AnchoredPairs(*(torch.cat([getattr(s, f) for s in samples]) if samples else
                                torch.zeros(0, dtype=torch.long, device=predicate_logits.device)
                                for f in ("rows", "node", "positive", "other_labels", "predicate_labels")))
        batch.positive = batch.positive.bool()
        values = anchored_contrastive_losses(predicate_logits, batch, margins)
        for name, weight, value in zip(LOSS_NAMES, weights, values):
            terms[f"{name}_{anchor}"] = value
            loss = loss + weight * value
    return GraphicalContrastiveLosses(loss=loss, terms=terms)
