"""Channel-parallel convolutions and batch norm: Megatron-LM's column/row split (`mpu/layers.py`) applied to the
channels of a 2-D convolution, with the group passed in explicitly.

A convolution is a linear map of (C_in × kH × kW) patches to C_out channels, so Megatron's two splits carry over with
channels in place of features:

| class | weight on this rank | input | output |
|---|---|---|---|
| `ColumnParallelConv2d` | [C_out/p, C_in, kH, kW], bias [C_out/p] | whole (`copy_to`: backward all-reduces its grad) | this rank's C_out/p channels, or all of them (`gather_output`, dim 1) |
| `RowParallelConv2d` | [C_out, C_in/p, kH, kW], bias whole | this rank's C_in/p channels (`input_is_parallel`, else scattered on dim 1) | all-reduced partial sums, then the bias |
| `ChannelParallelBatchNorm2d` | weight, bias, running mean/var of C/p channels | this rank's channels | this rank's channels |

A column conv followed by a row conv needs one all-reduce forward and one backward, as Megatron's MLP. Batch norm
between them is exact on local channels, in eval mode (per-channel affine map of per-channel running statistics) and
in train mode (a channel's batch statistics run over (N, H, W) of that channel only, and all TP ranks of a replica see
the same batch, so every rank computes the statistics the dense layer would for its channels).

Partial convolutions (`adlr_hf.layers.PartialConv2d`, arXiv 1811.11718) stay exact: the renormalisation ratio and the
update mask depend only on the spatial mask, not on the weights. A column split keeps them as they are; a row split
applies them after the all-reduce, since ratio · Σ_ranks conv(x_r, W_r) = ratio · conv(x, W), and adds the bias after
that, as the dense layer does. With a multi-channel mask the window sums of the ranks' channels are all-reduced too.

Every layer is built from its dense counterpart (`from_dense`, keeping this rank's slice: TP-invariant), or directly
from the same arguments as the dense layer (the full master weight is initialised as the dense layer would, then
sliced). Grouped convolutions (groups > 1) are not split.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..layers.partial_conv import PartialConv2d, PartialConvMixin
from .layers import _ParallelModule
from .mappings import _split_dim, copy_to_tp_region, gather_from_tp_region, reduce_from_tp_region, scatter_to_tp_region

__all__ = ["ChannelParallelBatchNorm2d", "ColumnParallelConv2d", "RowParallelConv2d"]


class _ParallelConv2d(PartialConvMixin, _ParallelModule):
    """Geometry, weights and the (optional) partial-convolution state shared by the column and row convolutions."""

    _split_dim_of_weight: int  # 0: output channels (column), 1: input channels (row)

    def _init_conv(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                   group, partial, multi_channel, return_mask, master_weight, master_bias) -> None:
        self._init_group(group)
        self._ratio_cache = {}
        if groups != 1:
            raise ValueError(f"channel-parallel convolutions need groups=1, got groups={groups}; keep grouped or "
                             "depthwise convolutions replicated (leave them out of the TP plan).")
        split = out_channels if self._split_dim_of_weight == 0 else in_channels
        if split % self.tp_size:
            what = "out_channels" if self._split_dim_of_weight == 0 else "in_channels"
            raise ValueError(f"{what}={split} is not divisible by tp_size={self.tp_size}; pick a tp_size that "
                             "divides it.")
        dense_cls = PartialConv2d if partial else nn.Conv2d
        extra = {"multi_channel": multi_channel, "return_mask": return_mask} if partial else {}
        # The geometry (and, without master weights, the seeded full init) comes from the dense layer itself.
        template = dense_cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                             device="meta" if master_weight is not None else None, **extra)
        if master_weight is None:
            master_weight = template.weight.data
            master_bias = template.bias.data if bias else None
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = template.kernel_size, template.stride, template.padding
        self.dilation, self.groups, self.padding_mode = template.dilation, template.groups, template.padding_mode
        self._reversed_padding_repeated_twice = template._reversed_padding_repeated_twice
        self.partial = bool(partial)
        self.multi_channel, self.return_mask = bool(multi_channel), bool(return_mask)
        if self.partial:
            # The window sum of a multi-channel mask covers all C_in channels (a row split all-reduces it).
            local_in = in_channels // self.tp_size if self._split_dim_of_weight == 1 else in_channels
            mask_channels = local_in if multi_channel else 1
            window = (in_channels if multi_channel else 1) * self.kernel_size[0] * self.kernel_size[1]
            self._init_partial(multi_channel, return_mask, (1, mask_channels, *self.kernel_size), window)
        self._set_param("weight", master_weight)
        self._set_param("bias", master_bias if bias else None)

    @classmethod
    def _dense_kwargs(cls, conv: nn.Conv2d) -> dict:
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"{cls.__name__}.from_dense needs an nn.Conv2d (or PartialConv2d), got "
                             f"{type(conv).__name__}")
        partial = isinstance(conv, PartialConv2d)
        return dict(in_channels=conv.in_channels, out_channels=conv.out_channels, kernel_size=conv.kernel_size,
                    stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode, partial=partial,
                    multi_channel=partial and conv.multi_channel, return_mask=partial and conv.return_mask,
                    master_weight=conv.weight.data, master_bias=None if conv.bias is None else conv.bias.data)

    def _conv(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros":  # reflect / replicate / circular pad each channel on its own: split-safe
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, self.weight, bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _check_input(self, x: torch.Tensor, mask_in) -> None:
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} expects a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
        if mask_in is not None and not self.partial:
            raise ValueError(f"mask_in is only accepted by partial convolutions; this {type(self).__name__} was built "
                             "from an nn.Conv2d")

    def _finish(self, out: torch.Tensor, update: torch.Tensor | None, batch: int, channels: int):
        """The module's return value: `(out, update_mask)` with `return_mask`, the update mask expanded to the output
        channels for a multi-channel partial convolution (as `PartialConv2d` returns it)."""
        if not (self.partial and self.return_mask):
            return out
        if self.multi_channel:
            update = update.expand(batch, channels, *update.shape[2:])
        return out, update

    def extra_repr(self) -> str:
        kind = f", partial=True, multi_channel={self.multi_channel}" if self.partial else ""
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}{kind}, tp={self.tp_rank}/{self.tp_size}")


class ColumnParallelConv2d(_ParallelConv2d):
    """Conv2d with the output channels split: weight [C_out/p, C_in, kH, kW], bias [C_out/p].

    `gather_output=False` leaves the output split along the channels (feeds a batch norm on local channels and a
    `RowParallelConv2d`); `gather_output=True` all-gathers them on dim 1. `partial=True` makes it a partial
    convolution (`PartialConv2d`'s `multi_channel` / `return_mask` and `forward(x, mask_in)` included).
    """

    _split_dim_of_weight = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", gather_output=True, group=None, partial=False, multi_channel=False,
                 return_mask=False, master_weight=None, master_bias=None):
        super().__init__()
        self.partition = {"weight": (0, 1), "bias": (0, 1)}
        self.gather_output = gather_output
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                        group, partial, multi_channel, return_mask, master_weight, master_bias)

    @classmethod
    def from_dense(cls, conv: nn.Conv2d, group, gather_output=True) -> "ColumnParallelConv2d":
        return cls(**cls._dense_kwargs(conv), gather_output=gather_output, group=group)

    def forward(self, input: torch.Tensor, mask_in: torch.Tensor | None = None):
        self._check_input(input, mask_in)
        x = copy_to_tp_region(input, self.tp_group)
        update = None
        if not self.partial:
            out = self._conv(x, self.bias)
        elif mask_in is None:
            raw = self._conv(x, None)
            ratio, update, all_valid = self._padding_ratio(input.shape[2], input.shape[3], raw.dtype, raw.device)
            out = self._renormalize(raw, self.bias, ratio, update, all_valid)
        else:
            self._check_mask(input, mask_in, self.in_channels)
            raw = self._conv(x * mask_in.to(x.dtype), None)
            ratio, update = self._masked_ratio(mask_in, raw.dtype)
            out = self._renormalize(raw, self.bias, ratio, update, all_valid=False)
        if self.gather_output:
            out = gather_from_tp_region(out, self.tp_group, dim=1)
        batch = input.shape[0] if mask_in is None else mask_in.shape[0]
        return self._finish(out, update, batch, out.shape[1])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", out_channels split, gather_output={self.gather_output}"


class RowParallelConv2d(_ParallelConv2d):
    """Conv2d with the input channels split: weight [C_out, C_in/p, kH, kW]; the convolution runs without bias, the
    ranks' partial sums are all-reduced, then (for a partial convolution) renormalised and the whole bias added.

    `input_is_parallel=True` takes this rank's C_in/p channels (after a `ColumnParallelConv2d(gather_output=False)`);
    otherwise the full input is scattered along dim 1. A multi-channel `mask_in` is split like the input.
    """

    _split_dim_of_weight = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", input_is_parallel=False, group=None, partial=False, multi_channel=False,
                 return_mask=False, master_weight=None, master_bias=None):
        super().__init__()
        self.partition = {"weight": (1, 1), "bias": None}
        self.input_is_parallel = input_is_parallel
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                        group, partial, multi_channel, return_mask, master_weight, master_bias)

    @classmethod
    def from_dense(cls, conv: nn.Conv2d, group, input_is_parallel=True) -> "RowParallelConv2d":
        return cls(**cls._dense_kwargs(conv), input_is_parallel=input_is_parallel, group=group)

    def _all_reduce_sum(self, mask_sum: torch.Tensor) -> torch.Tensor:
        if self.tp_size > 1:
            dist.all_reduce(mask_sum, group=self.tp_group)
        return mask_sum

    def forward(self, input: torch.Tensor, mask_in: torch.Tensor | None = None):
        self._check_input(input, mask_in)
        x = input if self.input_is_parallel else scatter_to_tp_region(input, self.tp_group, dim=1)
        if mask_in is not None:
            if self.multi_channel and not self.input_is_parallel and self.tp_size > 1:
                mask_in = _split_dim(mask_in.detach(), self.tp_group, dim=1)
            self._check_mask(x, mask_in, self.in_channels // self.tp_size)
            x = x * mask_in.to(x.dtype)
        # No bias before the reduce: it would be added once per rank.
        raw = reduce_from_tp_region(self._conv(x, None), self.tp_group)
        update = None
        if not self.partial:
            out = raw if self.bias is None else raw + self.bias.to(raw.dtype).view(1, -1, 1, 1)
        elif mask_in is None:
            ratio, update, all_valid = self._padding_ratio(input.shape[2], input.shape[3], raw.dtype, raw.device)
            out = self._renormalize(raw, self.bias, ratio, update, all_valid)
        else:
            reduce = self._all_reduce_sum if self.multi_channel else None
            ratio, update = self._masked_ratio(mask_in, raw.dtype, reduce_sum=reduce)
            out = self._renormalize(raw, self.bias, ratio, update, all_valid=False)
        batch = input.shape[0] if mask_in is None else mask_in.shape[0]
        return self._finish(out, update, batch, out.shape[1])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", in_channels split, input_is_parallel={self.input_is_parallel}"


class ChannelParallelBatchNorm2d(_ParallelModule, nn.BatchNorm2d):
    """`nn.BatchNorm2d` over this rank's C/p channels (after a `ColumnParallelConv2d(gather_output=False)`): weight,
    bias, running mean and running variance are sliced like the conv's output channels; `num_batches_tracked` is
    replicated. Exact in eval and in train mode (see the module docstring); no communication."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, group=None,
                 master=None):
        tp_size = 1 if group is None else dist.get_world_size(group)
        if num_features % tp_size:
            raise ValueError(f"num_features={num_features} is not divisible by tp_size={tp_size}; pick a tp_size that "
                             "divides it.")
        nn.BatchNorm2d.__init__(self, num_features // tp_size, eps=eps, momentum=momentum, affine=affine,
                                track_running_stats=track_running_stats)
        self._init_group(group)
        self.full_num_features = num_features
        self.partition = {"weight": (0, 1), "bias": (0, 1), "running_mean": (0, 1), "running_var": (0, 1),
                          "num_batches_tracked": None}
        if master is None:
            master = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=affine,
                                    track_running_stats=track_running_stats)
        if affine:
            self._set_param("weight", master.weight.data)
            self._set_param("bias", master.bias.data)
        if track_running_stats:
            lo = self.tp_rank * self.num_features
            with torch.no_grad():
                self.running_mean.copy_(master.running_mean[lo: lo + self.num_features])
                self.running_var.copy_(master.running_var[lo: lo + self.num_features])
                self.num_batches_tracked.copy_(master.num_batches_tracked)

    @classmethod
    def from_dense(cls, bn: nn.BatchNorm2d, group) -> "ChannelParallelBatchNorm2d":
        if not isinstance(bn, nn.BatchNorm2d):
            raise ValueError(f"ChannelParallelBatchNorm2d.from_dense needs an nn.BatchNorm2d, got {type(bn).__name__}")
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, group, master=bn)
        new.train(bn.training)
        tensors = list(bn.parameters()) + [b for b in bn.buffers() if b.is_floating_point()]
        # the dense layer's device and dtype (a model cast to float64 before it is parallelized stays float64)
        return new.to(device=tensors[0].device, dtype=tensors[0].dtype) if tensors else new

    def extra_repr(self) -> str:
        return super().extra_repr() + f", channels {self.num_features}/{self.full_num_features} (tp={self.tp_rank})"
