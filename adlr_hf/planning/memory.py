"""Bytes of weights, gradients and optimizer state on one rank under ZeRO (Rajbhandari et al., "ZeRO: Memory
Optimizations Toward Training Trillion Parameter Models", arXiv 1910.02054, §5 and Figure 1), as DeepSpeed lays them
out (`setup.py`).

With Ψ the parameters of this rank's TP shard, N the data-parallel size, w / g the bytes of a weight / gradient
element and K the optimizer's fp32 bytes per parameter (master copy 4 + Adam moments 8 = 12 in mixed precision):

    stage 0:  w·Ψ + g·Ψ + K·Ψ          (the paper's baseline, (2 + 2 + K)·Ψ in mixed precision)
    stage 1:  w·Ψ + g·Ψ + K·Ψ/N        (P_os)
    stage 2:  w·Ψ + g·Ψ/N + K·Ψ/N      (P_os+g)
    stage 3:  (w + g + K)·Ψ/N          (P_os+g+p)

DeepSpeed differs from the paper in three places, which the model follows (runtime/zero/stage_1_and_2.py):
ZeRO-1 reduces gradients into partitions during the backward of the micro-step that ends an accumulation, so only
with gradient accumulation > 1 does it hold full gradients; ZeRO 1-3 keep an fp32 master copy of the partition also
for an fp32 model (K = 4 + 8 there as well); a partition is ceil(Ψ/N) elements. An fp32 model without ZeRO has no
master copy (K = 8). ZeRO 1-2 also hold `reduce_bucket_size` elements of gradient buckets, two with `overlap_comm`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .setup import TrainingSetup


@dataclass(frozen=True)
class StateMemory:
    """Bytes on one rank. `step_transient`: the fp32 gradient of the master copy that exists only while the
    optimizer steps (after the activations are gone)."""

    parameters: int
    gradients: int
    master_weights: int
    optimizer_states: int
    zero_buffers: int
    step_transient: int

    @property
    def optimizer(self) -> int:
        return self.master_weights + self.optimizer_states

    @property
    def resident(self) -> int:
        """What stays allocated through a whole step."""
        return self.parameters + self.gradients + self.optimizer + self.zero_buffers

    def as_dict(self) -> dict:
        return {**asdict(self), "optimizer": self.optimizer, "resident": self.resident}


def partition(elements: int, dp: int) -> int:
    """Elements of one data-parallel partition (DeepSpeed pads the flat buffer to N equal parts)."""
    return -(-elements // dp)


def state_memory(params: int, setup: TrainingSetup, dp: int, grad_accum: int) -> StateMemory:
    """Per-rank bytes for `params` parameters on this rank (its TP shard) under `setup`, data-parallel over `dp`."""
    stage, part = setup.zero_stage, partition(params, dp)
    weights = part if stage == 3 else params
    bf16_optimizer = stage == 1 and setup.precision == "bf16" and setup.grad_bytes == 4  # DeepSpeed's BF16_Optimizer
    if stage == 0 or bf16_optimizer or (stage == 1 and grad_accum > 1):
        grads = params
    else:
        grads = part
    owned = params if stage == 0 else part
    master = 4 * owned if setup.master_copy else 0
    return StateMemory(
        parameters=setup.param_bytes * weights,
        gradients=setup.grad_bytes * grads,
        master_weights=master,
        optimizer_states=setup.optimizer_state_bytes * owned,
        zero_buffers=setup.bucket_buffers * setup.bucket_elements * setup.grad_bytes,
        step_transient=4 * owned if setup.master_copy else 0,
    )
