"""`make_plan`: one layout of one model, computed per rank without running it.

Parameters per rank come from the family's TP plan applied on the meta device (ranks.py); weights, gradients and
optimizer state from the ZeRO stage and precision of the DeepSpeed config (memory.py, setup.py); activations from
Korthikanti et al.'s count (activations.py); FLOPs from Megatron's formula (flops.py); TP communication from a trace
of the rank's own collectives and DP communication from DeepSpeed's reduction scheme (communication.py).
"""

from __future__ import annotations

import torch

from ..hub.systems import transformer_dims
from .activations import activation_memory
from .communication import LM_AUTO_CLASSES, dp_collectives, trace_tp_collectives
from .flops import step_flops
from .layout import Layout
from .memory import state_memory
from .ranks import rank_shapes
from .setup import TrainingSetup

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def model_dims(config, name: str) -> dict:
    """Layers, hidden size, heads, vocabulary and positions of a transformer config; an error for other models."""
    dims = transformer_dims(config)
    heads = getattr(config, "num_attention_heads", None)
    if dims is None or not isinstance(heads, int):
        raise ValueError(f"{name} ({config.model_type}) is not a transformer config with layers, hidden size, heads "
                         "and vocabulary at its top level; adlr-hf plan models transformer language models "
                         "(Megatron's formulas), e.g. megatron-gpt-* or megatron-bert-*.")
    return {**dims, "num_attention_heads": heads,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None)}


def check_model(config, name: str, layout: Layout) -> dict:
    """The model-side checks of a layout: TP against the heads and the split widths, the vocabulary padding, the
    sequence length against the positions."""
    dims = model_dims(config, name)
    tp = layout.tp
    if tp > 1:
        if hasattr(config, "check_tp_size"):
            config.check_tp_size(tp)
        elif dims["num_attention_heads"] % tp:
            raise ValueError(f"num_attention_heads={dims['num_attention_heads']} is not divisible by --tp {tp}; use a "
                             "TP degree that divides the head count.")
        multiple = getattr(config, "make_vocab_size_divisible_by", 128)
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise ValueError(f"make_vocab_size_divisible_by={multiple!r} cannot pad the vocabulary "
                             f"({dims['vocab_size']}) to a multiple of --tp {tp}; set it to a positive integer such "
                             "as Megatron's 128 (--set make_vocab_size_divisible_by=128).")
    limit = dims["max_position_embeddings"]
    if limit is not None and layout.seq_len > limit:
        raise ValueError(f"--seq-len {layout.seq_len} exceeds the model's max_position_embeddings={limit}; lower "
                         "--seq-len or --set max_position_embeddings=...")
    return dims


def _family_and_class(config, name: str):
    from ..registry import family_for, main_model_class

    family = family_for(config)
    if family is None:
        raise ValueError(f"{name} has model_type {config.model_type!r}, which no adlr_hf family registers.")
    model_class = main_model_class(family)
    if getattr(model_class, "main_input_name", "input_ids") != "input_ids":
        raise ValueError(f"{name} is a {family.name} model whose input is {model_class.main_input_name}; adlr-hf plan "
                         "models transformer language models (Megatron's formulas).")
    return family, model_class


def make_plan(name: str, config, layout: Layout, ds_config: dict, gpu_memory_gib: float | None = None) -> dict:
    """The plan of `config` (called `name`) at `layout` under the (batch-resolved) DeepSpeed config."""
    from ..parallel.sharding import padded_vocab_size
    from ..registry import count_parameters
    from ..tasks import get_task

    dims = check_model(config, name, layout)
    family, model_class = _family_and_class(config, name)
    setup = TrainingSetup.from_deepspeed_config(ds_config)
    if setup.zero_stage == 3 and layout.tp > 1:
        raise ValueError(f"ZeRO stage 3 cannot be combined with --tp {layout.tp} in adlr_hf training; use ZeRO 0-2 "
                         "with tensor parallelism, or --tp 1 with ZeRO-3.")
    with_labels = get_task(family.default_task).auto_class_name in LM_AUTO_CLASSES
    s, b, t = layout.seq_len, layout.micro_batch_size, layout.tp
    L, h, a = dims["num_layers"], dims["hidden_size"], dims["num_attention_heads"]
    vocab = padded_vocab_size(dims["vocab_size"], t, getattr(config, "make_vocab_size_divisible_by", 128) or 128)

    def trace(model, group):
        return trace_tp_collectives(model, b, s, _DTYPES[setup.precision], layout.activation_checkpointing,
                                    with_labels)

    shapes = rank_shapes(model_class, config, t, trace=trace if t > 1 else None)
    ranks = []
    for shape in shapes:
        state = state_memory(shape.parameters, setup, layout.dp, layout.grad_accum)
        # The logits are as wide as the rank's vocabulary rows (padded at TP > 1, the model's own at TP=1).
        logits = shape.padded_vocab or dims["vocab_size"]
        acts = activation_memory(L, s, b, h, a, logits, t, setup.activation_bytes)
        chosen = acts.checkpointed if layout.activation_checkpointing else acts.full
        peak = max(state.resident + chosen, state.resident + state.step_transient)
        ranks.append({
            "tp_ranks": shape.tp_ranks,
            "parameters": shape.parameters, "parameters_split": shape.split,
            "parameters_replicated": shape.replicated, "padded_vocab": shape.padded_vocab,
            "memory_bytes": {**state.as_dict(), "activations": acts.as_dict(), "activations_used": chosen,
                             "peak": peak},
            "fits": None if gpu_memory_gib is None else peak <= gpu_memory_gib * 2**30,
            "communication_per_step": {"tp": _tp_per_step(shape.trace, layout.grad_accum),
                                       "dp": dp_collectives(shape.parameters, setup, layout.dp, layout.grad_accum,
                                                            layout.activation_checkpointing)},
        })
    return {
        "model": name, "family": family.name, "model_class": model_class.__name__,
        "dims": {**dims, "padded_vocab_size": vocab}, "parameters": count_parameters(config),
        "layout": layout.as_dict(),
        "training": {"zero_stage": setup.zero_stage, "precision": setup.precision, "optimizer": setup.optimizer,
                     "weight_bytes": setup.param_bytes, "gradient_bytes": setup.grad_bytes,
                     "communication_bytes": setup.comm_bytes, "master_copy": setup.master_copy},
        "gpu_memory_gib": gpu_memory_gib,
        "flops": step_flops(layout.global_batch_size, s, L, h, vocab, layout.world, layout.activation_checkpointing),
        "ranks": ranks,
        "notes": _notes(layout, ranks),
    }


def _notes(layout: Layout, ranks: list[dict]) -> list[str]:
    notes = []
    if layout.gpus_per_node % layout.tp:
        notes.append(f"TP {layout.tp} does not divide the {layout.gpus_per_node} GPUs of a node: some TP groups "
                     "(consecutive ranks) span two nodes, and their all-reduces cross the network.")
    if any(rank["fits"] is False for rank in ranks):
        notes.append("the peak estimate exceeds --gpu-memory-gib: raise TP or ZeRO, or use --activation-checkpointing.")
    return notes


def _tp_per_step(trace: dict | None, grad_accum: int) -> dict:
    """The traced micro-batch, times the micro-batches of a step (zero at TP=1)."""
    if trace is None:
        return {"layers": None, "phases": {}, "payload_bytes": 0, "wire_bytes": 0.0, "per_micro_batch_bytes": 0}
    return {**trace, "per_micro_batch_bytes": trace["payload_bytes"],
            "payload_bytes": trace["payload_bytes"] * grad_accum, "wire_bytes": trace["wire_bytes"] * grad_accum}
