"""Megatron-LM's tensor-parallel layers (`mpu/layers.py`), with the group passed in explicitly.

Every layer can be built from its dense counterpart (`from_dense`), keeping this rank's slice of the full weight:
that is how a model initialised once on CPU from a seed becomes TP-invariant (Megatron's
`_initialize_affine_weight_cpu`). Building one directly initialises the full master weight the way the dense layer
would, then slices it, with the same effect.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .mappings import (
    copy_to_tp_region,
    gather_from_tp_region,
    group_rank,
    group_size,
    reduce_from_tp_region,
    scatter_to_tp_region,
)
from .sharding import pad_rows, padded_vocab_size, split_for_rank


class _ParallelModule(nn.Module):
    """Common bookkeeping: the group and, per parameter, how it is split (dim, stride) or None if replicated."""

    partition: dict[str, tuple[int, int] | None] = {}

    def _init_group(self, group) -> None:
        self.tp_group = group
        self.tp_size = group_size(group)
        self.tp_rank = group_rank(group)

    def _set_param(self, name: str, full: torch.Tensor | None) -> None:
        if full is None:
            self.register_parameter(name, None)
            return
        spec = self.partition[name]
        local = full if spec is None else split_for_rank(full, spec[0], self.tp_rank, self.tp_size, spec[1])
        param = nn.Parameter(local.detach().clone())
        # Megatron's marker: grad-norm counts a replicated parameter only once per TP group.
        param.tensor_model_parallel = spec is not None
        setattr(self, name, param)

    def _set_linear_params(self, in_features, out_features, bias: bool, master_weight, master_bias) -> None:
        """This rank's slices of a linear layer's full weight and bias: the given ones, else nn.Linear's init."""
        if master_weight is None:
            dense = nn.Linear(in_features, out_features, bias=bias)
            master_weight, master_bias = dense.weight.data, (dense.bias.data if bias else None)
        self._set_param("weight", master_weight)
        self._set_param("bias", master_bias if bias else None)


class ColumnParallelLinear(_ParallelModule):
    """Y = X A^T + b with A split by output rows: weight [out/p, in], bias [out/p].

    `gather_output=False` leaves Y split along its last dim (feeds a RowParallelLinear); `stride` > 1 keeps packed
    projections (fused [Q; K; V]) whole per rank.
    """

    def __init__(self, in_features, out_features, bias=True, gather_output=True, group=None, stride=1,
                 master_weight=None, master_bias=None):
        super().__init__()
        self._init_group(group)
        if out_features % (self.tp_size * stride) != 0:
            raise ValueError(
                f"out_features={out_features} is not divisible by tp_size={self.tp_size} × stride={stride}; "
                "pick a tp_size that divides it."
            )
        self.in_features, self.out_features = in_features, out_features
        self.gather_output, self.stride = gather_output, stride
        self.partition = {"weight": (0, stride), "bias": (0, stride)}
        self._set_linear_params(in_features, out_features, bias, master_weight, master_bias)

    @classmethod
    def from_dense(cls, linear: nn.Linear, group, gather_output=True, stride=1) -> "ColumnParallelLinear":
        return cls(linear.in_features, linear.out_features, linear.bias is not None, gather_output, group, stride,
                   linear.weight.data, None if linear.bias is None else linear.bias.data)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(copy_to_tp_region(x, self.tp_group), self.weight, self.bias)
        if not self.gather_output:
            return y
        y = gather_from_tp_region(y, self.tp_group)
        if self.stride > 1 and self.tp_size > 1:
            # Gathered order is rank-major [r0: s0 s1 s2 | r1: s0 s1 s2]; restore the dense [s0: r0 r1 | s1 ...].
            y = y.unflatten(-1, (self.tp_size, self.stride, -1)).transpose(-3, -2).flatten(-3)
        return y

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}/{self.tp_size}, stride={self.stride}, "
                f"gather_output={self.gather_output}")


class RowParallelLinear(_ParallelModule):
    """Y = X A^T + b with A split by input columns: weight [out, in/p]; bias full, added after the all-reduce."""

    def __init__(self, in_features, out_features, bias=True, input_is_parallel=False, group=None,
                 master_weight=None, master_bias=None):
        super().__init__()
        self._init_group(group)
        if in_features % self.tp_size != 0:
            raise ValueError(
                f"in_features={in_features} is not divisible by tp_size={self.tp_size}; pick a tp_size that divides it."
            )
        self.in_features, self.out_features = in_features, out_features
        self.input_is_parallel = input_is_parallel
        self.partition = {"weight": (1, 1), "bias": None}
        self._set_linear_params(in_features, out_features, bias, master_weight, master_bias)

    @classmethod
    def from_dense(cls, linear: nn.Linear, group, input_is_parallel=True) -> "RowParallelLinear":
        return cls(linear.in_features, linear.out_features, linear.bias is not None, input_is_parallel, group,
                   linear.weight.data, None if linear.bias is None else linear.bias.data)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.input_is_parallel:
            x = scatter_to_tp_region(x, self.tp_group)
        y = reduce_from_tp_region(F.linear(x, self.weight), self.tp_group)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in={self.in_features}/{self.tp_size}, out={self.out_features}, input_is_parallel={self.input_is_parallel}"


