"""Apply a tensor-parallel plan written in transformers' `base_model_tp_plan` format, and move state dicts
between the full (TP-agnostic) layout and this rank's shards.

Plan keys are module-name globs where `*` stands for one name component (a layer index); values are styles:

| style | module | becomes | Megatron equivalent |
|---|---|---|---|
| `colwise` | nn.Linear | ColumnParallelLinear(gather_output=False) | Column, output stays split |
| `colwise_rep` / `colwise_gather_output` | nn.Linear | ColumnParallelLinear(gather_output=True) | Column, gathered |
| `qkv_colwise` | nn.Linear | ColumnParallelLinear(stride=3) | fused [Q; K; V] `query_key_value` |
| `rowwise` | nn.Linear | RowParallelLinear(input_is_parallel=True) | Row after a split input |
| `embedding_rowwise` | nn.Embedding | VocabParallelEmbedding | vocab-parallel embedding |
| `vocab_lm_head` | nn.Linear | VocabParallelLMHead | tied LM head + vocab-parallel CE |
| `rowwise_split_input` | nn.Linear | RowParallelLinear(input_is_parallel=False) | Row on a replicated input |
| `conv_colwise` | nn.Conv2d / PartialConv2d | ColumnParallelConv2d(gather_output=False) | Column over output channels |
| `conv_colwise_gather` | nn.Conv2d / PartialConv2d | ColumnParallelConv2d(gather_output=True) | Column, channels gathered |
| `conv_rowwise` | nn.Conv2d / PartialConv2d | RowParallelConv2d(input_is_parallel=True) | Row over input channels |
| `bn_colwise` | nn.BatchNorm2d | ChannelParallelBatchNorm2d | batch norm on the local channels |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn

from .conv import ChannelParallelBatchNorm2d, ColumnParallelConv2d, RowParallelConv2d
from .layers import ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding, VocabParallelLMHead, _ParallelModule
from .mappings import group_rank, group_size
from .sharding import merge_shards, pad_rows, padded_vocab_size, split_for_rank


@dataclass(frozen=True)
class Style:
    """How one plan style shards a module: the dense type it applies to, how to build the parallel module, and,
    per parameter, (dim, stride) or None for replicated; `vocab` marks dim-0 vocabulary padding."""

    dense_type: type
    build: Callable[[nn.Module, object, int], nn.Module]
    params: dict[str, tuple[int, int] | None]
    vocab: bool = False


STYLES: dict[str, Style] = {
    "colwise": Style(nn.Linear, lambda m, g, _: ColumnParallelLinear.from_dense(m, g, gather_output=False),
                     {"weight": (0, 1), "bias": (0, 1)}),
    "colwise_rep": Style(nn.Linear, lambda m, g, _: ColumnParallelLinear.from_dense(m, g, gather_output=True),
                         {"weight": (0, 1), "bias": (0, 1)}),
    "qkv_colwise": Style(nn.Linear, lambda m, g, _: ColumnParallelLinear.from_dense(m, g, gather_output=False, stride=3),
                         {"weight": (0, 3), "bias": (0, 3)}),
    "rowwise": Style(nn.Linear, lambda m, g, _: RowParallelLinear.from_dense(m, g, input_is_parallel=True),
                     {"weight": (1, 1), "bias": None}),
    "embedding_rowwise": Style(nn.Embedding, lambda m, g, mult: VocabParallelEmbedding.from_dense(m, g, mult),
                               {"weight": (0, 1)}, vocab=True),
    "vocab_lm_head": Style(nn.Linear, lambda m, g, mult: VocabParallelLMHead.from_dense(m, g, mult),
                           {"weight": (0, 1), "bias": (0, 1)}, vocab=True),
    "rowwise_split_input": Style(nn.Linear, lambda m, g, _: RowParallelLinear.from_dense(m, g, input_is_parallel=False),
                                 {"weight": (1, 1), "bias": None}),
    # Channel-parallel convolutions (parallel/conv.py); buffers listed here (running stats) are split like parameters.
    "conv_colwise": Style(nn.Conv2d, lambda m, g, _: ColumnParallelConv2d.from_dense(m, g, gather_output=False),
                          {"weight": (0, 1), "bias": (0, 1)}),
    "conv_colwise_gather": Style(nn.Conv2d, lambda m, g, _: ColumnParallelConv2d.from_dense(m, g, gather_output=True),
                                 {"weight": (0, 1), "bias": (0, 1)}),
    "conv_rowwise": Style(nn.Conv2d, lambda m, g, _: RowParallelConv2d.from_dense(m, g, input_is_parallel=True),
                          {"weight": (1, 1), "bias": None}),
    "bn_colwise": Style(nn.BatchNorm2d, lambda m, g, _: ChannelParallelBatchNorm2d.from_dense(m, g),
                        {"weight": (0, 1), "bias": (0, 1), "running_mean": (0, 1), "running_var": (0, 1),
                         "num_batches_tracked": None}),
}
STYLES["colwise_gather_output"] = STYLES["colwise_rep"]
STYLES["vocab"] = STYLES["embedding_rowwise"]


def _glob_to_regex(pattern: str) -> re.Pattern:
    return re.compile("^" + re.escape(pattern).replace(r"\*", r"[^.]+") + "$")


def full_tp_plan(model: nn.Module) -> dict[str, str]:
    """The model's whole plan with keys relative to `model`: the config's `base_model_tp_plan` (prefixed with the
    base model's attribute name when `model` is a head model) plus the class's own `_tp_plan` (e.g. the LM head)."""
    plan: dict[str, str] = {}
    base_plan = dict(getattr(model.config, "base_model_tp_plan", None) or {})
    prefix = getattr(model, "base_model_prefix", "")
    is_head_model = prefix and hasattr(model, prefix) and getattr(model, prefix) is not model
    for key, style in base_plan.items():
        plan[f"{prefix}.{key}" if is_head_model else key] = style
    plan.update(getattr(type(model), "_tp_plan", None) or {})
    return plan


def match_plan(names, plan: dict[str, str]) -> dict[str, str]:
    """name -> style for every name some plan glob matches (the first matching glob wins)."""
    compiled = [(_glob_to_regex(k), v) for k, v in plan.items()]
    for _, style in compiled:
        if style not in STYLES:
            raise ValueError(f"unknown tensor-parallel style {style!r}; known styles: {sorted(STYLES)}")
    matched = {}
    for name in names:
        for regex, style in compiled:
            if regex.match(name):
                matched[name] = style
                break
    return matched


def _check_divisible(name: str, module: nn.Module, style_name: str, tp_size: int) -> None:
    style = STYLES[style_name]
    if not isinstance(module, style.dense_type):
        raise ValueError(f"plan style {style_name!r} needs a {style.dense_type.__name__} at {name!r}, found "
                         f"{type(module).__name__}")
    for param, spec in style.params.items():
        tensor = getattr(module, param, None)
        if tensor is None or spec is None or style.vocab:
            continue
        dim, stride = spec
        if tensor.shape[dim] % (tp_size * stride):
            raise ValueError(
                f"{name}.{param} has size {tensor.shape[dim]} along dim {dim}, not divisible by tp_size={tp_size}"
                + (f" × {stride} (fused projections)" if stride > 1 else "") + "; choose a tp_size that divides it."
            )


def apply_tp_plan(model: nn.Module, group, plan: dict[str, str] | None = None, vocab_multiple: int | None = None):
    """Swap the plan's plain modules for their parallel versions, in place, keeping this rank's slices.

    Everything is validated before any module is replaced, so a bad TP degree leaves the model untouched.
    Tied weights (`_tied_weights_keys`) are re-tied to the sharded parameters afterwards.
    """
    tp_size = group_size(group)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "check_tp_size"):
        config.check_tp_size(tp_size)
    if vocab_multiple is None:
        vocab_multiple = getattr(config, "make_vocab_size_divisible_by", 128)
    plan = full_tp_plan(model) if plan is None else plan
    modules = dict(model.named_modules())
    matched = match_plan(modules, plan)
    for name, style_name in matched.items():
        if isinstance(modules[name], _ParallelModule):
            raise ValueError(f"{name!r} is already tensor-parallel; apply the plan to a freshly loaded model.")
        _check_divisible(name, modules[name], style_name, tp_size)
    for name, style_name in matched.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        replacement = STYLES[style_name].build(modules[name], group, vocab_multiple)
        replacement.train(modules[name].training)
        setattr(parent, child, replacement)
    _retie(model)
    model.tp_group = group
    return model


def _retie(model: nn.Module) -> None:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    if not isinstance(tied, dict) or not getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        return
    for target, source in tied.items():
        t_mod, _, t_param = target.rpartition(".")
        s_mod, _, s_param = source.rpartition(".")
        try:
            src = getattr(model.get_submodule(s_mod), s_param)
            dst_module = model.get_submodule(t_mod)
        except AttributeError:
            continue
        setattr(dst_module, t_param, src)


def is_tensor_parallel(model: nn.Module) -> bool:
    return any(isinstance(m, _ParallelModule) and m.tp_size > 1 for m in model.modules())


def shard_state_dict(state_dict: dict[str, torch.Tensor], plan: dict[str, str], tp_rank: int, tp_size: int,
                     vocab_multiple: int = 128) -> dict[str, torch.Tensor]:
    """This rank's shard of a full state dict under `plan` (keys as the model names them)."""
    module_names = {key.rpartition(".")[0] for key in state_dict}
    matched = match_plan(module_names, plan)
    out = {}
    for key, tensor in state_dict.items():
        module_name, _, param = key.rpartition(".")
        style = STYLES.get(matched.get(module_name, ""), None)
        spec = style.params.get(param) if style else None
        if spec is None:
            out[key] = tensor
            continue
        if style.vocab:
            tensor = pad_rows(tensor, padded_vocab_size(tensor.shape[0], tp_size, vocab_multiple))
        out[key] = split_for_rank(tensor, spec[0], tp_rank, tp_size, spec[1])
    return out


def _gather_param(module: _ParallelModule, param: str, local: torch.Tensor) -> torch.Tensor:
    spec = module.partition.get(param)
    if spec is None or module.tp_size == 1:
        full = local
    else:
        shards = [torch.empty_like(local) for _ in range(module.tp_size)]
        dist.all_gather(shards, local.contiguous(), group=module.tp_group)
        full = merge_shards(shards, spec[0], spec[1])
    if hasattr(module, "num_embeddings") and param in ("weight", "bias"):  # strip the vocab padding
        full = full[: module.num_embeddings]
    return full.detach().cpu().clone()


def gather_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full, plain-named state dict of a (possibly) tensor-parallel model. Collective: every TP rank calls it.

    Entries that share storage (tied weights) share the gathered tensor too, as in an unsharded model.
    """
    local = model.state_dict(keep_vars=True)
    owners = {}
    for mod_name, module in model.named_modules():
        if isinstance(module, _ParallelModule):
            for p_name, _ in module.named_parameters(recurse=False):
                owners[f"{mod_name}.{p_name}" if mod_name else p_name] = (module, p_name)
            for b_name, _ in module.named_buffers(recurse=False):  # split buffers (batch-norm running statistics)
                if module.partition.get(b_name) is not None:
                    owners[f"{mod_name}.{b_name}" if mod_name else b_name] = (module, b_name)
    gathered_by_storage: dict[int, torch.Tensor] = {}
    out = {}
    for key, tensor in local.items():
        ptr = tensor.data_ptr()
        if ptr in gathered_by_storage and tensor.numel() > 0:
            out[key] = gathered_by_storage[ptr]
            continue
        if key in owners:
            full = _gather_param(*owners[key], tensor)
        else:
            full = tensor.detach().cpu().clone()
        gathered_by_storage[ptr] = full
        out[key] = full
    return out


def tp_rank_and_size(model: nn.Module) -> tuple[int, int]:
    group = getattr(model, "tp_group", None)
    return group_rank(group), group_size(group)
