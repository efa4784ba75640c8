"""`relationship-detection`: visual relationship detection / scene-graph parsing (PredCls, SGCls, SGDet) on VRD, Visual
Genome or OpenImages VRD, as RelDN (arXiv 1903.02728) and the late-fusion model of arXiv 1811.09543 train and evaluate
(reference NVIDIA/ContrastiveLosses4VRD).

    adlr-hf train --model reldn-vrd-predcls-novisual --data VRD_DIR --dataset vrd --mode predcls
    adlr-hf evaluate RUN/model --task relationship-detection --data VRD_DIR [--dataset vrd] [--split test]

Data: `--data` is the dataset's folder (`adlr_hf.data.relationships`: VRD json, Visual Genome json, OpenImages csv);
`--images DIR` the images (`DIR/<split>/<file>` or `DIR/<file>`), needed only when the model's visual module is on.
The vocabulary sizes and names go into the model's config; the semantic module starts from the frequency table of the
training triplets (background = overlapping ground-truth box pairs + 1, as the reference), unless `--init-from`
brings trained weights.

Evaluation (training-time and offline, through the `relationship_recall` metric module): relationship and phrase
detection Recall@20/50/100 with the best predicate per pair (`R@K`, `phrase_R@K`) and, offline, with every predicate
per pair (`R@K_all`, the reference's prd_k = 70 on VRD). Offline, a per-module contribution summary: for each scored
pair's best predicate, each module's logit for it minus that module's mean foreground logit (softmax ignores a
module's constant offset, so this is what the module adds to the choice); `contribution_share_<module>` is the
module's share of the summed absolute values. With `--dataset oi`, the offline evaluation adds the OpenImages VRD
score (`oi_score` = 0.2 R@50 + 0.4 wmAP_rel + 0.4 wmAP_phr, through the `openimages_vrd` module).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from ...family import Option
from ...tasks.base import (DATASET, EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int, dataset_layout,
                   pipeline_snippet)
from ...tasks.image_classification import EVAL_SPLIT

DATASETS = ("vrd", "vg", "oi")
MODES = ("predcls", "sgcls", "sgdet")
RECALL_K = (20, 50, 100)
MODULES = ("visual", "spatial", "semantic", "subject", "object")
EVAL_SPLITS = ("val", "validation", "test")

MODE = Option("--mode", dict(default=None, choices=MODES,
                             help="relationship detection: predcls (GT boxes and labels), sgcls (GT boxes), sgdet "
                                  "(detected boxes); default: the model's config"))
IMAGES = Option("--images", dict(default=None, metavar="DIR",
                                 help="relationship detection: the images (DIR/<split>/<file> or DIR/<file>); "
                                      "optional for predcls without the visual module"))


def split_image_dir(images, split: str) -> Path | None:
    if images is None:
        return None
    root = Path(images).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--images {images!r} is not a folder; pass the folder of the images")
    return root / split if (root / split).is_dir() else root


def _split_exists(dataset: str, folder: Path, split: str) -> bool:
    from ...data.relationships.openimages import split_csv
    from ...data.relationships.vg_sgg_h5 import SPLITS, find_h5
    from ...data.relationships.vrd import split_file

    if dataset == "vg" and find_h5(folder) is not None:
        return split in SPLITS
    try:
        (split_csv if dataset == "oi" else split_file)(folder, split)
        return True
    except FileNotFoundError:
        if dataset != "vg" or not (folder / "relationships.json").is_file():
            return False
        # raw Visual Genome: a split is the image ids of <split>.txt; without any list, every image is "train"
        lists = [folder / f"{name}.txt" for name in ("train", *EVAL_SPLITS)]
        return (folder / f"{split}.txt").is_file() or (split == "train" and not any(p.is_file() for p in lists))


def load_split(dataset: str, folder, split: str, images=None, bad=None):
    """`RelationshipData` of one split (images only for the image sizes and the visual module)."""
    from ...data.relationships import LOADERS

    if dataset not in DATASETS:
        raise ValueError(f"--dataset {dataset!r} is not one of {DATASETS}")
    kwargs = {} if dataset == "vg" else {"image_dir": split_image_dir(images, split)}
    return LOADERS[dataset](folder, split, bad=bad, **kwargs)


def frequency_table_of(data, config) -> torch.Tensor:
    """The semantic module's initial table from a training split (reference: get_dataset_counts_rel.py)."""
    from .frequency_reldn import frequency_table, overlapping_class_pairs

    background = [overlapping_class_pairs(torch.tensor(row["boxes"]).reshape(-1, 4), torch.tensor(row["box_labels"]))
                  for row in data.records]
    return frequency_table(list(data.triplets()), config.num_object_classes, config.num_predicates,
                           torch.cat(background) if background else None)


