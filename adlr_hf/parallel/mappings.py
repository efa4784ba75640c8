"""The four autograd mappings at the borders of a tensor-parallel region (Megatron-LM `mpu/mappings.py`).

Each takes the TP group explicitly and is the identity when the group is None or has one member. Scatter and gather
split the last dim by default (hidden features of a Linear); `dim=1` splits the channels of an (N, C, H, W) feature
map (channel-parallel convolutions, `adlr_hf.parallel.conv`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def group_size(group) -> int:
    return 1 if group is None else dist.get_world_size(group)


def group_rank(group) -> int:
    return 0 if group is None else dist.get_rank(group)


def _all_reduce(x: torch.Tensor, group) -> torch.Tensor:
    x = x.contiguous().clone()
    dist.all_reduce(x, group=group)
    return x


def _split_dim(x: torch.Tensor, group, dim: int = -1) -> torch.Tensor:
    size = group_size(group)
    if x.shape[dim] % size:
        raise ValueError(f"cannot split dim {dim} of size {x.shape[dim]} over {size} tensor-parallel ranks; "
                         "its size must be divisible by the TP degree")
    return x.chunk(size, dim=dim)[group_rank(group)].contiguous()


def _gather_dim(x: torch.Tensor, group, dim: int = -1) -> torch.Tensor:
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(group_size(group))]
    dist.all_gather(parts, x, group=group)
    return torch.cat(parts, dim=dim)


class _CopyToRegion(torch.autograd.Function):
    """Forward: identity. Backward: all-reduce of the input gradient ("f" in the paper)."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx, grad):
        return _all_reduce(grad, ctx.group), None


class _ReduceFromRegion(torch.autograd.Function):
    """Forward: all-reduce of the partial sums. Backward: identity ("g" in the paper)."""

    @staticmethod
    def forward(ctx, x, group):
        return _all_reduce(x, group)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _ScatterToRegion(torch.autograd.Function):
    """Forward: keep this rank's chunk of `dim`. Backward: all-gather the chunks along `dim`."""

    @staticmethod
    def forward(ctx, x, group, dim):
        ctx.group, ctx.dim = group, dim
        return _split_dim(x, group, dim)

    @staticmethod
    def backward(ctx, grad):
        return _gather_dim(grad, ctx.group, ctx.dim), None, None


class _GatherFromRegion(torch.autograd.Function):
    """Forward: all-gather the chunks along `dim`. Backward: keep this rank's chunk of the gradient."""

    @staticmethod
    def forward(ctx, x, group, dim):
        ctx.group, ctx.dim = group, dim
        return _gather_dim(x, group, dim)

    @staticmethod
    def backward(ctx, grad):
        return _split_dim(grad, ctx.group, ctx.dim), None, None


def copy_to_tp_region(x: torch.Tensor, group) -> torch.Tensor:
    return x if group_size(group) == 1 else _CopyToRegion.apply(x, group)


def reduce_from_tp_region(x: torch.Tensor, group) -> torch.Tensor:
    return x if group_size(group) == 1 else _ReduceFromRegion.apply(x, group)


def scatter_to_tp_region(x: torch.Tensor, group, dim: int = -1) -> torch.Tensor:
    """This rank's chunk of `dim` (-1: features; 1: channels of an NCHW map)."""
    return x if group_size(group) == 1 else _ScatterToRegion.apply(x, group, dim)


def gather_from_tp_region(x: torch.Tensor, group, dim: int = -1) -> torch.Tensor:
    """All ranks' chunks concatenated along `dim` (-1: features; 1: channels of an NCHW map)."""
    return x if group_size(group) == 1 else _GatherFromRegion.apply(x, group, dim)
