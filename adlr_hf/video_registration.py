"""Registering a video family's processor and pipeline with transformers, without importing the pipeline machinery
until the family registers (keeps `import adlr_hf` light)."""

from __future__ import annotations


def register_video_family(config_class, processor_class, task: str, pipeline_class: str) -> None:
    """`AutoVideoProcessor` loads `processor_class` for `config_class` (also from a saved folder's `auto_map`), and
    `pipeline(task)` is the class named by `pipeline_class` ("module:Class", imported here; registered once)."""
    import importlib

    from transformers import AutoModel, AutoVideoProcessor
    from transformers.pipelines import PIPELINE_REGISTRY

    module, _, name = pipeline_class.partition(":")
    pipeline_class = getattr(importlib.import_module(module), name)

    AutoVideoProcessor.register(config_class, processor_class, exist_ok=True)
    processor_class.register_for_auto_class("AutoVideoProcessor")
    if task not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=pipeline_class, pt_model=AutoModel, type="video")
