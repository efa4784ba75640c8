"""Writing Megatron-LM checkpoints in the layouts the converters read (the GPT and BERT converter tests share it):
per-rank QKV rows of each `checkpoint_version`, row/column shards, the rank files with their RNG entries, and the
padded vocabulary size."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def qkv_shard(blocked: torch.Tensor, version: float, rank: int, tp: int, heads: int, head_dim: int) -> torch.Tensor:
    """Rank `rank`'s QKV rows as Megatron stores them for `version`, from our blocked [3, np, hn] rows."""
    rest = blocked.shape[1:]
    per = heads // tp
    qkv = blocked.reshape(3, heads, head_dim, *rest)[:, rank * per:(rank + 1) * per]  # [3, np_r, hn, ...]
    if version == 0:
        layout = qkv  # [Q_r; K_r; V_r]: the stride-3 share of [Q_all; K_all; V_all]
    elif version == 1.0:
        layout = qkv.permute(1, 2, 0, *range(3, qkv.dim()))  # [np_r, hn, 3]
    else:
        layout = qkv.transpose(0, 1)  # [np_r, 3, hn]
    return layout.reshape(3 * per * head_dim, *rest).contiguous()


def row_shard(t: torch.Tensor, rank: int, tp: int) -> torch.Tensor:
    return t.chunk(tp, dim=0)[rank].clone()


def column_shard(t: torch.Tensor, rank: int, tp: int) -> torch.Tensor:
    return t.chunk(tp, dim=1)[rank].clone()


def write_megatron(root: Path, model_dict: Callable[[int], dict], version: float, tp: int, args, release: bool = False,
                   legacy_format: bool = False) -> Path:
    """`root/{iter_0000100,release}/mp_rank_XX/model_optim_rng.pt` for every rank (its `model` entry from
    `model_dict(rank)`; `args` left out when None) and the tracker file."""
    folder = root / ("release" if release else "iter_0000100")
    for rank in range(tp):
        ckpt = {"iteration": 0 if release else 100, "model": model_dict(rank),
                "random_rng_state": random.getstate(), "np_rng_state": np.random.get_state(),
                "torch_rng_state": torch.get_rng_state(),
                "rng_tracker_states": {"model-parallel-rng": torch.get_rng_state()}}
        if args is not None:
            ckpt["args"] = args
        if version != 0:  # Megatron v1.0 saved no checkpoint_version; load_checkpoint reads it as 0
            ckpt["checkpoint_version"] = version
        path = folder / f"mp_rank_{rank:02d}" / "model_optim_rng.pt"
        path.parent.mkdir(parents=True)
        # legacy_format: the pre-1.6 (non-zip) torch.save format that 2019 checkpoints use
        torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy_format)
    (root / "latest_checkpointed_iteration.txt").write_text("release" if release else "100")
    return root


def padded_vocab(vocab: int, tp: int) -> int:
    step = 128 * tp
    return (vocab + step - 1) // step * step


def transformer_body(full: dict, prefix: str, attention_src: str, version: float, rank: int, tp: int, layers: int,
                     heads: int, head_dim: int) -> dict:
    """One rank's transformer layers and final layer norm in Megatron-LM's names for `version`, from our unsplit
    weights under `prefix` ("transformer." / "bert.") whose attention module is `attention_src`."""
    attention = "self_attention" if version >= 2.0 else "attention"
    body = {}
    for i in range(layers):
        src, dst = f"{prefix}layers.{i}.", f"layers.{i}."
        for ln in ("input_layernorm", "post_attention_layernorm"):
            for p in ("weight", "bias"):
                body[f"{dst}{ln}.{p}"] = full[f"{src}{ln}.{p}"].clone()
        for p in ("weight", "bias"):
            body[f"{dst}{attention}.query_key_value.{p}"] = qkv_shard(
                full[f"{src}{attention_src}.query_key_value.{p}"], version, rank, tp, heads, head_dim)
            body[f"{dst}mlp.dense_h_to_4h.{p}"] = row_shard(full[f"{src}mlp.dense_h_to_4h.{p}"], rank, tp)
        body[f"{dst}{attention}.dense.weight"] = column_shard(full[f"{src}{attention_src}.dense.weight"], rank, tp)
        body[f"{dst}{attention}.dense.bias"] = full[f"{src}{attention_src}.dense.bias"].clone()
        body[f"{dst}mlp.dense_4h_to_h.weight"] = column_shard(full[f"{src}mlp.dense_4h_to_h.weight"], rank, tp)
        body[f"{dst}mlp.dense_4h_to_h.bias"] = full[f"{src}mlp.dense_4h_to_h.bias"].clone()
    body["final_layernorm.weight"] = full[f"{prefix}final_layernorm.weight"].clone()
    body["final_layernorm.bias"] = full[f"{prefix}final_layernorm.bias"].clone()
    return body
