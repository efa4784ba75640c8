"""The layout a plan is made for (TP × DP ranks on nodes, micro-batch, accumulation, sequence length) and its
checks: each bad value gets one error naming it and the fix, before anything is computed or written."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..checks import check_int

DEFAULT_GPUS_PER_NODE = 8


@dataclass(frozen=True)
class Layout:
    tp: int
    dp: int
    micro_batch_size: int
    grad_accum: int
    seq_len: int
    gpus_per_node: int
    nodes: int
    activation_checkpointing: bool = False

    @property
    def world(self) -> int:
        return self.tp * self.dp

    @property
    def global_batch_size(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.dp

    def as_dict(self) -> dict:
        return {**asdict(self), "world": self.world, "global_batch_size": self.global_batch_size}


def _batch(micro: int, grad_accum: int | None, global_batch: int | None, dp: int) -> int:
    """Gradient accumulation steps that make micro × accumulation × DP the global batch (1 when neither is given)."""
    if global_batch is None:
        return 1 if grad_accum is None else grad_accum
    per_step = micro * dp
    if global_batch % per_step:
        raise ValueError(f"micro-batch {micro} × DP {dp} = {per_step} sequences per micro-step does not fit the global "
                         f"batch {global_batch}: it must divide it. Choose --micro-batch-size and --dp whose product "
                         f"divides {global_batch}, or another --global-batch-size.")
    accum = global_batch // per_step
    if grad_accum is not None and grad_accum != accum:
        raise ValueError(f"--grad-accum {grad_accum} gives a global batch of {per_step * grad_accum}, not "
                         f"--global-batch-size {global_batch}; pass --grad-accum {accum} or drop one of the two.")
    return accum


def resolve_layout(tp: int, dp: int, micro_batch_size: int, seq_len: int, grad_accum: int | None = None,
                   global_batch_size: int | None = None, gpus_per_node: int | None = None, nodes: int | None = None,
                   activation_checkpointing: bool = False) -> Layout:
    check_int("--tp", tp, 1)
    check_int("--dp", dp, 1)
    check_int("--micro-batch-size", micro_batch_size, 1)
    check_int("--seq-len", seq_len, 1)
    for flag, value in (("--grad-accum", grad_accum), ("--global-batch-size", global_batch_size),
                        ("--gpus-per-node", gpus_per_node), ("--nodes", nodes)):
        if value is not None:
            check_int(flag, value, 1)
    accum = _batch(micro_batch_size, grad_accum, global_batch_size, dp)
    world = tp * dp
    if gpus_per_node is None:
        gpus_per_node = min(world, DEFAULT_GPUS_PER_NODE)
    if world % gpus_per_node:
        raise ValueError(f"TP {tp} × DP {dp} = {world} GPUs is not a multiple of --gpus-per-node {gpus_per_node}, so "
                         f"the job does not fill whole nodes; choose TP × DP as a multiple of {gpus_per_node} or pass "
                         "the per-node GPU count of your machines.")
    if nodes is not None and nodes * gpus_per_node != world:
        raise ValueError(f"--nodes {nodes} × --gpus-per-node {gpus_per_node} = {nodes * gpus_per_node} GPUs, but "
                         f"TP {tp} × DP {dp} = {world}; pass --nodes {world // gpus_per_node} or change --dp.")
    return Layout(tp=tp, dp=dp, micro_batch_size=micro_batch_size, grad_accum=accum, seq_len=seq_len,
                  gpus_per_node=gpus_per_node, nodes=world // gpus_per_node,
                  activation_checkpointing=activation_checkpointing)
