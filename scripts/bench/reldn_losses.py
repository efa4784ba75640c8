"""RelDN's graphical contrastive losses (arXiv 1903.02728; NVIDIA/ContrastiveLosses4VRD `reldn_heads.py`):
the vectorised `anchored_contrastive_losses` of `adlr_hf.models.reldn.losses_reldn` against a straightforward
per-node loop written here the way the reference computes them (for each node: select its rows, min / max, and for
the class-aware losses a second loop over the classes of its positives, growing the pos / neg batches with
`torch.cat`; then `F.margin_ranking_loss` with the dummy (1, 0) pair first), in one run, on the same pairs.

    ratio = median time (loop) / median time (vectorised)       goal >= 10

Each time is one forward + backward of all three losses, subject- and object-anchored (six losses, weighted 1.0 /
0.5 / 0.1 as the shipped configs), from the fused logits. Case: 8 images of 30 entities with random classes (10 % match
no ground truth), every ordered pair a candidate, 20 % of them with a relation, 51 logit columns (VG's 50 predicates
+ no relation); the reference's node sample (128 positives + 128 negatives per image and anchoring) gives 8 x 256 =
2,048 pairs per anchoring. The six values must agree to 1e-6 (float32 logits) and the logits' gradients to 1e-6.

Time: CPU time of this process (`time.process_time`), one torch thread; on CUDA, wall time between synchronisations.
Both variants run back to back in alternating order each repetition; medians.
Measured (shared 2-core CPU, one thread, defaults): ratio ~13 (vectorised ~4.5 ms, loop ~59 ms per forward +
backward), values equal to 5e-8 and gradients exactly.
JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from adlr_hf.models.reldn.losses_reldn import (
    MARGINS,
    WEIGHTS,
    AnchoredPairs,
    anchored_contrastive_losses,
    sample_anchored_pairs,
)


def make_case(images: int, entities: int, columns: int, seed: int, device):
    g = torch.Generator().manual_seed(seed)
    samples = {"subject": [], "object": []}
    row_offset = entity_offset = 0
    for _ in range(images):
        labels = torch.randint(0, 100, (entities,), generator=g)
        labels[torch.rand(entities, generator=g) < 0.1] = -1
        pairs = torch.tensor([(s, o) for s in range(entities) for o in range(entities) if s != o])
        related = (torch.rand(pairs.shape[0], generator=g) < 0.25) & (labels[pairs] >= 0).all(1)
        predicates = torch.where(related, torch.randint(1, columns, (pairs.shape[0],), generator=g), 0)
        for anchor in samples:
            samples[anchor].append(sample_anchored_pairs(pairs, predicates, labels, anchor, row_offset=row_offset,
                                                         entity_offset=entity_offset, generator=g))
        row_offset += pairs.shape[0]
        entity_offset += entities
    batches = {a: AnchoredPairs(*(torch.cat([getattr(s, f) for s in ss]).to(device) for f in
                                  ("rows", "node", "positive", "other_labels", "predicate_labels")))
               for a, ss in samples.items()}
    logits = torch.randn(row_offset, columns, generator=g).to(device)
    return logits, batches


def loop_anchored(logits, pairs: AnchoredPairs, margins=MARGINS):
    """The reference's three split_pos_neg_* loops, device-agnostic, one anchoring."""
    probs = F.softmax(logits[pairs.rows], dim=1)
    r = 1 - probs[:, 0]
    predicted = probs[:, 1:].argmax(dim=1).cpu().numpy() + 1
    node = pairs.node.cpu().numpy()
    positive = pairs.positive.cpu().numpy()
    other = pairs.other_labels.cpu().numpy()
    gt = pairs.predicate_labels.cpu().numpy()
    batches = [[r.new_ones(1), r.new_zeros(1)] for _ in range(3)]
    for n in np.unique(node):
        inds = np.where(node == n)[0]
        pos, neg = inds[positive[inds]], inds[~positive[inds]]
        if pos.size == 0 or neg.size == 0:
            continue
        b = batches[0]
        b[0] = torch.cat((b[0], torch.min(r[pos]).unsqueeze(0)))
        b[1] = torch.cat((b[1], torch.max(r[neg]).unsqueeze(0)))
        for b, key_pos, key_neg in ((batches[1], other[pos], other[neg]), (batches[2], gt[pos], predicted[neg])):
            for c in np.unique(key_pos):
                if c < 0:
                    continue
                neg_c = neg[key_neg == c]
                if neg_c.size == 0:
                    continue
                b[0] = torch.cat((b[0], torch.min(r[pos[key_pos == c]]).unsqueeze(0)))
                b[1] = torch.cat((b[1], torch.max(r[neg_c]).unsqueeze(0)))
    return torch.stack([F.margin_ranking_loss(p, n, torch.ones_like(p), margin=m)
                        for (p, n), m in zip(batches, margins)])


def vectorised_anchored(logits, pairs):
    return anchored_contrastive_losses(logits, pairs)


VARIANTS = {"vectorised": vectorised_anchored, "loop": loop_anchored}


def run_pass(fn, logits, batches):
    leaf = logits.detach().requires_grad_()
    values = torch.cat([fn(leaf, batches["subject"]), fn(leaf, batches["object"])])
    (values * torch.tensor(WEIGHTS * 2, device=values.device)).sum().backward()
    return values.detach(), leaf.grad


def timed(fn, logits, batches, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        run_pass(fn, logits, batches)
        torch.cuda.synchronize(device)
        return time.perf_counter() - start
    start = time.process_time()
    run_pass(fn, logits, batches)
    return time.process_time() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--entities", type=int, default=30)
    parser.add_argument("--columns", type=int, default=51)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    logits, batches = make_case(args.images, args.entities, args.columns, args.seed, device)
    pairs = int(batches["subject"].rows.numel())
    values = {name: run_pass(fn, logits, batches) for name, fn in VARIANTS.items()}
    value_diff = float((values["vectorised"][0] - values["loop"][0]).abs().max())
    grad_diff = float((values["vectorised"][1] - values["loop"][1]).abs().max())
    if value_diff > 1e-6 or grad_diff > 1e-6:
        raise SystemExit(f"the two implementations differ: values by {value_diff:.3g}, gradients by {grad_diff:.3g}")
    times = {name: [] for name in VARIANTS}
    for rep in range(args.reps):
        order = list(VARIANTS) if rep % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            times[name].append(timed(VARIANTS[name], logits, batches, device))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"pairs per anchoring: {pairs}; losses (L1, L2, L3 subject; object): "
          f"{[round(v, 5) for v in values['vectorised'][0].tolist()]}")
    for name, t in median.items():
        print(f"{name:>10}: {t * 1e3:.2f} ms per forward + backward")
    print(json.dumps({"bench": "reldn_losses", "ratio": median["loop"] / median["vectorised"],
                      "ratio_means": "loop time / vectorised time (goal >= 10)", "pairs_per_anchoring": pairs,
                      "vectorised_ms": median["vectorised"] * 1e3, "loop_ms": median["loop"] * 1e3,
                      "max_value_diff": value_diff, "max_grad_diff": grad_diff, "device": str(device),
                      "threads": args.threads}))


if __name__ == "__main__":
    main()
