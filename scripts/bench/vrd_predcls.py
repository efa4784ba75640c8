"""VRD predicate classification (PredCls: ground-truth boxes and labels) without the visual module, on the real VRD
annotations (../shared/data/vrd: 4,000 train / 1,000 test images, 100 objects, 70 predicates), comparing the
late-fusion pieces of arXiv 1811.09543 / RelDN (arXiv 1903.02728):

    (a) semantic    the language bias alone: log P(predicate | subject class, object class) from the training
                    triplets (a fixed table, nothing trained; `reldn-vrd-language-bias`)
    (b) +spatial    semantic (trainable, initialised from the table) + spatial module (28-d box-pair feature),
                    logits added, trained with cross entropy (`reldn-vrd-predcls-novisual`)
    (c) +contrast   (b) + the three graphical contrastive losses (weights 1.0 / 0.5 / 0.1, margins 0.2)

Metric: relationship detection Recall@50 / @100 on the test split (with ground-truth boxes, i.e. predicate
recall), with the best predicate per pair (top-1) and with every predicate per pair (top-70), as the reference's
VRD evaluation sweeps (`task_evaluation_vg_and_vrd.py`, prd_k = 1 and 70); phrase detection is not reported (with
ground-truth boxes it adds nothing here). Each trained set-up runs with 3 seeds (the seed sets the initialisation and
the order of images and pair / node samples); (a) is deterministic.

Training (CPU-sized, not the paper's schedule): AdamW lr 1e-3, weight decay 1e-4 on matrices, batches of 8 images,
`--steps` steps (default 1000, about 2 epochs); the model's own pair sampling (512 fg / 2048 pairs per image).
One torch thread by default: on a shared machine, thread synchronisation made small ops ~1000x slower with 2.
The numbers are a PredCls-without-vision sanity check of the fusion and the losses, not the paper's table (which uses
the visual module on a trained detector).

Measured (shared 2-core CPU, one thread, defaults: 1000 steps, seeds 0 1 2; the 955 test images with relations,
7,478 distinct test relations; 5 min 15 s in all), predicate Recall in %, mean ± std over seeds:

    | set-up      | R@50 top-1   | R@100 top-1  | R@50 top-70  | R@100 top-70 |
    | (a) semantic | 48.09        | 51.24        | 57.46        | 70.41        |
    | (b) +spatial | 51.59 ± 0.13 | 52.63 ± 0.18 | 67.96 ± 0.13 | 78.17 ± 0.32 |
    | (c) +contr.  | 51.28 ± 0.16 | 52.34 ± 0.16 | 67.56 ± 0.30 | 77.65 ± 0.20 |

(b) beats (a) by 3.5 (top-1) and 10.5 (top-70) R@50 points; at this short schedule without the visual module the
contrastive losses do not help ((c) is 0.3-0.5 below (b), about two standard deviations).

JSON on the last line: {"bench": "vrd_predcls", "ratio": R@50 top-1 of (b) / that of (a), "table": {...}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

VRD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vrd"
SETUPS = {
    "a_semantic": ("reldn-vrd-language-bias", {}),
    "b_semantic_spatial": ("reldn-vrd-predcls-novisual", {"use_contrastive_losses": False}),
    "c_semantic_spatial_contrastive": ("reldn-vrd-predcls-novisual", {"use_contrastive_losses": True}),
}
KEYS = {"R@50_top1": "R@50", "R@100_top1": "R@100", "R@50_top70": "R@50_all", "R@100_top70": "R@100_all"}


def build(variant: str, overrides: dict, train, seed: int):
    from transformers import AutoModel

    import adlr_hf  # noqa: F401 - registers the families
    from adlr_hf.registry import get_config
    from adlr_hf.tasks.relationship_detection import frequency_table_of

    config = get_config(variant)
    config.num_object_classes, config.num_predicates = len(train.object_names), len(train.predicate_names)
    config.object_names, config.predicate_names = train.object_names, train.predicate_names
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = AutoModel.from_config(config)
    model.load_frequency_table(frequency_table_of(train, config))
    return model


def train_model(model, dataset, steps: int, batch_size: int, lr: float, seed: int) -> float:
    from adlr_hf.data.relationships import relationship_collate

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return 0.0
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": 1e-4},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=g).tolist()
    model.train()
    loss = torch.zeros(())
    for step in range(steps):
        start = (step * batch_size) % len(order)
        if start + batch_size > len(order):
            order = torch.randperm(len(dataset), generator=g).tolist()
            start = 0
        batch = relationship_collate([dataset[i] for i in order[start: start + batch_size]])
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(VRD))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-test-images", type=int, default=None, help="quick runs: score only the first N")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from adlr_hf.data.relationships import RelationshipDataset
    from adlr_hf.tasks.relationship_detection import evaluate_relationship_model, load_split

    began = time.perf_counter()
    train = load_split("vrd", args.data, "train")
    test = load_split("vrd", args.data, "test")
    test_records = test.records if args.max_test_images is None else test.records.select(
        range(min(args.max_test_images, len(test.records))))
    train_set, test_set = RelationshipDataset(train.records), RelationshipDataset(test_records)
    results = {}
    for name, (variant, overrides) in SETUPS.items():
        seeds = args.seeds[:1] if name.startswith("a_") else args.seeds
        runs = []
        for seed in seeds:
            t0 = time.perf_counter()
            model = build(variant, overrides, train, seed)
            steps = 0 if name.startswith("a_") else args.steps
            final_loss = train_model(model, train_set, steps, args.batch_size, args.lr, seed)
            metrics = evaluate_relationship_model(model, test_set, batch_size=16, progress=False)
            runs.append({key: 100 * metrics[source] for key, source in KEYS.items()})
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items())
                  + f" (final loss {final_loss:.3f}, {time.perf_counter() - t0:.0f} s)", flush=True)
        results[name] = {key: {"mean": statistics.mean(r[key] for r in runs),
                               "std": statistics.stdev(r[key] for r in runs) if len(runs) > 1 else 0.0,
                               "runs": [round(r[key], 3) for r in runs]} for key in KEYS}
    print("| set-up | " + " | ".join(KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[k]['mean']:.2f} ± {row[k]['std']:.2f}" for k in KEYS) + " |")
    ratio = results["b_semantic_spatial"]["R@50_top1"]["mean"] / max(results["a_semantic"]["R@50_top1"]["mean"], 1e-9)
    print(json.dumps({"bench": "vrd_predcls", "ratio": ratio,
                      "ratio_means": "R@50 (top-1 predicate) of semantic+spatial (b) / semantic alone (a); > 1 means "
                                     "the spatial module adds recall",
                      "table": results, "test_images": len(test_records), "train_images": len(train.records),
                      "steps": args.steps, "batch_size": args.batch_size, "seeds": args.seeds,
                      "seconds": time.perf_counter() - began}))


if __name__ == "__main__":
    main()
