"""What the one training loop, `adlr-hf evaluate` and `adlr-hf publish` need to know about a task.

A `Task` is stateless (one shared instance per task): what a run needs comes back from `build(...)` as a `TaskRun`
(datasets, collators, the config of the model to build, the processor saved with the export, the evaluation metric).
A task owns its command-line options, its data, its training-time evaluation, its offline evaluations
(`adlr-hf evaluate --task NAME`), its model-card rows, pipeline tag, usage snippet and limitations, its systems probe,
its throughput unit, and its default optimizer. A new task is one file: subclass `Task` and `register_task` it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..family import Option


@dataclass(frozen=True)
class ModelIndexEntry:
    """How a result of one offline evaluation appears in the card's `model-index`. Empty `dataset_type`: the dataset
    is named after the evaluated folder and the split is the record's."""

    task_type: str
    task_name: str
    dataset_type: str
    dataset_name: str
    dataset_config: str | None
    dataset_split: str
    metrics: dict[str, tuple[str, str]]  # result key -> (model-index metric type, display name)


@dataclass(frozen=True)
class Evaluation:
    """`adlr-hf evaluate MODEL --task NAME --data PATH`: `target` ("module:function") is called with the parsed
    arguments and returns {"task", "model", "data", "settings", "metrics", ...}."""

    name: str
    target: str
    data_help: str
    model_index: ModelIndexEntry
    options: tuple[Option, ...] = ()
    # model_types it also runs on besides its task's models (e.g. an evaluation that needs only a part a task's
    # model carries, and that part alone is a model of its own)
    also_fits: tuple[str, ...] = ()

    def fits(self, task, config) -> bool:
        return task.fits(config) or getattr(config, "model_type", None) in self.also_fits

    def run(self, args) -> dict:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)(args)


class EvalMetric:
    """Training-time evaluation: `reset()` before a pass, `add_batch(outputs, batch)` per batch, `compute()` at the
    end (collective over the data-parallel group; every rank returns the same dict of floats)."""

    def reset(self) -> None:
        raise NotImplementedError

    def add_batch(self, outputs, batch) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


@dataclass
class TaskRun:
    """What one run of a task needs; built by `Task.build`."""

    config: Any  # the config of the model to build (the task may wrap the one the user named)
    train: Any
    eval: Any | None
    collate: Callable[[list], Any]
    units_per_sample: int  # for throughput: tokens per text sample, 1 per image or example
    processor: Any  # saved with the exported model (tokenizer, image processor)
    data: list[str]  # what was trained on, for run_info.json / the model card
    eval_collate: Callable[[list], Any] | None = None
    metric: EvalMetric | None = None
    seq_len: int | None = None  # tokens per sample, for text tasks (the card and resume checks)
    extra_info: dict = field(default_factory=dict)  # recorded in run_info.json (e.g. skipped samples)

    def save_processor(self, folder: Path) -> None:
        """Write the processor beside an exported model (rank 0, after the model)."""
        if self.processor is not None:
            self.processor.save_pretrained(folder)