def _entity_label_and_score(logits: torch.Tensor, slots: torch.Tensor, entities: torch.Tensor, count: int):
    """Per pair: the class and score of its subject (or object) entity. The model's `subject_logits` /
    `object_logits` are already class log-probabilities: the detector's softmax over background + classes with the
    background column dropped (sgcls / sgdet; in predcls 0 at the given label), so the score is `exp` of the best one,
    as the reference scores an entity, not a softmax renormalised over the classes without background. The per-pair
    rows repeat their entity's, so each entity's are read once (at its first pair)."""
    first = torch.full((count,), len(entities), dtype=torch.long, device=entities.device)
    first = first.scatter_reduce(0, entities, torch.arange(len(entities), device=entities.device), "amin")
    present = first < len(entities)
    entity_logits = logits[slots[first[present]]].detach().float()
    best, label = entity_logits.max(-1)
    score = best.exp()
    by_entity = torch.zeros(count, dtype=torch.long, device=entities.device)
    by_entity[present] = torch.arange(int(present.sum()), device=entities.device)
    return label[by_entity[entities]], score[by_entity[entities]]


def batch_predictions(outputs) -> list[dict]:
    """The scored pairs of every image of a model output, in the metric modules' layout (numpy)."""
    mask = outputs.pair_mask
    out = []
    for b in range(mask.shape[0]):
        slots = mask[b].nonzero().flatten()
        pairs = outputs.pair_index[b][slots]
        boxes = outputs.boxes[b].detach().float()
        predicate = outputs.predicate_logits[b][slots].detach().float().softmax(-1)[:, 1:]
        subject_label, subject_score = _entity_label_and_score(outputs.subject_logits[b], slots, pairs[:, 0],
                                                               len(boxes))
        object_label, object_score = _entity_label_and_score(outputs.object_logits[b], slots, pairs[:, 1],
                                                             len(boxes))
        out.append({"subject_boxes": boxes[pairs[:, 0]].cpu().numpy(), "object_boxes": boxes[pairs[:, 1]].cpu().numpy(),
                    "subject_labels": subject_label.cpu().numpy(), "object_labels": object_label.cpu().numpy(),
                    "subject_scores": subject_score.cpu().numpy(), "object_scores": object_score.cpu().numpy(),
                    "predicate_scores": predicate.cpu().numpy()})
    return out


def image_reference(batch: dict, b: int) -> dict:
    boxes, labels, relations = batch["boxes"][b].float(), batch["box_labels"][b], batch["relations"][b]
    s, o = relations[:, 0], relations[:, 1]
    return {"subject_boxes": boxes[s].cpu().numpy(), "object_boxes": boxes[o].cpu().numpy(),
            "subject_labels": labels[s].cpu().numpy(), "object_labels": labels[o].cpu().numpy(),
            "predicate_labels": relations[:, 2].cpu().numpy()}


