"""Run adlr_hf's tensor-parallel plans with transformers' own TP (`from_pretrained(..., distributed_config=...)`).

transformers 5 applies a plan written in the same format as ours (`base_model_tp_plan` + the class's `_tp_plan`),
but looks every style name up in its registry `ALL_PARALLEL_STYLES`, which lacks two of our styles. What was checked
numerically against the unsharded model (tests/parallel/test_hf_native_tp.py, Megatron-GPT, 2 gloo ranks on CPU):

| our style | transformers style | result |
|---|---|---|
| `colwise`, `rowwise` | same name | correct (`colwise_rep` maps to itself too, untested here) |
| `embedding_rowwise` / `vocab` | `embedding_rowwise` | correct (no vocab padding: uneven shards) |
| `vocab_lm_head` (tied) | `colwise_gather_output` | correct, but logits are full in training too (no vocab-parallel CE) |
| `qkv_colwise` | `packed_colwise` (split_factor=2) | WRONG: cuts [Q; K; V] into two groups, not three |
| `qkv_colwise` | `colwise` | WRONG: rank 0 gets [Q; first half of K] |
| `qkv_colwise` | `PackedColwiseParallel(split_factor=3)` | weight right, bias WRONG: a 1-D param gets plain `Shard(0)` |
| `qkv_colwise` | `MegatronQKVColwiseParallel` below | correct: the bias is strided like the weight |

`register_hf_styles()` registers the two missing names (after it, `DistributedConfig(tp_plan="auto")` applies our
whole plan); `hf_native_plan()` gives the plan that transformers' stock styles alone apply correctly (for a process
where adlr_hf's styles are not registered, e.g. a published folder loaded with `trust_remote_code=True`).
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn as nn

from .plan import full_tp_plan

logger = logging.getLogger(__name__)

# Our style -> the stock transformers style that implements it correctly, or "replicate" (transformers' no-op
# style: the module stays whole on every rank) where none does.
STOCK_EQUIVALENT = {
    "colwise": "colwise",
    "rowwise": "rowwise",
    "colwise_rep": "colwise_rep",
    "colwise_gather_output": "colwise_gather_output",
    "embedding_rowwise": "embedding_rowwise",
    "vocab": "embedding_rowwise",
    "vocab_lm_head": "colwise_gather_output",
    "qkv_colwise": "replicate",
}

_MARKER = "_adlr_hf_style"


def _distributed_available() -> bool:
    try:
        from transformers.utils.import_utils import is_torch_distributed_available
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return is_torch_distributed_available()


@functools.cache
def _style_classes():
    """The two styles, built on transformers' classes (defined lazily: they need torch.distributed)."""
    from torch.distributed.tensor import Replicate, distribute_tensor
    from torch.distributed.tensor.placement_types import _StridedShard
    from transformers.distributed.tensor_parallel import ColwiseParallel, PackedColwiseParallel

    class MegatronQKVColwiseParallel(PackedColwiseParallel):
        """Fused [Q; K; V] column-parallel with Megatron's stride 3: rank r keeps [Q_r; K_r; V_r] of the weight rows
        AND of the bias. transformers' `PackedColwiseParallel` strides only the 2-D weight and gives a 1-D bias a
        plain `Shard(0)` (rank 0 would get [b_Q; first half of b_K]); this subclass strides both."""

        def shard_param(self, module, param, mesh):
            meta = module._parameters.get(param)
            if meta is None:
                return
            dim = 0 if meta.ndim == 1 else self._packed_output_shard_dim(meta.ndim)
            placement = _StridedShard(dim=dim, split_factor=self.split_factor)
            module._parameters[param] = nn.Parameter(
                distribute_tensor(meta, mesh, [placement], src_data_rank=None), requires_grad=meta.requires_grad
            )

    class VocabLMHeadColwiseParallel(ColwiseParallel):
        """Tied LM head: weight rows (the vocabulary) split like the `embedding_rowwise` embedding it is tied to,
        logits gathered to the full vocabulary (transformers' `colwise_gather_output`)."""

        def __init__(self):
            super().__init__(input_layouts=Replicate(), output_layouts=Replicate())

    setattr(MegatronQKVColwiseParallel, _MARKER, True)
    setattr(VocabLMHeadColwiseParallel, _MARKER, True)
    return MegatronQKVColwiseParallel, VocabLMHeadColwiseParallel