class Task:
    """Base class of every task; see the module docstring. Subclasses set the class attributes and `build`."""

    name: str = ""
    auto_class_name: str = "AutoModel"  # the transformers Auto class whose model the task trains
    pipeline_tag: str | None = None
    unit: str = "examples"  # what throughput counts: "tokens", "images", "examples", "frames"
    reports_perplexity: bool = False  # the loss is a mean next-token NLL, so exp(loss) means something
    arguments: tuple[Option, ...] = ()  # added to `adlr-hf train` / `python -m adlr_hf.train`
    evaluations: tuple[Evaluation, ...] = ()
    description: str = ""
    small_scale_below: int | None = None  # a run that saw fewer units is called small-scale (None: any run)
    full_scale: str = "the paper's model"  # what a small-scale run is not
    small_scale_note: str = ""  # appended to the small-scale limitation
    lr_schedule: str = "cosine"  # the --lr-schedule of the task's runs when none is given
    weight_decay: float = 0.01  # the --weight-decay of the task's runs when none is given

    # -- which models the task fits ---------------------------------------------------------------------------
    @property
    def auto_class(self):
        import transformers

        return getattr(transformers, self.auto_class_name)

    def model_class(self, config):
        """The class the task builds for `config`, or None when the task does not fit it."""
        mapping = self.auto_class._model_mapping
        try:
            classes = mapping[type(config)]
        except KeyError:
            return None
        if isinstance(classes, (tuple, list)):
            names = getattr(config, "architectures", None) or []
            return next((c for c in classes if c.__name__ in names), classes[0])
        return classes

    def fits(self, config) -> bool:
        return self.model_class(config) is not None

    # -- a run ------------------------------------------------------------------------------------------------
    def build(self, args, config, init_from: Path | None, run_dir: Path, is_main: bool) -> TaskRun:
        raise NotImplementedError

    def build_model(self, run: TaskRun, init_from: Path | None):
        """The model to train: loaded from `init_from` (whole; the loop shards it) or initialised from the seed."""
        if init_from is not None:
            return self.auto_class.from_pretrained(init_from, config=run.config, tp_size=1)
        return self.auto_class.from_config(run.config)

    def build_optimizer(self, model, args) -> torch.optim.Optimizer:
        """AdamW (betas 0.9/0.95, Megatron's) with weight decay on matrices only.

        torch's fused kernel (CPU, CUDA, XPU, MPS, HPU): one pass per tensor instead of a dozen elementwise ops,
        0.06 vs 0.53 s per step for GPT-2 small's 124M parameters on one CPU core.
        """
        groups = [{"params": [p for p in model.parameters() if p.ndim >= 2], "weight_decay": args.weight_decay},
                  {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), fused=True)

    def check_args(self, args, config) -> None:
        """Checks of the task's own options that need no data (run before any folder, rank or cache exists)."""

    # -- the model card -----------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, Any]]:
        """Task-specific rows of the card's Training table (beside engine, parallelism, batch, steps, ...)."""
        rows = [(self.unit, _fmt_int(training.get(self.unit)))]
        if training.get("eval_loss") is not None:
            rows.append(("held-out loss", training["eval_loss"]))
        return rows

    def limitations(self, training: dict | None) -> list[str]:
        seen = (training or {}).get(self.unit)
        if seen is None or (self.small_scale_below is not None and seen >= self.small_scale_below):
            return []
        return [f"It saw only {_fmt_int(seen)} training {self.unit}: it is a small-scale reproduction or a demo, "
                f"not {self.full_scale}{self.small_scale_note}."]

    def usage_snippet(self, model_id: str) -> str:
        return (f"```python\nfrom transformers import {self.auto_class_name}\n\n"
                f"model = {self.auto_class_name}.from_pretrained({model_id!r}, trust_remote_code=True)\n"
                "print(type(model).__name__, sum(p.numel() for p in model.parameters()))\n```")

    def systems(self, model, processor, training: dict | None, measure_inference: bool, runs: int) -> dict:
        """Systems numbers the task can measure on `model` (FLOPs, throughput); recorded in the card."""
        return {}

    def systems_rows(self, systems: dict) -> list[str]:
        return []


def pipeline_snippet(tag: str, model_id: str, name: str, call: str, options: str = "") -> str:
    """A card snippet that runs the model through `pipeline(tag)` and prints `call`."""
    return (f"```python\nfrom transformers import pipeline\n\n{name} = pipeline(\"{tag}\", model={model_id!r}"
            f"{options}, trust_remote_code=True)\nprint({call})\n```")


def _fmt_int(x) -> str:
    return "n/a" if x is None else f"{int(x):,}"


# One `--dataset` for every task that reads several layouts of --data (options with one flag must be one option);
# each task checks the value against its own layouts with `dataset_layout`.
DATASET = Option("--dataset", dict(default=None, metavar="LAYOUT",
                                   help="the layout of --data, for tasks that read several (semantic-segmentation: "
                                        "cityscapes, camvid, kitti, folder; relationship-detection: vrd (default), "
                                        "vg, oi)"))


def dataset_layout(args, task: str, layouts: tuple[str, ...], default: str | None = None) -> str:
    """The `--dataset` of `args` for `task`, or its `default`; one error naming the layouts `task` reads."""
    value = getattr(args, "dataset", None) or default
    if value is None:
        raise ValueError(f"{task} needs --dataset {{{','.join(layouts)}}}: the layout of --data")
    if value not in layouts:
        raise ValueError(f"--dataset {value!r} is not a layout {task} reads; use one of {', '.join(layouts)}")
    return value