def _sum_over_ranks(counts: dict, images: int, dp_group) -> tuple[dict, int]:
    if dp_group is None or not dist.is_initialized() or dist.get_world_size(dp_group) == 1:
        return counts, images
    parts = [None] * dist.get_world_size(dp_group)
    dist.all_gather_object(parts, (counts, images), group=dp_group)
    total: dict = {}
    for part, _ in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total, sum(n for _, n in parts)


class RecallMetric(EvalMetric):
    """Relationship / phrase detection Recall@K of a training-time evaluation pass through the `relationship_recall`
    module's per-image counts, summed over every data-parallel rank."""

    def __init__(self, dp_group=None, predicates_per_pair=1):
        from ...metrics.relationship_recall.relationship_recall import recall_keys

        self.dp_group = dp_group
        self.keys = recall_keys(RECALL_K, predicates_per_pair, phrase=True)
        self.reset()

    def reset(self) -> None:
        self.counts, self.images = {}, 0

    def add_batch(self, outputs, batch) -> None:
        from ...metrics.relationship_recall.relationship_recall import image_recall_counts

        for b, prediction in enumerate(batch_predictions(outputs)):
            counts = image_recall_counts(prediction, image_reference(batch, b), self.keys, b)
            for key, value in counts.items():
                self.counts[key] = self.counts.get(key, 0) + value
            self.images += 1

    def compute(self) -> dict[str, float]:
        from ...metrics.relationship_recall.relationship_recall import recalls_from_counts

        counts, images = _sum_over_ranks(self.counts, self.images, self.dp_group)
        if not images:
            return {}
        out = recalls_from_counts(counts, self.keys, images)
        return {k: float(v) for k, v in out.items() if k not in ("num_relations", "num_images")}


class ContributionSummary:
    """Sums, per module, |the module's logit for the pair's best predicate - its mean foreground logit|."""

    def __init__(self):
        self.sums = dict.fromkeys(MODULES, 0.0)
        self.pairs = 0

    def add(self, outputs) -> None:
        contributions = outputs.contributions or {}
        mask = outputs.pair_mask
        best = outputs.predicate_logits[..., 1:].argmax(-1, keepdim=True) + 1
        for name, logits in contributions.items():
            centred = logits.gather(-1, best).squeeze(-1) - logits[..., 1:].mean(-1)
            self.sums[name] = self.sums.get(name, 0.0) + float(centred.abs()[mask].sum())
        self.pairs += int(mask.sum())

    def summary(self) -> dict:
        total = sum(self.sums.values())
        out = {f"contribution_share_{name}": (value / total if total else 0.0) for name, value in self.sums.items()}
        out.update({f"contribution_mean_abs_{name}": (value / self.pairs if self.pairs else 0.0)
                    for name, value in self.sums.items()})
        return out


