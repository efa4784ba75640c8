"""Top-1 / top-5 accuracy of a saved image classifier on an image folder, as NVIDIA/partialconv's `main.py` validates
(arXiv 1811.11718: ImageNet 1-crop top-1/top-5; the reference's `validate()` with `accuracy(output, target,
topk=(1, 5))`).

    from adlr_hf.evaluation import evaluate_image_model_dir
    evaluate_image_model_dir("runs/pd/model", "cifar10-jpeg-subset", split="test")
    # {"task": "image-classification", "model", "data", "split", "settings", "metrics": {"top1", "top5", "num_examples"}}

The command line is `adlr-hf evaluate MODEL_DIR --task image-classification --data FOLDER [--split test]`.

Preprocessing is the image processor saved beside the model (the reference's evaluation transform: resize the
shorter side, center crop, normalise), i.e. exactly what `pipeline("image-classification")` feeds the model. The
folder's class names are matched to the model's `id2label` by name, so a folder whose classes are a subset (or in
another order) is scored correctly. Scores go to the `topk_accuracy` metric (`adlr_hf/metrics/topk_accuracy`).

Parallelism: under a launcher the model may be tensor-parallel (`tp`, sharded on load; every TP rank runs the same
batches) and data-parallel (images dealt round-robin over the DP ranks, predictions gathered); every rank returns
the same metrics.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..checks import check_int
from ..parallel.state import get_parallel_state

__all__ = ["IMAGE_TASK", "TOP_K", "evaluate_image_classification", "evaluate_image_model_dir"]

IMAGE_TASK = "image-classification"
TOP_K = (1, 5)


def _label_map(folder_names: list[str], config) -> list[int]:
    """Model class id for each of the folder's class ids (matched by name)."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    by_name = {name: i for i, name in id2label.items()}
    if all(name in by_name for name in folder_names):
        return [by_name[name] for name in folder_names]
    generic = all(name == f"LABEL_{i}" for i, name in id2label.items())
    if generic and len(id2label) == len(folder_names):
        return list(range(len(folder_names)))  # an unnamed head: the folder's sorted order is the class order
    missing = [name for name in folder_names if name not in by_name][:5]
    raise ValueError(f"the data's classes {missing} are not among the model's labels ({sorted(by_name)[:10]}...); "
                     "evaluate on a folder whose class folders are named like the model's id2label")


@torch.no_grad()
def evaluate_image_classification(model, processor, dataset, label_map: list[int] | None = None, batch_size: int = 64,
                                  k=TOP_K, progress: bool = True) -> dict:
    """Top-k accuracy of `model` on `dataset` (a `datasets.Dataset` with PIL "image" and int "label" columns),
    preprocessed by `processor`. Returns {"top1", "top5", "num_examples"} (fractions)."""
    from ..metrics.topk_accuracy.topk_accuracy import TopKAccuracy

    check_int("batch_size", batch_size, 1)
    state = get_parallel_state()
    dp_rank, dp_size = (state.dp_rank, state.dp_size) if state is not None else (0, 1)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    num_classes = int(model.config.num_labels)
    max_k = max(k)
    mine = list(range(dp_rank, len(dataset), dp_size))
    ranked, labels = [], []
    show = progress and (state is None or state.rank == 0)
    try:
        for start in tqdm(range(0, len(mine), batch_size), desc="evaluate", unit="batch", disable=not show):
            rows = dataset[mine[start: start + batch_size]]
            images = [img if img.mode == "RGB" else img.convert("RGB") for img in rows["image"]]
            pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device)
            logits = model(pixel_values=pixels).logits.float()
            top = logits.topk(min(max_k, num_classes), dim=-1).indices
            if top.shape[1] < max_k:  # fewer classes than k: the full ranking always holds the label
                top = torch.cat([top, top.new_full((top.shape[0], max_k - top.shape[1]), -1)], dim=1)
            ranked += top.cpu().tolist()
            labels += [label_map[y] if label_map is not None else int(y) for y in rows["label"]]
    finally:
        model.train(was_training)
    if state is not None and dp_size > 1:
        parts = [None] * dp_size
        dist.all_gather_object(parts, (ranked, labels), group=state.dp_group)
        ranked = [r for part in parts for r in part[0]]
        labels = [y for part in parts for y in part[1]]
    metric = TopKAccuracy(config_name="indices", keep_in_memory=True)
    return metric.compute(predictions=ranked, references=labels, k=tuple(k))


def evaluate_image_model_dir(model_dir, data, split: str = "test", batch_size: int = 64, tp: int = 1,
                             device: str | None = None, progress: bool = True) -> dict:
    """Load a saved image classifier (+ its image processor) and score it on `data`'s `split`; what
    `adlr-hf evaluate --task image-classification` runs. Inputs are checked before the model is loaded."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from ..data.images import label_names, load_image_folder
    from .loading import join_parallel_groups, load_model, read_config

    path = os.path.expanduser(os.fspath(model_dir))
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"model folder {path!r} has no config.json; pass a saved model folder (a run's "
                                "model/ or a publish)")
    check_int("batch_size", batch_size, 1)
    check_int("tp", tp, 1)
    if not os.path.isfile(os.path.join(path, "preprocessor_config.json")):
        raise FileNotFoundError(f"{path} has no preprocessor_config.json; save the image processor beside the model "
                                "(adlr_hf's training export does)")
    data = os.path.expanduser(os.fspath(data))
    if not os.path.exists(data):
        raise FileNotFoundError(f"image folder {data!r} does not exist; pass a folder laid out as "
                                "<split>/<class>/<image>")
    config = read_config(path)
    dataset = load_image_folder(data, split)  # names the available splits when `split` is missing
    label_map = _label_map(label_names(dataset), config)
    join_parallel_groups(tp)
    processor = AutoImageProcessor.from_pretrained(path)
    model = load_model(AutoModelForImageClassification, path, tp, device)
    metrics = evaluate_image_classification(model, processor, dataset, label_map, batch_size, TOP_K, progress)
    settings = {"split": split, "batch_size": batch_size, "tp": tp,
                "preprocessing": type(processor).__name__}
    return {"task": IMAGE_TASK, "model": path, "data": data, "split": split, "settings": settings,
            "metrics": metrics}


def run_from_args(args) -> dict:
    """`adlr-hf evaluate --task image-classification`."""
    return evaluate_image_model_dir(args.model_dir, args.data, split=args.split, batch_size=args.batch_size,
                                    tp=args.tp)
