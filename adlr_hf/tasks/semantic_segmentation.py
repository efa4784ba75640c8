"""`semantic-segmentation`: per-pixel classification trained on (image, label map) pairs with the recipe of
"Improving Semantic Segmentation via Video Propagation and Label Relaxation" (arXiv 1812.01593; reference
NVIDIA/semantic-segmentation, branch `sdcnet`): random scale 0.5-2.0, crop, flip, colour jitter and blur; optional
boundary label relaxation (`--relax-boundary`, with `--strict-boundary-classes` and `--rlx-off-epoch`),
class-uniform sampling (`--class-uniform PCT`) and the video-propagated pairs (`--max-skip K`); SGD (momentum 0.9)
with the poly schedule; mean IoU on the validation split during training and offline (`adlr-hf evaluate --task
semantic-segmentation`, single- or multi-scale, with flip).

A model fits when its `AutoModelForSemanticSegmentation` class takes `pixel_values` (N, 3, H, W) normalised with
ImageNet's mean / std and `labels` (N, H, W) class ids (`config.ignore_index` = 255 not counted) or the (N, C+1, H, W)
relaxation target, and returns `loss` and `logits` (N, C, H, W) at the input size.

Data (`--data ROOT --dataset {cityscapes,camvid,kitti,folder}`, layouts in `adlr_hf.data.segmentation.layouts`):
training on the `train` split, evaluation during training on `val` when the folder has one. `--max-skip K` adds the
propagated pairs of `--propagated DIR` (default `ROOT/propagated/`): the `images/` + `labels/` folders that
`adlr-hf propagate` writes, stems ending in `_fwd<k>` / `_bwd<k>` (or `_+k` / `_-k`), of which k <= K are used.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
import torch.distributed as dist

from ..family import Option
from .base import (DATASET, EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int, dataset_layout,
                   pipeline_snippet)
from .video_data import CROP_SIZE, parse_crop

PROPAGATED_DIR = "propagated"
LAYOUTS = ("cityscapes", "camvid", "kitti", "folder")

SEGMENTATION_OPTIONS = (
    DATASET,
    CROP_SIZE,
    Option("--scale-range", dict(default="0.5,2.0", metavar="LOW,HIGH",
                                 help="semantic segmentation: random rescale range before the crop (default 0.5,2.0)")),
    Option("--color-jitter", dict(type=float, default=0.25, help="semantic segmentation: brightness / contrast / "
                                                                 "saturation / hue jitter (default 0.25)")),
    Option("--blur", dict(action=argparse.BooleanOptionalAction, default=True,
                          help="semantic segmentation: Gaussian blur of training images (default on)")),
    Option("--relax-boundary", dict(action="store_true", help="semantic segmentation: boundary label relaxation loss "
                                                              "(a 3x3 window of classes per pixel)")),
    Option("--strict-boundary-classes", dict(default="", metavar="IDS",
                                             help="semantic segmentation: comma-separated class ids kept one-hot by "
                                                  "--relax-boundary (the reference's Cityscapes list: "
                                                  "5,6,7,11,12,17,18)")),
    Option("--rlx-off-epoch", dict(type=int, default=-1, metavar="EPOCH",
                                   help="semantic segmentation: after this epoch, window 0 and boundary pixels "
                                        "weighted x2 (the reference's --rlx_off_epoch; default -1: never)")),
    Option("--class-uniform", dict(type=float, default=0.0, metavar="PCT",
                                   help="semantic segmentation: share of each epoch's crops centred on class centroids "
                                        "(the reference uses 0.5; default 0: off)")),
    Option("--class-uniform-tile", dict(type=int, default=1024, help="semantic segmentation: tile size of the "
                                                                     "class centroids (default 1024)")),
    Option("--max-skip", dict(type=int, default=0, metavar="K",
                              help="semantic segmentation: also train on the propagated pairs ±1..K of "
                                   f"--data/{PROPAGATED_DIR}/ (default 0: none)")),
    Option("--propagated", dict(default=None, metavar="DIR",
                                help="semantic segmentation: the `adlr-hf propagate --out` folder --max-skip reads "
                                     f"(default --data/{PROPAGATED_DIR})")),
    Option("--kitti-cv", dict(type=int, default=0, choices=(0, 1, 2),
                              help="semantic segmentation, KITTI: which 90/10 split (default 0)")),
)

EVAL_OPTIONS = (
    SEGMENTATION_OPTIONS[0],
    SEGMENTATION_OPTIONS[-1],
    Option("--scales", dict(default="1.0", metavar="S1,S2,..",
                            help="semantic segmentation: input scales whose softmax outputs are averaged (default "
                                 "1.0; multi-scale e.g. 0.5,1.0,2.0)")),
    Option("--eval-flip", dict(action="store_true", help="semantic segmentation: also average the horizontally "
                                                         "flipped input's output")),
)


class SegmentationMetric(EvalMetric):
    """Training-time evaluation: the confusion matrix of argmax predictions over every data-parallel rank, scored
    by the `mean_iou` metric module."""

    def __init__(self, num_labels: int, ignore_index: int = 255, dp_group=None):
        self.num_labels, self.ignore_index, self.dp_group = num_labels, ignore_index, dp_group
        self.reset()

    def reset(self) -> None:
        self.matrix = torch.zeros(self.num_labels, self.num_labels, dtype=torch.int64)

    def add_batch(self, outputs, batch) -> None:
        from ..metrics.mean_iou.mean_iou import confusion_matrix

        labels = batch["labels"]
        if labels.dim() != 3:
            raise ValueError("segmentation evaluation needs (N, H, W) class-id labels, not a relaxation target")
        predictions = outputs.logits.detach().argmax(1)
        self.matrix += confusion_matrix(predictions, labels.to(predictions.device), self.num_labels,
                                        self.ignore_index).cpu()

    def compute(self) -> dict[str, float]:
        from ..metrics.mean_iou.mean_iou import scores_from_confusion

        matrix = self.matrix.clone()
        if self.dp_group is not None and dist.is_initialized() and dist.get_world_size(self.dp_group) > 1:
            backend_device = "cuda" if dist.get_backend(self.dp_group) == "nccl" else "cpu"
            matrix = matrix.to(backend_device)
            dist.all_reduce(matrix, group=self.dp_group)
        if matrix.sum() == 0:
            return {}
        scores = scores_from_confusion(matrix.cpu())
        return {"mean_iou": scores["mean_iou"], "pixel_accuracy": scores["overall_accuracy"],
                "mean_accuracy": scores["mean_accuracy"]}


def _scale_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in str(text).split(","))
    except ValueError:
        low = high = -1.0
    if not 0 < low <= high:
        raise ValueError(f"--scale-range {text!r} must be LOW,HIGH with 0 < LOW <= HIGH (e.g. 0.5,2.0)")
    return low, high


def _strict_classes(text: str, num_classes: int | None = None) -> tuple[int, ...]:
    try:
        ids = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--strict-boundary-classes {text!r} must be comma-separated class ids, e.g. "
                         "5,6,7,11,12,17,18") from None
    if num_classes is not None and any(not 0 <= i < num_classes for i in ids):
        raise ValueError(f"--strict-boundary-classes {text!r} names ids outside the {num_classes} classes")
    return ids


def _scales(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        scales = ()
    if not scales or min(scales) <= 0:
        raise ValueError(f"--scales {text!r} must be positive numbers separated by commas, e.g. 0.5,1.0,2.0")
    return scales


def propagation_offset(stem: str) -> int | None:
    """The frame offset a propagated file's stem ends in: `_fwd<k>` -> +k, `_bwd<k>` -> -k (what `adlr-hf
    propagate` writes), or `_+k` / `_-k`; None otherwise."""
    match = re.search(r"_(fwd|bwd)(\d+)$", stem)
    if match:
        return int(match.group(2)) * (1 if match.group(1) == "fwd" else -1)
    match = re.search(r"_([+-]\d+)$", stem)
    return int(match.group(1)) if match else None


def propagated_pairs(folder: Path, base, max_skip: int):
    """`base` (the dataset's own training pairs) joined with the propagated pairs in `folder` (images/ + labels/
    holding class ids, 255 = ignore) whose offset k (`propagation_offset`) has 1 <= |k| <= max_skip."""
    from ..data.segmentation.layouts import SegmentationPairs, identity_lookup

    folder = Path(folder)
    if not (folder / "images").is_dir() or not (folder / "labels").is_dir():
        raise FileNotFoundError(f"--max-skip {max_skip} reads propagated pairs from {folder}/images and "
                                f"{folder}/labels, which do not exist; write them with `adlr-hf propagate ... --out "
                                f"{folder}`, pass --propagated DIR, or drop --max-skip")
    images, labels = [], []
    for image in sorted(p for p in (folder / "images").iterdir() if not p.name.startswith(".")):
        offset = propagation_offset(image.stem)
        if offset is not None and 1 <= abs(offset) <= max_skip:
            label = folder / "labels" / f"{image.stem}.png"
            if not label.is_file():
                raise FileNotFoundError(f"propagated image {image} has no label map {label}")
            images.append(str(image))
            labels.append(str(label))
    if not images:
        raise ValueError(f"{folder}/images holds no pairs within ±{max_skip} steps (stems ending in _fwd<k> / "
                         "_bwd<k>, as `adlr-hf propagate` writes)")
    extra = SegmentationPairs("propagated", "train", tuple(images), tuple(labels), base.class_names,
                              identity_lookup(base.num_classes))
    return base.joined(extra)