class RelationshipDetectionTask(Task):
    name = "relationship-detection"
    description = "visual relationship detection / scene-graph parsing (PredCls, SGCls, SGDet)"
    auto_class_name = "AutoModel"
    pipeline_tag = None  # the Hub has no relationship-detection tag; the card snippet names the family's pipeline
    unit = "images"
    arguments = (DATASET, MODE, IMAGES, EVAL_SPLIT)
    full_scale = "the paper's model (trained on the full dataset with a trained entity detector)"
    evaluations = (
        Evaluation("relationship-detection", "adlr_hf.models.reldn.task_relationship_detection:run_from_args",
                   "a VRD / Visual Genome / OpenImages VRD folder (see --dataset)",
                   ModelIndexEntry("relationship-detection", "Visual relationship detection", "", "", None, "test",
                                   {**{f"R@{k}": (f"recall@{k}", f"Relationship detection R@{k} (top-1 predicate)")
                                       for k in RECALL_K},
                                    **{f"phrase_R@{k}": (f"phrase_recall@{k}", f"Phrase detection R@{k} "
                                                                                f"(top-1 predicate)")
                                       for k in RECALL_K},
                                    **{f"R@{k}_all": (f"recall@{k}_all_predicates",
                                                      f"Relationship detection R@{k} (all predicates per pair)")
                                       for k in RECALL_K},
                                    "oi_score": ("openimages_vrd_score", "OpenImages VRD score (0.2 R@50 + 0.4 "
                                                                         "wmAP rel + 0.4 wmAP phr)"),
                                    "wmAP_rel": ("wmap_relationship", "OpenImages weighted mAP, relationships"),
                                    "wmAP_phr": ("wmap_phrase", "OpenImages weighted mAP, phrases"),
                                    **{f"contribution_share_{m}": (f"contribution_share_{m}",
                                                                   f"Share of the {m} module in the chosen predicate")
                                       for m in MODULES}}),
                   options=(DATASET, MODE, IMAGES)),
    )

    def fits(self, config) -> bool:  # a relationship model: it names object classes and predicates
        return hasattr(config, "num_object_classes") and hasattr(config, "num_predicates") and super().fits(config)

    def check_args(self, args, config) -> None:
        if not args.data or len(args.data) != 1:
            raise ValueError("relationship detection needs --data <one folder> of VRD / Visual Genome / OpenImages "
                             "VRD annotations (see --dataset)")
        args.dataset = dataset_layout(args, "relationship detection", DATASETS, default="vrd")
        folder = Path(args.data[0]).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"--data {args.data[0]!r} is not a folder; pass the folder of the annotations")
        if args.images is not None:
            split_image_dir(args.images, "train")
        mode = args.mode or config.mode
        if (config.use_visual or mode != "predcls") and args.images is None:
            raise ValueError(f"this model (mode={mode}, use_visual={config.use_visual}) reads images: pass --images "
                             "DIR, or train PredCls with a model whose visual module is off (e.g. "
                             "reldn-vrd-predcls-novisual)")
        if args.mode is not None and args.mode != "predcls" and not config.use_visual:
            raise ValueError(f"--mode {args.mode} takes entities from the detector, which runs with the visual "
                             "module: use --mode predcls or a model with use_visual=True")
        if not _split_exists(args.dataset, folder, "train"):
            raise FileNotFoundError(f"{folder} has no train split for --dataset {args.dataset}")
        if args.eval_split is not None and not _split_exists(args.dataset, folder, args.eval_split):
            raise ValueError(f"--eval-split {args.eval_split!r} is not a split of {folder}")

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ...data.bad_samples import BadSamples
        from ...data.relationships import RelationshipDataset, relationship_collate
        from ...parallel.state import get_parallel_state, rank0_first

        args.dataset = dataset_layout(args, "relationship detection", DATASETS, default="vrd")
        folder = Path(args.data[0]).expanduser()
        bad = BadSamples(args.on_bad_sample)
        train = rank0_first(lambda: load_split(args.dataset, folder, "train", args.images, bad), is_main)
        eval_split = args.eval_split
        if eval_split is None and args.eval_fraction > 0:
            eval_split = next((s for s in EVAL_SPLITS if _split_exists(args.dataset, folder, s)), None)
        held_out = load_split(args.dataset, folder, eval_split, args.images, bad) if eval_split else None
        sizes = (len(train.object_names), len(train.predicate_names))
        if init_from is not None and (config.num_object_classes, config.num_predicates) != sizes:
            raise ValueError(f"--init-from's model has {config.num_object_classes} object classes and "
                             f"{config.num_predicates} predicates; the data has {sizes[0]} and {sizes[1]}")
        config.num_object_classes, config.num_predicates = sizes
        config.object_names, config.predicate_names = train.object_names, train.predicate_names
        if args.mode is not None:
            config.mode = args.mode
        images = args.images if (config.use_visual or config.mode != "predcls") else None
        train_set = RelationshipDataset(train.records, image_dir=split_image_dir(images, "train"))
        eval_set = RelationshipDataset(held_out.records, image_dir=split_image_dir(images, eval_split)) \
            if held_out is not None else None
        state = get_parallel_state()
        run = TaskRun(config, train_set, eval_set, relationship_collate, 1, None, [str(folder)],
                      metric=RecallMetric(state.dp_group if state else None) if eval_set is not None else None,
                      extra_info={"dataset": args.dataset, "mode": config.mode, "eval_split": eval_split,
                                  "train_images": len(train.records), "images_without_relations":
                                  train.empty_images, **bad.summary()})
        run.frequency_table = None if init_from is not None else frequency_table_of(train, config)
        return run

    def build_model(self, run: TaskRun, init_from: Path | None):
        model = super().build_model(run, init_from)
        table = getattr(run, "frequency_table", None)
        if table is not None and config_uses_semantic(run.config):
            model.load_frequency_table(table)
        return model

    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        rows = [("images", _fmt_int(training.get("images"))),
                ("dataset / mode", f"{training.get('dataset', 'n/a')} / {training.get('mode', 'n/a')}")]
        if training.get("eval_loss") is not None:
            recalls = " / ".join(f"{training[f'eval_R@{k}']:.4g}" if training.get(f"eval_R@{k}") is not None
                                 else "n/a" for k in RECALL_K)
            rows.append((f"'{training.get('eval_split')}' split (evaluated during training) loss / R@20 / R@50 / "
                         "R@100", f"{training['eval_loss']:.4g} / {recalls}"))
        return rows

    def usage_snippet(self, model_id: str) -> str:
        return pipeline_snippet("relationship-detection", model_id, "relate", 'relate("image.jpg")')