def register_hf_styles() -> bool:
    """Register "qkv_colwise" and "vocab_lm_head" in transformers' `ALL_PARALLEL_STYLES`, so that
    `from_pretrained(folder, distributed_config=DistributedConfig(tp_plan="auto"))` applies adlr_hf's whole plan.

    Idempotent. Returns True when both names map to adlr_hf's styles afterwards; False (registering nothing) when
    torch.distributed is unavailable, and False, with a warning, for a name that transformers (or someone else)
    already registered differently: that registration is left alone.
    """
    if not _distributed_available():
        return False
    from transformers.distributed.tensor_parallel import ALL_PARALLEL_STYLES

    qkv_cls, head_cls = _style_classes()
    wanted = {"qkv_colwise": lambda: qkv_cls(split_factor=3), "vocab_lm_head": head_cls}
    ok = True
    for name, build in wanted.items():
        existing = ALL_PARALLEL_STYLES.get(name)
        if existing is None:
            ALL_PARALLEL_STYLES.register(name, build())
        elif not getattr(existing, _MARKER, False):
            logger.warning("transformers already has a tensor-parallel style %r (%s); adlr_hf leaves it in place, so "
                           "DistributedConfig(tp_plan='auto') may shard adlr_hf models wrongly. Pass "
                           "tp_plan=hf_native_plan(model) instead.", name, type(existing).__name__)
            ok = False
    return ok


def _registered_class(config):
    """The model class that transformers' Auto mappings hold for `config` under the name in `config.architectures`,
    else its causal-LM class (None when neither is registered)."""
    from transformers import AutoModelForCausalLM
    from transformers.models.auto import modeling_auto

    mappings = [m for m in vars(modeling_auto).values() if isinstance(m, modeling_auto._LazyAutoMapping)]
    for name in getattr(config, "architectures", None) or []:
        for mapping in mappings:
            try:
                classes = mapping[type(config)]
            except KeyError:
                continue
            for model_class in classes if isinstance(classes, (tuple, list)) else (classes,):
                if model_class.__name__ == name:
                    return model_class
    return AutoModelForCausalLM._model_mapping.get(type(config), None)


def _model_plan(config_or_model, model_class=None) -> dict[str, str]:
    if isinstance(config_or_model, nn.Module):
        return full_tp_plan(config_or_model)
    config = config_or_model
    if model_class is None:
        model_class = _registered_class(config)
    if model_class is None:
        raise ValueError(f"cannot tell which model class {type(config).__name__} will be loaded as; pass "
                         "model_class=... (the class the folder is loaded with) or the model itself.")
    with torch.device("meta"):  # names only: nothing is allocated
        model = model_class(config)
    return full_tp_plan(model)


def hf_native_plan(config_or_model, model_class=None) -> dict[str, str]:
    """The plan transformers' stock TP styles apply correctly, for `DistributedConfig(tp_plan=...)`.

    `config_or_model` is the loaded model, or its config (the class is taken from `model_class`, else
    `config.architectures`, else the CausalLM class). Keys are named as in that class (`transformer.layers.*...`
    for a head model), since transformers rejects override keys that name nothing.

    The returned dict covers EVERY rule of the model's plan: `DistributedConfig`'s dict is merged into the model's
    plan (`plan | override`), so a rule left out would keep our style name, which transformers does not know; and
    an empty dict is refused at tp_size > 1 ("has no tp_plan"). Rules transformers cannot apply become "replicate"
    (its no-op style): the fused QKV, and the row-parallel projection that consumes its output (same parent module),
    which needs its input split by heads.
    """
    plan = _model_plan(config_or_model, model_class)
    unknown = {style for style in plan.values() if style not in STOCK_EQUIVALENT}
    if unknown:
        raise ValueError(f"no transformers equivalent known for tensor-parallel styles {sorted(unknown)}; "
                         f"known: {sorted(STOCK_EQUIVALENT)}")
    native = {key: STOCK_EQUIVALENT[style] for key, style in plan.items()}
    replicated_parents = {key.rpartition(".")[0] for key, style in plan.items() if style == "qkv_colwise"}
    for key, style in plan.items():
        if style == "rowwise" and key.rpartition(".")[0] in replicated_parents:
            native[key] = "replicate"
    return native


__all__ = ["STOCK_EQUIVALENT", "hf_native_plan", "register_hf_styles"]
