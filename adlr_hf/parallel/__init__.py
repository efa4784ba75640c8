"""Megatron-LM intra-layer (tensor) model parallelism with explicit process groups."""

from .conv import ChannelParallelBatchNorm2d, ColumnParallelConv2d, RowParallelConv2d
from .cross_entropy import lm_cross_entropy, vocab_parallel_cross_entropy
from .layers import ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding, VocabParallelLMHead
from .mappings import copy_to_tp_region, gather_from_tp_region, reduce_from_tp_region, scatter_to_tp_region
from .plan import STYLES, apply_tp_plan, full_tp_plan, gather_state_dict, is_tensor_parallel, shard_state_dict
from .pretrained import TensorParallelMixin
from .random import checkpoint_rng_contexts, get_rng_tracker, model_parallel_seed, tp_rng_fork
from .state import MegatronMPU, ParallelState, destroy_parallel, get_parallel_state, init_parallel

__all__ = [
    "STYLES", "ChannelParallelBatchNorm2d", "ColumnParallelConv2d", "ColumnParallelLinear", "MegatronMPU",
    "ParallelState", "RowParallelConv2d", "RowParallelLinear", "TensorParallelMixin", "VocabParallelEmbedding",
    "VocabParallelLMHead", "apply_tp_plan", "checkpoint_rng_contexts", "copy_to_tp_region", "destroy_parallel",
    "full_tp_plan", "gather_from_tp_region", "gather_state_dict", "get_parallel_state", "get_rng_tracker",
    "init_parallel", "is_tensor_parallel", "lm_cross_entropy", "model_parallel_seed", "reduce_from_tp_region",
    "scatter_to_tp_region", "shard_state_dict", "tp_rng_fork", "vocab_parallel_cross_entropy",
]