def _propagated_folder(args) -> Path:
    return Path(args.propagated) if args.propagated else Path(args.data[0]) / PROPAGATED_DIR


class SemanticSegmentationTask(Task):
    name = "semantic-segmentation"
    description = "semantic segmentation of street scenes (per-pixel classes)"
    auto_class_name = "AutoModelForSemanticSegmentation"
    pipeline_tag = "image-segmentation"
    unit = "images"
    lr_schedule = "poly"
    weight_decay = 1e-4  # the reference's
    small_scale_below = 100_000
    full_scale = "the paper's model (Cityscapes, 175 epochs of 896x896 crops)"
    arguments = SEGMENTATION_OPTIONS
    evaluations = (
        Evaluation("semantic-segmentation", "adlr_hf.tasks.semantic_segmentation:evaluate_from_args",
                   "a segmentation dataset root in the --dataset layout (scores --split)",
                   ModelIndexEntry("image-segmentation", "Semantic segmentation", "", "", None, "test",
                                   {"mean_iou": ("mean_iou", "Mean IoU"),
                                    "overall_accuracy": ("pixel_accuracy", "Pixel accuracy"),
                                    "mean_accuracy": ("mean_accuracy", "Mean accuracy")}),
                   EVAL_OPTIONS),
    )

    def check_args(self, args, config) -> None:
        """The options, the layout of --data and every training and validation label map (values, size), before any
        output."""
        from ..data.segmentation.layouts import find_pairs

        self._check_options(args, config)
        pairs = find_pairs(args.data[0], args.dataset, "train", args.kitti_cv)
        if args.max_skip:
            pairs = propagated_pairs(_propagated_folder(args), pairs, args.max_skip)
        if args.on_bad_sample == "error":  # every label map is valid and fits its image, or the first bad one is named
            from ..data.segmentation import check_pairs, has_split

            check_pairs(pairs)
            if has_split(args.data[0], args.dataset, "val") and args.eval_fraction > 0:
                check_pairs(find_pairs(args.data[0], args.dataset, "val", args.kitti_cv))
        elif args.on_bad_sample == "skip":
            raise ValueError("semantic segmentation cannot skip bad samples: a wrong label map is a data error; fix "
                             "the file named by --on-bad-sample error (the default)")

    def _check_options(self, args, config) -> None:
        if not args.data or len(args.data) != 1:
            raise ValueError("semantic segmentation needs --data <one dataset root> and --dataset "
                             "{cityscapes,camvid,kitti,folder}")
        args.dataset = dataset_layout(args, "semantic segmentation", LAYOUTS)
        parse_crop(args.crop_size)
        _scale_range(args.scale_range)
        _strict_classes(args.strict_boundary_classes)
        if not 0.0 <= args.class_uniform <= 1.0:
            raise ValueError(f"--class-uniform {args.class_uniform} must be in [0, 1] (the reference uses 0.5)")
        if args.class_uniform_tile < 1 or args.max_skip < 0:
            raise ValueError("--class-uniform-tile must be >= 1 and --max-skip >= 0")
        if args.propagated and not args.max_skip:
            raise ValueError("--propagated names the pairs --max-skip K reads; add --max-skip")
        if args.color_jitter < 0:
            raise ValueError(f"--color-jitter {args.color_jitter} must be >= 0")
        if (args.strict_boundary_classes or args.rlx_off_epoch >= 0) and not args.relax_boundary:
            raise ValueError("--strict-boundary-classes and --rlx-off-epoch shape the relaxation target; add "
                             "--relax-boundary")
        if getattr(config, "ignore_index", 255) != 255:
            raise ValueError(f"the model's ignore_index is {config.ignore_index}; the segmentation data marks "
                             "ignored pixels 255: use --set ignore_index=255")

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.segmentation import (
            ClassUniformPlan,
            JointTransform,
            Relaxation,
            SegmentationDataset,
            find_pairs,
            has_split,
            segmentation_collate,
        )
        from ..parallel.state import get_parallel_state
        from ..registry import family_for

        self._check_options(args, config)  # check_args ran before (validate); the label scan is not repeated
        root = Path(args.data[0])
        train_pairs = find_pairs(root, args.dataset, "train", args.kitti_cv)
        own_train = len(train_pairs)
        if args.max_skip:
            train_pairs = propagated_pairs(_propagated_folder(args), train_pairs, args.max_skip)
        names = list(train_pairs.class_names)
        if init_from is not None and config.num_labels != len(names):
            raise ValueError(f"the model in {init_from} predicts {config.num_labels} classes but --dataset "
                             f"{args.dataset} has {len(names)}; start from a model with that many classes")
        config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        crop = parse_crop(args.crop_size)
        transform = JointTransform(crop, _scale_range(args.scale_range), flip=True, color_jitter=args.color_jitter,
                                   blur=args.blur)
        relaxation = Relaxation(1, _strict_classes(args.strict_boundary_classes, len(names)), args.rlx_off_epoch) \
            if args.relax_boundary else None
        plan = None
        if args.class_uniform > 0:
            plain = SegmentationDataset(train_pairs)
            plan = ClassUniformPlan.from_labels(plain.labels(), len(names), args.class_uniform, args.seed,
                                                args.class_uniform_tile)
        train = SegmentationDataset(train_pairs, transform, relaxation, plan, seed=args.seed)
        held_out = None
        if has_split(root, args.dataset, "val") and args.eval_fraction > 0:
            held_out = SegmentationDataset(find_pairs(root, args.dataset, "val", args.kitti_cv))
        state = get_parallel_state()
        metric = SegmentationMetric(len(names), 255, state.dp_group if state else None) \
            if held_out is not None else None
        processor = family_for(config).processor(config)
        extra = {"dataset": args.dataset, "classes": names, "crop_size": list(crop) if crop else None,
                 "relax_boundary": bool(args.relax_boundary), "rlx_off_epoch": args.rlx_off_epoch,
                 "strict_boundary_classes": list(relaxation.strict_classes) if relaxation else [],
                 "class_uniform": args.class_uniform, "max_skip": args.max_skip, "train_images": own_train,
                 "propagated_images": len(train_pairs) - own_train,
                 "held_out_images": len(held_out) if held_out is not None else 0}
        return TaskRun(config, train, held_out, segmentation_collate, 1, processor, list(args.data),
                       eval_collate=segmentation_collate, metric=metric, extra_info=extra)

    def build_optimizer(self, model, args) -> torch.optim.Optimizer:
        """SGD with momentum 0.9 and L2 weight decay on every parameter, as the reference (lr 1e-3 to 1e-2 there;
        weight decay 1e-4, this task's default when --weight-decay is not given)."""
        return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=args.lr, momentum=0.9,
                               weight_decay=args.weight_decay)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        crop = training.get("crop_size")
        rows = [("images", _fmt_int(training.get("images"))), ("dataset", training.get("dataset"))]
        if training.get("classes"):  # the dataset's names, which the config's id2label carries
            rows.append(("classes", f"{len(training['classes'])}: {', '.join(training['classes'])}"))
        rows.append(("training crop", "whole images" if not crop else f"{crop[0]}×{crop[1]}"))
        loss = "boundary label relaxation" if training.get("relax_boundary") else "cross entropy"
        if training.get("relax_boundary") and training.get("rlx_off_epoch", -1) >= 0:
            loss += f" (window 0, boundaries ×2 after epoch {training['rlx_off_epoch']})"
        rows.append(("loss", loss))
        if training.get("class_uniform"):
            rows.append(("class-uniform sampling", f"{training['class_uniform']:.2f} of each epoch's crops"))
        if training.get("max_skip"):
            rows.append(("propagated pairs", f"±{training['max_skip']} steps, "
                                             f"{_fmt_int(training.get('propagated_images'))} images"))
        if training.get("eval_mean_iou") is not None:
            rows.append(("validation mean IoU / pixel accuracy",
                         f"{training['eval_mean_iou']:.4f} / {training['eval_pixel_accuracy']:.4f}"))
        return rows

    def usage_snippet(self, model_id: str) -> str:
        return pipeline_snippet("image-segmentation", model_id, "segment", 'segment("street.png")')

    def systems(self, model, processor, training, measure_inference: bool, runs: int) -> dict:
        """FLOPs per image and inference images/s at the model's `image_size` (the processor's input size)."""
        from ..hub.systems import image_systems

        return {"image": image_systems(model, training, measure_inference, runs)}

    def systems_rows(self, systems: dict) -> list[str]:
        from ..hub.systems import image_card_rows

        return image_card_rows(systems["image"]) if systems.get("image") else []


