"""How a full (TP=1) tensor maps to per-rank shards and back, with Megatron's `stride` and vocab padding.

`stride` follows Megatron-LM `_initialize_affine_weight_cpu` / `merge_mp_partitions`: the partitioned dim is cut
into `tp_size * stride` chunks and rank r keeps chunks r, r+tp, r+2tp, ... A fused [Q; K; V] weight with stride 3
therefore gives each rank [Q_r; K_r; V_r], i.e. whole heads of each of the three projections.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_vocab_size(vocab_size: int, tp_size: int, multiple: int = 128) -> int:
    """Megatron's `_vocab_size_with_padding`: round up to a multiple of `multiple * tp_size`."""
    step = multiple * tp_size
    return ((vocab_size + step - 1) // step) * step


def pad_rows(full: torch.Tensor, rows: int) -> torch.Tensor:
    """Append zero rows (dim 0) up to `rows`."""
    extra = rows - full.shape[0]
    if extra < 0:
        raise ValueError(f"cannot pad {full.shape[0]} rows down to {rows}")
    if extra == 0:
        return full
    return torch.cat([full, full.new_zeros((extra, *full.shape[1:]))], dim=0)


def split_for_rank(full: torch.Tensor, dim: int, rank: int, tp_size: int, stride: int = 1) -> torch.Tensor:
    """This rank's shard of `full` along `dim`."""
    if full.shape[dim] % (tp_size * stride) != 0:
        raise ValueError(
            f"dimension {dim} of size {full.shape[dim]} cannot be split into {tp_size} ranks × stride {stride}"
        )
    chunks = full.chunk(tp_size * stride, dim=dim)
    return torch.cat(chunks[rank::tp_size], dim=dim).contiguous()


def merge_shards(shards: list[torch.Tensor], dim: int, stride: int = 1) -> torch.Tensor:
    """Inverse of `split_for_rank` over all ranks' shards (ordered by TP rank)."""
    if stride == 1:
        return torch.cat(shards, dim=dim)
    pieces = [shard.chunk(stride, dim=dim) for shard in shards]
    return torch.cat([pieces[r][s] for s in range(stride) for r in range(len(shards))], dim=dim)


def pad_last_dim(x: torch.Tensor, size: int, value: float) -> torch.Tensor:
    return F.pad(x, (0, size - x.shape[-1]), value=value)
