"""What a model family declares about itself, in one object: its `FamilySpec`.

A family is one folder under `adlr_hf/models/<name>/` whose `__init__.py` defines `SPEC = FamilySpec(...)`, plus one
line in `adlr_hf/models/__init__.py` (`FAMILIES`). Everything the rest of the package knows about a family (Auto-class
registration, `adlr-hf list`, `get_config`, `adlr-hf convert`, the model card's facts, the default training task) is
read from its spec; no module outside the family's folder names it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


def already_registered(table: dict, name: str, item, what: str) -> bool:
    """True when `item` is registered under `name` already (registering it again is a no-op); an error when another
    item holds the name."""
    known = table.get(name)
    if known is not None and known is not item:
        raise ValueError(f"a {what} named {name!r} is already registered; give the new {what} another name")
    return known is item


@dataclass(frozen=True)
class Variant:
    """A named configuration (`adlr-hf list`, `--model NAME`, `get_config(NAME)`)."""

    name: str
    config: dict = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Option:
    """A command-line option (`--flag`) that a converter, a task or an evaluation adds to a subcommand.

    Options with the same flag from several owners must be the same option: they are added once.
    """

    flag: str
    kwargs: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Converter:
    """`adlr-hf convert KIND SRC OUT`: `target` is "module:function", imported only when KIND runs; the function is
    called as `function(src, out, overwrite=..., **options)` with the options the user gave."""

    kind: str
    target: str
    help: str = ""
    options: tuple[Option, ...] = ()

    def load(self) -> Callable[..., Any]:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class Paper:
    """The paper a family implements and the reference code it follows."""

    title: str
    arxiv: tuple[str, ...]
    reference_repo: str


@dataclass(frozen=True)
class CardFacts:
    """What the model card says about the family (title, paper, intended use, licenses, limitations)."""

    title: str
    paper: Paper
    description: str
    intended_use: str = ""
    license_notes: str = ""
    tags: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaperScale:
    """The layout a paper trained the family's largest models at: the model card's "scaling" section plans the
    published configuration at it with `adlr-hf plan` (computed, never measured).

    `precision` is "bf16", "fp16" or "fp32" and `zero_stage` the ZeRO stage, as in configs/deepspeed/; `gpu_memory_gib`
    is the memory of one of the paper's GPUs (the card says whether the planned peak fits); `source` names where in
    the paper the layout comes from."""

    tp: int
    dp: int
    micro_batch_size: int
    seq_len: int
    grad_accum: int = 1
    zero_stage: int = 0
    precision: str = "bf16"
    activation_checkpointing: bool = False
    gpus_per_node: int = 8
    gpu_memory_gib: float | None = None
    source: str = ""

    def deepspeed_config(self) -> dict:
        config = {"zero_optimization": {"stage": self.zero_stage}}
        if self.precision in ("bf16", "fp16"):
            config[self.precision] = {"enabled": True}
        return config

    @property
    def deepspeed_config_file(self) -> str:
        """The shipped file with the same settings (configs/deepspeed/zeroN[_bf16].json)."""
        return f"configs/deepspeed/zero{self.zero_stage}{'' if self.precision == 'fp32' else '_bf16'}.json"


@dataclass(frozen=True)
class FamilySpec:
    """One family: its config class, its models by Auto class, its variants, converters, default training task,
    model-card facts, its processor and any extra registration (processors, tokenizers, pipelines).

    `models` maps a transformers Auto class *name* (e.g. "AutoModelForCausalLM") to the model class, or to a tuple of
    classes when one config serves several architectures (chosen by the config's `architectures`).
    `processor(config)` gives the family's own processor for a config (an image processor, a byte tokenizer) where
    the family has one that needs no training; tasks save it beside the model. `tasks` are tasks only this family
    trains (their file lives in the family's folder); they are registered with the family.
    `unsupported` maps a conformance check of `tests/test_all_models.py` that the family cannot pass to the reason;
    the sweep then checks that the family refuses it with a clear error. `paper_scale` (optional) is the paper's
    training layout, which the model card plans the published model at.
    """

    name: str
    config_class: type
    models: dict[str, Any]
    default_task: str
    card: CardFacts
    variants: tuple[Variant, ...] = ()
    converters: tuple[Converter, ...] = ()
    register: Callable[[], None] | None = None
    processor: Callable[[Any], Any] | None = None
    tasks: tuple = ()
    unsupported: dict[str, str] = field(default_factory=dict)
    paper_scale: PaperScale | None = None

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def slug(self) -> str:
        """The family's name as a Hub tag."""
        return self.name.replace("_", "-")

    def model_classes(self) -> list[type]:
        out = []
        for classes in self.models.values():
            for cls in classes if isinstance(classes, tuple) else (classes,):
                if cls not in out:
                    out.append(cls)
        return out