@torch.no_grad()
def predict_probabilities(model, pixel_values: torch.Tensor, scales=(1.0,), flip: bool = False) -> torch.Tensor:
    """Softmax probabilities (N, C, H, W) averaged over input `scales` (bilinear resize, outputs resized back) and,
    with `flip`, the horizontally flipped input (the reference's multi-scale / flip evaluation)."""
    import torch.nn.functional as F

    size = pixel_values.shape[-2:]
    total = None
    for scale in scales:
        x = pixel_values if scale == 1.0 else F.interpolate(pixel_values, scale_factor=scale, mode="bilinear",
                                                            align_corners=False)
        for flipped in ((False, True) if flip else (False,)):
            inp = x.flip(-1) if flipped else x
            logits = model(pixel_values=inp).logits.float()
            logits = logits.flip(-1) if flipped else logits
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
    return total / (len(scales) * (2 if flip else 1))


def evaluate_segmentation(model, dataset, scales=(1.0,), flip: bool = False, batch_size: int = 1) -> tuple:
    """(metrics, per-class IoU): mean IoU, accuracies and the image count of `model` on a `SegmentationDataset` of
    whole images, and {class name: IoU or None}. Under a launcher the images are dealt round-robin over the
    data-parallel ranks (TP ranks of a replica read the same ones) and the confusion matrices summed, so every rank
    returns the same result."""
    from ..data.segmentation import segmentation_collate
    from ..metrics.mean_iou.mean_iou import confusion_matrix, scores_from_confusion
    from ..parallel.state import get_parallel_state

    state = get_parallel_state()
    dp_rank, dp_size = (state.dp_rank, state.dp_size) if state is not None else (0, 1)
    mine = list(range(dp_rank, len(dataset), dp_size))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    num_labels = int(model.config.num_labels)
    matrix = torch.zeros(num_labels, num_labels, dtype=torch.int64)
    try:
        for start in range(0, len(mine), batch_size):
            batch = segmentation_collate([dataset[i] for i in mine[start: start + batch_size]])
            probs = predict_probabilities(model, batch["pixel_values"].to(device), scales, flip)
            matrix += confusion_matrix(probs.argmax(1).cpu(), batch["labels"], num_labels, 255)
    finally:
        model.train(was_training)
    if dp_size > 1:
        on = device if dist.get_backend(state.dp_group) == "nccl" else torch.device("cpu")
        summed = matrix.to(on)
        dist.all_reduce(summed, group=state.dp_group)
        matrix = summed.cpu()
    scores = scores_from_confusion(matrix)
    names = getattr(model.config, "id2label", {}) or {}
    per_class = {str(names.get(i, i)): (None if v != v else float(v)) for i, v in
                 enumerate(scores["per_category_iou"])}
    return {"mean_iou": scores["mean_iou"], "overall_accuracy": scores["overall_accuracy"],
            "mean_accuracy": scores["mean_accuracy"], "num_images": len(dataset)}, per_class


