"""`image-classification`: supervised classification of an image folder (<split>/<class>/<image>), evaluated with
top-1 / top-5 accuracy as NVIDIA/partialconv's `main.py` validates (arXiv 1811.11718). The image processor is the
model family's own."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from .base import EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int, pipeline_snippet
from .text_data import split_off_eval

TOP_K = (1, 5)


class TopKMetric(EvalMetric):
    """Top-1/top-5 accuracy of a training-time evaluation pass through the `topk_accuracy` metric module, over
    every data-parallel rank."""

    def __init__(self, dp_group=None):
        self.dp_group = dp_group
        self.reset()

    def reset(self) -> None:
        self.ranked, self.labels = [], []

    def add_batch(self, outputs, batch) -> None:
        logits = outputs.logits.detach().float()
        k = min(max(TOP_K), logits.shape[-1])
        top = logits.topk(k, dim=-1).indices
        if k < max(TOP_K):  # fewer classes than k: the full ranking always holds the label
            top = torch.cat([top, top.new_full((top.shape[0], max(TOP_K) - k), -1)], dim=1)
        self.ranked += top.cpu().tolist()
        self.labels += batch["labels"].cpu().tolist()

    def compute(self) -> dict[str, float]:
        from ..metrics.topk_accuracy.topk_accuracy import TopKAccuracy

        ranked, labels = self.ranked, self.labels
        if self.dp_group is not None and dist.is_initialized() and dist.get_world_size(self.dp_group) > 1:
            parts = [None] * dist.get_world_size(self.dp_group)
            dist.all_gather_object(parts, (ranked, labels), group=self.dp_group)
            ranked = [r for part in parts for r in part[0]]
            labels = [y for part in parts for y in part[1]]
        if not labels:
            return {}
        scores = TopKAccuracy(config_name="indices", keep_in_memory=True).compute(
            predictions=ranked, references=labels, k=TOP_K)
        return {"accuracy": scores["top1"], "top5": scores["top5"]}


class ImageClassificationTask(Task):
    name = "image-classification"
    description = "supervised image classification"
    auto_class_name = "AutoModelForImageClassification"
    pipeline_tag = "image-classification"
    unit = "images"
    full_scale = "the paper's ImageNet model"
    evaluations = (
        Evaluation("image-classification", "adlr_hf.evaluation.image_eval:run_from_args",
                   "an image folder <split>/<class>/<image>",
                   ModelIndexEntry("image-classification", "Image classification", "", "", None, "test",
                                   {"top1": ("accuracy", "Top-1 accuracy"),
                                    "top5": ("top_5_accuracy", "Top-5 accuracy")})),
    )

    def fits(self, config) -> bool:
        from ..registry import family_for

        spec = family_for(config)
        return super().fits(config) and spec is not None and spec.processor is not None

    def check_args(self, args, config) -> None:
        if not args.data or len(args.data) != 1:
            raise ValueError("image classification needs --data <one image folder> laid out as "
                             "<split>/<class>/<image> or <class>/<image>")
        if not Path(args.data[0]).is_dir():
            raise FileNotFoundError(f"--data {args.data[0]!r} is not a folder; pass an image folder laid out as "
                                    "<split>/<class>/<image>")

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.images import (
            eval_transform,
            image_collate,
            label_names,
            load_image_folder,
            train_transform,
            with_image_transform,
        )
        from ..parallel.state import get_parallel_state, rank0_first
        from ..registry import family_for

        self.check_args(args, config)
        splits = rank0_first(lambda: load_image_folder(args.data[0]), is_main)
        names = label_names(splits)
        if init_from is None or config.num_labels != len(names):
            config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        if "train" in splits:
            train = splits["train"]
            held_out = splits.get("validation", splits.get("test"))
        else:
            train, held_out = split_off_eval(next(iter(splits.values())), args.eval_fraction)
        size, resize = config.image_size, config.resize_size
        train = with_image_transform(train, train_transform(size))
        if held_out is not None:
            held_out = with_image_transform(held_out, eval_transform(size, resize))
        state = get_parallel_state()
        metric = TopKMetric(state.dp_group if state else None) if held_out is not None else None
        processor = family_for(config).processor(config)
        return TaskRun(config, train, held_out, image_collate, 1, processor, list(args.data), metric=metric)

    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        rows = [("images", _fmt_int(training.get("images")))]
        if training.get("eval_loss") is not None:
            accuracy = training.get("eval_accuracy")
            rows.append(("held-out loss / top-1 accuracy",
                         f"{training['eval_loss']:.4g} / {'n/a' if accuracy is None else f'{accuracy:.4g}'}"))
        return rows

    def usage_snippet(self, model_id: str) -> str:
        return pipeline_snippet("image-classification", model_id, "classify", 'classify("cat.jpg")')

    def systems(self, model, processor, training, measure_inference: bool, runs: int) -> dict:
        from ..hub.systems import image_systems

        return {"image": image_systems(model, training, measure_inference, runs)}

    def systems_rows(self, systems: dict) -> list[str]:
        from ..hub.systems import image_card_rows

        return image_card_rows(systems["image"]) if systems.get("image") else []
