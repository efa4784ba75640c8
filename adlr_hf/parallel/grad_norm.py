"""Gradient-norm clipping that counts every parameter once across a TP group (Megatron-LM `clip_grad_norm`).

Split parameters contribute their local shard on every rank; replicated ones (layer norms, row-parallel biases,
position embeddings) only on TP rank 0, so the all-reduced sum is the norm of the whole unsharded model.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .mappings import group_rank, group_size


def clip_grad_norm_tp(parameters, max_norm: float, group) -> torch.Tensor:
    """Clip in place to `max_norm` (skip clipping when max_norm <= 0) and return the total norm before clipping."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return torch.tensor(0.0)
    is_first = group_rank(group) == 0
    counted = [p.grad.detach().float() for p in params if getattr(p, "tensor_model_parallel", False) or is_first]
    total_sq = torch.stack([g.pow(2).sum() for g in counted]).sum() if counted else torch.zeros(())
    total_sq = total_sq.to(params[0].grad.device)
    if group_size(group) > 1:
        dist.all_reduce(total_sq, group=group)
    total = total_sq.sqrt()
    if max_norm > 0:
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.detach().mul_(scale.to(p.grad.dtype))
    return total