def evaluate_from_args(args) -> dict:
    """`adlr-hf evaluate MODEL --task semantic-segmentation --data ROOT --dataset ... [--split val] [--scales ..]
    [--eval-flip]`. Inputs are checked before the model is loaded."""
    import os

    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from ..data.segmentation import SegmentationDataset, find_pairs
    from ..evaluation.loading import join_parallel_groups, load_model, read_config

    path = os.path.expanduser(os.fspath(args.model_dir))
    if not os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(path, "model",
                                                                                                "config.json")):
        path = os.path.join(path, "model")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"model folder {path!r} has no config.json; pass a saved model folder")
    args.dataset = dataset_layout(args, "semantic segmentation", LAYOUTS)
    scales = _scales(args.scales)
    split = {"validation": "val"}.get(args.split, args.split)
    pairs = find_pairs(args.data, args.dataset, split, getattr(args, "kitti_cv", 0) or 0)
    config = read_config(path)
    if config.num_labels != pairs.num_classes:
        raise ValueError(f"the model predicts {config.num_labels} classes but --dataset {args.dataset} has "
                         f"{pairs.num_classes}; evaluate on the dataset it was trained for")
    join_parallel_groups(args.tp)
    processor = AutoImageProcessor.from_pretrained(path) if os.path.isfile(
        os.path.join(path, "preprocessor_config.json")) else None
    norm = {} if processor is None else {"mean": processor.image_mean, "std": processor.image_std}
    model = load_model(AutoModelForSemanticSegmentation, path, args.tp)
    metrics, per_class = evaluate_segmentation(model, SegmentationDataset(pairs, **norm), scales, args.eval_flip,
                                    batch_size=args.batch_size)
    settings = {"dataset": args.dataset, "split": split, "scales": list(scales), "flip": bool(args.eval_flip),
                "whole images": True}
    return {"task": "semantic-segmentation", "model": path, "data": str(args.data), "split": split,
            "settings": settings, "metrics": metrics, "per_class_iou": per_class}