def config_uses_semantic(config) -> bool:
    return bool(getattr(config, "use_semantic", True))


@torch.no_grad()
def evaluate_relationship_model(model, dataset, batch_size: int = 8, progress: bool = True,
                                openimages: bool = False) -> dict:
    """Recall@K (top-1 and all predicates per pair), phrase Recall@K and the contribution summary of `model` on a
    `RelationshipDataset`, and with `openimages` the OpenImages VRD score (`oi_score`, `oi_R@50`, `wmAP_rel`,
    `wmAP_phr`, `mAP_rel`, `mAP_phr`, per-predicate `AP_rel` / `AP_phr`, through the `openimages_vrd` module);
    every data-parallel rank returns the same numbers."""
    from tqdm.auto import tqdm

    from ...data.relationships import relationship_collate
    from ...evaluation.data_parallel import gather_records, rank_share, shows_progress
    from ...metrics.openimages_vrd.openimages_vrd import score_from_triplets
    from ...metrics.relationship_recall.relationship_recall import image_recall_counts, recalls_from_counts
    from ...metrics.relationship_recall.relationship_triplets import image_arrays, top_triplets
    from ...parallel.state import get_parallel_state
    from ...training.trainer import to_device

    predicates = int(model.config.num_predicates)
    keys = ([(f"R@{k}", k, 1, False) for k in RECALL_K] + [(f"phrase_R@{k}", k, 1, True) for k in RECALL_K]
            + [(f"R@{k}_all", k, predicates, False) for k in RECALL_K])
    device = next(model.parameters()).device
    mine = rank_share(list(range(len(dataset))))
    counts, images, contributions, kept = {}, 0, ContributionSummary(), []
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(mine), batch_size), desc="evaluate", unit="batch",
                          disable=not shows_progress(progress)):
            batch = to_device(relationship_collate([dataset[i] for i in mine[start: start + batch_size]]), device)
            inputs = {k: v for k, v in batch.items() if k != "relations"}
            outputs = model(**inputs, return_contributions=True)
            contributions.add(outputs)
            for b, prediction in enumerate(batch_predictions(outputs)):
                reference = image_reference(batch, b)
                for key, value in image_recall_counts(prediction, reference, keys, b).items():
                    counts[key] = counts.get(key, 0) + value
                if openimages:  # the OpenImages protocol: 2 predicates per pair, triplets above 1e-5
                    pred, ref = image_arrays(prediction, reference, b)
                    kept.append((top_triplets(pred, 2, score_threshold=1e-5), ref))
                images += 1
    finally:
        model.train(was_training)
    state = get_parallel_state()
    group = state.dp_group if state is not None else None
    counts, images = _sum_over_ranks(counts, images, group)
    sums, pairs = _sum_over_ranks(contributions.sums, contributions.pairs, group)
    contributions.sums, contributions.pairs = sums, pairs
    out = {**recalls_from_counts(counts, keys, images), **contributions.summary()}
    if openimages:
        kept = gather_records(kept)
        score = score_from_triplets([d for d, _ in kept], [r for _, r in kept], predicates)
        out.update({"oi_score": score["score"], "oi_R@50": score["R@50"],
                    **{k: score[k] for k in ("wmAP_rel", "wmAP_phr", "mAP_rel", "mAP_phr")},
                    "AP_rel": [float(v) for v in score["AP_rel"]], "AP_phr": [float(v) for v in score["AP_phr"]]})
    return out


