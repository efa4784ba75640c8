"""`image-classification`: supervised classification of an image folder (<split>/<class>/<image>), evaluated with
top-1 / top-5 accuracy as NVIDIA/partialconv's `main.py` validates (arXiv 1811.11718). The image processor is the
model family's own."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from ..family import Option
from .base import EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int, pipeline_snippet
from .text_data import split_off_eval

TOP_K = (1, 5)
EVAL_SPLIT = Option("--eval-split", dict(default=None, metavar="SPLIT",
                                         help="the split of --data to evaluate on during training (default, when "
                                              "--eval-fraction > 0: the task's held-out split; image folders: "
                                              "'validation', with none a --eval-fraction share of a single-split "
                                              "folder; relationship data: the first of val, validation, test "
                                              "that exists; else no evaluation)"))


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
    arguments = (EVAL_SPLIT,)
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
        from ..data.bad_samples import BadSamples, readable_images
        from ..data.images import load_image_folder

        splits = load_image_folder(args.data[0])
        if args.eval_split is not None and args.eval_split not in splits:
            raise ValueError(f"--eval-split {args.eval_split!r} is not a split of {args.data[0]}; its splits are "
                             f"{sorted(splits)}")
        if args.on_bad_sample == "error":  # every image decodes, or the first that does not is named now
            for split in splits.values():
                readable_images(split, BadSamples("error"))

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.images import (
            eval_transform,
            image_collate,
            label_names,
            load_image_folder,
            train_transform,
            with_image_transform,
        )
        from ..data.bad_samples import BadSamples, readable_images
        from ..parallel.state import get_parallel_state, rank0_first
        from ..registry import family_for

        splits = rank0_first(lambda: load_image_folder(args.data[0]), is_main)
        names = label_names(splits)
        if init_from is None or config.num_labels != len(names):
            config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        eval_split = args.eval_split
        if "train" in splits:
            train = splits["train"]
            # A test split is evaluated only when named: a run that chose anything by it has no held-out test.
            eval_split = eval_split or ("validation" if "validation" in splits else None)
            held_out = splits[eval_split] if eval_split and args.eval_fraction > 0 else None
        else:
            train, held_out = split_off_eval(next(iter(splits.values())), args.eval_fraction)
            eval_split = "held-out share of the training images" if held_out is not None else None
        bad = BadSamples(args.on_bad_sample)
        if bad.mode == "skip":  # in "error" mode check_args has decoded every image already
            train = readable_images(train, bad)
            held_out = readable_images(held_out, bad) if held_out is not None else None
        size, resize = config.image_size, config.resize_size
        train = with_image_transform(train, train_transform(size))
        if held_out is not None:
            held_out = with_image_transform(held_out, eval_transform(size, resize))
        state = get_parallel_state()
        metric = TopKMetric(state.dp_group if state else None) if held_out is not None else None
        processor = family_for(config).processor(config)
        return TaskRun(config, train, held_out, image_collate, 1, processor, list(args.data), metric=metric,
                       extra_info={"eval_split": eval_split if held_out is not None else None, **bad.summary()})

    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        rows = [("images", _fmt_int(training.get("images")))]
        if training.get("eval_loss") is not None:
            accuracy = training.get("eval_accuracy")
            split = training.get("eval_split")
            what = "held-out" if split in (None, "validation") or split.startswith("held-out") else \
                f"'{split}' split (evaluated during training, so not held out)"
            rows.append((f"{what} loss / top-1 accuracy",
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
