"""Training tasks, one file each (`Task` in base.py). `register_task` adds one; a family's own tasks are registered
with the family (`FamilySpec.tasks`)."""

from __future__ import annotations

from ..family import already_registered
from .base import EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun
from .bert_pretraining import BertPretrainingTask, MaskedLMTask
from .causal_lm import CausalLMTask
from .char_lm import CharLMTask
from .image_classification import ImageClassificationTask
from .next_frame import NextFrameTask
from .semantic_segmentation import SemanticSegmentationTask
from .video_interpolation import VideoInterpolationTask

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register `task` under `task.name`; registering the same object again is a no-op."""
    if not task.name:
        raise ValueError(f"{type(task).__name__} has no name; set the class attribute `name`")
    if already_registered(_TASKS, task.name, task, "task"):
        return task
    for evaluation in task.evaluations:
        owner = find_evaluation(evaluation.name, missing_ok=True)
        if owner is not None:
            raise ValueError(f"evaluation {evaluation.name!r} of task {task.name!r} is already offered by task "
                             f"{owner[0].name!r}; rename it")
    _TASKS[task.name] = task
    return task


def all_tasks() -> list[Task]:
    return list(_TASKS.values())


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def tasks_for(config) -> list[Task]:
    return [task for task in _TASKS.values() if task.fits(config)]


def task_for_training(config, requested: str | None) -> Task:
    """The task a run trains: `requested`, else the family's default; one that does not fit the model is an error
    listing the tasks that do."""
    from ..registry import family_for

    if requested is None:
        spec = family_for(config)
        if spec is None:
            raise ValueError(f"no default training task for model_type {config.model_type!r}; pass --task "
                             f"({', '.join(sorted(_TASKS))})")
        requested = spec.default_task
    task = get_task(requested)
    if not task.fits(config):
        fitting = ", ".join(t.name for t in tasks_for(config)) or "none"
        raise ValueError(f"task {task.name!r} does not fit a {config.model_type!r} model (it needs a model for "
                         f"{task.auto_class_name}); tasks that fit: {fitting}")
    return task


def task_for_model(config, trained_with: str | None = None) -> Task | None:
    """The task a saved model belongs to: the one it was trained with, else the one whose Auto class holds the class
    named in `config.architectures` (the family's default task first), else None."""
    from ..registry import family_for

    if trained_with in _TASKS and _TASKS[trained_with].fits(config):
        return _TASKS[trained_with]
    names = set(getattr(config, "architectures", None) or [])
    spec = family_for(config)
    ordered = sorted(_TASKS.values(), key=lambda t: spec is None or t.name != spec.default_task)
    for task in ordered:
        model_class = task.model_class(config)
        if model_class is not None and (not names or model_class.__name__ in names):
            return task
    return None


def find_evaluation(name: str, missing_ok: bool = False):
    """(task, evaluation) offering `adlr-hf evaluate --task name`."""
    for task in _TASKS.values():
        for evaluation in task.evaluations:
            if evaluation.name == name:
                return task, evaluation
    if missing_ok:
        return None
    raise ValueError(f"unknown task {name!r} for evaluation; choose one of {', '.join(all_evaluations())}")


def evaluations_for(config) -> list[str]:
    """The names of the evaluations that run on a model with this config."""
    return [e.name for task in _TASKS.values() for e in task.evaluations if e.fits(task, config)]


def all_evaluations() -> list[str]:
    return [evaluation.name for task in _TASKS.values() for evaluation in task.evaluations]


for _task in (CausalLMTask(), BertPretrainingTask(), MaskedLMTask(), CharLMTask(), ImageClassificationTask(),
              NextFrameTask(), VideoInterpolationTask(), SemanticSegmentationTask()):
    register_task(_task)

__all__ = [
    "BertPretrainingTask", "CausalLMTask", "CharLMTask", "EvalMetric", "Evaluation", "ImageClassificationTask",
    "MaskedLMTask", "ModelIndexEntry", "NextFrameTask", "SemanticSegmentationTask",
    "Task", "TaskRun",
    "all_evaluations", "all_tasks", "evaluations_for", "find_evaluation", "get_task", "register_task", "task_for_model",
    "task_for_training", "tasks_for",
]