def evaluate_relationship_model_dir(model_dir, data, dataset: str = "vrd", split: str = "test", images=None,
                                    mode: str | None = None, batch_size: int = 8, tp: int = 1,
                                    device: str | None = None, progress: bool = True) -> dict:
    """Load a saved relationship model and score it on `data`'s `split`: what `adlr-hf evaluate --task
    relationship-detection` runs. Inputs are checked before the model is loaded."""
    from transformers import AutoModel

    from ...checks import check_int
    from ...data.relationships import RelationshipDataset
    from ...evaluation.loading import join_parallel_groups, load_model, read_config

    path = os.path.expanduser(os.fspath(model_dir))
    if not os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(path, "model",
                                                                                           "config.json")):
        path = os.path.join(path, "model")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"model folder {path!r} has no config.json; pass a saved model folder (a run's "
                                "model/ or a publish)")
    check_int("batch_size", batch_size, 1)
    check_int("tp", tp, 1)
    folder = Path(os.path.expanduser(os.fspath(data)))
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {data!r} is not a folder; pass the folder of the annotations")
    config = read_config(path)
    mode = mode or config.mode
    if (config.use_visual or mode != "predcls") and images is None:
        raise ValueError(f"this model (mode={mode}, use_visual={config.use_visual}) reads images: pass --images DIR")
    split_data = load_split(dataset, folder, split, images)
    if list(split_data.predicate_names) != list(config.predicate_names or split_data.predicate_names) or \
            len(split_data.object_names) != config.num_object_classes:
        raise ValueError(f"the data's vocabulary ({len(split_data.object_names)} objects, "
                         f"{len(split_data.predicate_names)} predicates) is not the model's "
                         f"({config.num_object_classes}, {config.num_predicates})")
    join_parallel_groups(tp)
    model = load_model(AutoModel, path, tp, device)
    if mode != model.config.mode:
        model.config.mode = mode
    image_dir = split_image_dir(images, split) if (config.use_visual or mode != "predcls") else None
    metrics = evaluate_relationship_model(model, RelationshipDataset(split_data.records, image_dir=image_dir),
                                          batch_size, progress, openimages=dataset == "oi")
    settings = {"dataset": dataset, "mode": mode, "split": split, "batch_size": batch_size, "tp": tp,
                "images_without_relations": split_data.empty_images}
    return {"task": "relationship-detection", "model": path, "data": str(folder), "split": split,
            "settings": settings, "metrics": metrics}


def run_from_args(args) -> dict:
    """`adlr-hf evaluate --task relationship-detection`."""
    dataset = dataset_layout(args, "relationship detection", DATASETS, default="vrd")
    return evaluate_relationship_model_dir(args.model_dir, args.data, dataset=dataset, split=args.split,
                                           images=args.images, mode=args.mode, batch_size=args.batch_size,
                                           tp=args.tp)
