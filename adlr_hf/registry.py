"""Named variants of every family: name -> (family, config kwargs). `list_models()` feeds `adlr-hf list`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    name: str
    family: str
    config_kwargs: dict = field(default_factory=dict)
    description: str = ""


_VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> None:
    if variant.name in _VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    _VARIANTS[variant.name] = variant


def _gpt(name, layers, hidden, heads, description, **extra):
    register_variant(Variant(name, "megatron_gpt", dict(num_layers=layers, hidden_size=hidden,
                                                       num_attention_heads=heads, **extra), description))


# Megatron-LM (arXiv 1909.08053): Table 2 (355M, 2.5B, 8.3B) and the weak-scaling Table 1 sizes (1.2B ... 8.3B).
_gpt("megatron-gpt-tiny", 2, 64, 4, "for tests and demos", vocab_size=1024, max_position_embeddings=128,
     bos_token_id=0, eos_token_id=0)
_gpt("megatron-gpt-355m", 24, 1024, 16, "paper Table 2")
_gpt("megatron-gpt-1.2b", 40, 1536, 16, "paper Table 1, TP=1")
_gpt("megatron-gpt-2.5b", 54, 1920, 20, "paper Tables 1-2, TP=2")
_gpt("megatron-gpt-4.2b", 64, 2304, 24, "paper Table 1, TP=4")
_gpt("megatron-gpt-8.3b", 72, 3072, 32, "paper Tables 1-2, TP=8")


def config_class_for(family: str):
    if family == "megatron_gpt":
        from .models.megatron_gpt import MegatronGPTConfig

        return MegatronGPTConfig
    raise ValueError(f"unknown family {family!r}")


def get_variant(name: str) -> Variant:
    if name not in _VARIANTS:
        close = difflib.get_close_matches(name, list(_VARIANTS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model variant {name!r}.{hint} Run `adlr-hf list` for all variants.")
    return _VARIANTS[name]


def get_config(name: str, **overrides):
    """The config of a registered variant, with `overrides` applied on top."""
    variant = get_variant(name)
    return config_class_for(variant.family)(**{**variant.config_kwargs, **overrides})


def count_parameters(config) -> int:
    """Parameters of the variant's main model, counted on a meta-device instance (no memory used)."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    # Tied parameters are shared objects and counted once by parameters().
    return sum(p.numel() for p in model.parameters())


def list_models() -> list[dict]:
    rows = []
    for variant in _VARIANTS.values():
        config = get_config(variant.name)
        rows.append({"name": variant.name, "family": variant.family, "parameters": count_parameters(config),
                     "description": variant.description})
    return rows