class _VocabSharded(_ParallelModule):
    """Rows [vocab_start, vocab_end) of a vocabulary padded to a multiple of `multiple × tp_size`."""

    def _init_vocab(self, num_embeddings: int, group, multiple: int) -> None:
        self._init_group(group)
        self.num_embeddings = num_embeddings
        self.padded_num_embeddings = padded_vocab_size(num_embeddings, self.tp_size, multiple)
        per_rank = self.padded_num_embeddings // self.tp_size
        self.vocab_start_index = self.tp_rank * per_rank
        self.vocab_end_index = self.vocab_start_index + per_rank
        # Columns of this rank's slice that are real vocabulary (the rest is padding).
        self.num_real_local = max(0, min(num_embeddings, self.vocab_end_index) - self.vocab_start_index)
        self.partition = {"weight": (0, 1)}


class VocabParallelEmbedding(_VocabSharded):
    """Embedding whose rows (the vocabulary) are split over the TP ranks; lookups outside this rank's rows give 0
    and an all-reduce adds the ranks' partial results."""

    def __init__(self, num_embeddings, embedding_dim, group=None, multiple=128, master_weight=None):
        super().__init__()
        self._init_vocab(num_embeddings, group, multiple)
        self.embedding_dim = embedding_dim
        if master_weight is None:
            master_weight = nn.Embedding(num_embeddings, embedding_dim).weight.data
        self._set_param("weight", pad_rows(master_weight, self.padded_num_embeddings))

    @classmethod
    def from_dense(cls, embedding: nn.Embedding, group, multiple=128) -> "VocabParallelEmbedding":
        if embedding.padding_idx is not None:
            raise ValueError("VocabParallelEmbedding does not support padding_idx; build the embedding without it.")
        return cls(embedding.num_embeddings, embedding.embedding_dim, group, multiple, embedding.weight.data)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        outside = (input_ids < self.vocab_start_index) | (input_ids >= self.vocab_end_index)
        local_ids = (input_ids - self.vocab_start_index).masked_fill(outside, 0)
        out = F.embedding(local_ids, self.weight)
        if self.tp_size > 1:
            out = out.masked_fill(outside.unsqueeze(-1), 0.0)
        return reduce_from_tp_region(out, self.tp_group)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings} (padded {self.padded_num_embeddings}), {self.embedding_dim}, "
                f"rows [{self.vocab_start_index}, {self.vocab_end_index})")


class VocabParallelLMHead(_VocabSharded):
    """Output projection onto this rank's vocabulary slice (usually tied to a VocabParallelEmbedding), with an
    optional per-token bias split like the rows.

    In training mode it returns this rank's slice of the logits, for the vocab-parallel cross entropy (the full
    logits are never gathered). In eval mode it gathers them and strips the padding, so generation and evaluation
    see the ordinary [..., vocab_size] logits. Padding columns are set to the dtype's minimum so they never win.
    """

    def __init__(self, in_features, num_embeddings, group=None, multiple=128, master_weight=None, bias=False,
                 master_bias=None):
        super().__init__()
        self._init_vocab(num_embeddings, group, multiple)
        self.partition = {"weight": (0, 1), "bias": (0, 1)}
        self.in_features, self.out_features = in_features, num_embeddings
        if master_weight is None:
            dense = nn.Linear(in_features, num_embeddings, bias=bias)
            master_weight, master_bias = dense.weight.data, (dense.bias.data if bias else None)
        self._set_param("weight", pad_rows(master_weight, self.padded_num_embeddings))
        # A per-token output bias (BERT's MLM decoder) is split with the vocabulary like the weight rows.
        self._set_param("bias", pad_rows(master_bias, self.padded_num_embeddings) if bias else None)

    @classmethod
    def from_dense(cls, linear: nn.Linear, group, multiple=128) -> "VocabParallelLMHead":
        bias = linear.bias is not None
        return cls(linear.in_features, linear.out_features, group, multiple, linear.weight.data, bias,
                   linear.bias.data if bias else None)

    @property
    def returns_parallel_logits(self) -> bool:
        return self.training

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = F.linear(copy_to_tp_region(hidden, self.tp_group), self.weight, self.bias)
        if self.num_real_local < logits.shape[-1]:
            logits = torch.cat(
                [logits[..., : self.num_real_local],
                 logits.new_full((*logits.shape[:-1], logits.shape[-1] - self.num_real_local),
                                 torch.finfo(logits.dtype).min)],
                dim=-1,
            )
        if self.returns_parallel_logits:
            return logits
        return gather_from_tp_region(logits, self.tp_group)[..., : self.num_embeddings]

    def extra_repr(self) -> str:
        return (f"{self.in_features} -> {self.num_embeddings} (padded {self.padded_num_embeddings}), "
                f"rows [{self.vocab_start_index}, {self.vocab_end_index})")
