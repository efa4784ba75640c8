"""Measured figures of a real DeepSpeed training step on CPU gloo ranks, for comparing with `adlr-hf plan`:
per-rank bytes of the weights and of the optimizer state (storage of the engine's module parameters; of the inner
optimizer's state and fp32 master parameters), and the payload of every `torch.distributed` collective of one step,
by group (TP / DP)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
# Small enough for 2 CPU ranks, with a vocabulary that TP=2 pads (1000 -> 1024).
CONFIG = dict(vocab_size=1000, max_position_embeddings=64, hidden_size=64, num_layers=2, num_attention_heads=4,
              hidden_dropout=0.0, attention_dropout=0.0, embedding_dropout=0.0, bos_token_id=0, eos_token_id=0)
MICRO, SEQ = 2, 32


def ds_config_file(stage: int, precision: str) -> Path:
    return REPO / "configs" / "deepspeed" / f"zero{stage}{'_bf16' if precision == 'bf16' else ''}.json"


def _storage_bytes(tensors, exclude=frozenset()) -> tuple[int, set]:
    seen, total = set(), 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in seen or key in exclude:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total, seen


def measured_state_bytes(engine) -> dict:
    """Weights: every storage the module's parameters live in. Optimizer: the inner (torch) optimizer's state
    tensors and its parameters where they are not the module's (DeepSpeed's fp32 master copies)."""
    weights, keys = _storage_bytes(p.detach() for p in engine.module.parameters())
    outer = engine.optimizer
    inner = getattr(outer, "optimizer", outer)
    state = [t for s in inner.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    masters = [p.detach() for group in inner.param_groups for p in group["params"]]
    optimizer, _ = _storage_bytes(state + masters, exclude=frozenset(keys))
    return {"parameters": weights, "optimizer": optimizer, "optimizer_class": type(outer).__name__}


def measure_worker(rank: int, tp: int, cases: list[tuple[int, str, bool]], out_dir: str) -> None:
    """One rank: for each (ZeRO stage, precision, activation checkpointing), a fresh model and engine, a warm-up
    step, then one counted step."""
    from adlr_hf.models.megatron_gpt import MegatronGPTConfig, MegatronGPTForCausalLM
    from adlr_hf.parallel import init_parallel
    from adlr_hf.parallel.plan import apply_tp_plan
    from adlr_hf.planning.collectives import CollectiveLog
    from adlr_hf.training.engine_deepspeed import DeepSpeedEngine
    from adlr_hf.training.engines import load_deepspeed_config, resolve_batch_config

    log = CollectiveLog().install()  # before DeepSpeed's comm backend keeps its own references
    DeepSpeedEngine({}).init_distributed()
    state = init_parallel(tp)
    tp_ranks = tuple(range(rank - state.tp_rank, rank - state.tp_rank + tp))
    dp_ranks = tuple(range(state.tp_rank, state.world_size, tp))
    results = []
    for stage, precision, checkpointing in cases:
        ds_config = resolve_batch_config(load_deepspeed_config(str(ds_config_file(stage, precision))), MICRO, 1,
                                         state.dp_size, 1.0)
        torch.manual_seed(0)
        model = MegatronGPTForCausalLM(MegatronGPTConfig(**CONFIG)).train()
        if tp > 1:
            apply_tp_plan(model, state.tp_group)
        if checkpointing:
            model.activation_checkpointing_enable()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        engine = DeepSpeedEngine(ds_config)
        engine.setup(model, optimizer, None, state)
        ids = torch.randint(0, CONFIG["vocab_size"], (MICRO, SEQ),
                            generator=torch.Generator().manual_seed(state.dp_rank))
        batch = {"input_ids": ids, "labels": ids}
        engine.micro_step(batch)  # warm-up: the optimizer state exists from here on
        log.clear()
        with log.recording():
            engine.micro_step(batch)
        results.append({"stage": stage, "precision": precision, "checkpointing": checkpointing,
                        "dp": state.dp_size, "tp": tp,
                        **measured_state_bytes(engine.engine),
                        "tp_comm": log.summary(tp_ranks), "dp_comm": log.summary(dp_ranks)})
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(results))
