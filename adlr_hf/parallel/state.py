"""Process groups for Megatron-style tensor parallelism (TP) combined with data parallelism (DP).

Megatron-LM `mpu/initialize.py`: TP groups are blocks of consecutive ranks (kept inside one node, where the
all-reduces are cheap); DP groups take every `tp_size`-th rank. The groups are created once per process from the
launcher's environment (torchrun, deepspeed, accelerate all export RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ParallelState:
    """Where this process sits in the TP × DP grid. Groups are None in a single process."""

    world_size: int
    rank: int
    tp_size: int
    tp_rank: int
    dp_size: int
    dp_rank: int
    tp_group: "dist.ProcessGroup | None"
    dp_group: "dist.ProcessGroup | None"

    @property
    def tp_src_rank(self) -> int:
        """Global rank of the first member of this process's TP group (the one that broadcasts shared data)."""
        return self.rank - self.tp_rank


_STATE: ParallelState | None = None


def _world_from_env() -> tuple[int, int]:
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def tp_groups_for(world_size: int, tp_size: int) -> list[list[int]]:
    """Consecutive blocks of `tp_size` ranks."""
    return [list(range(start, start + tp_size)) for start in range(0, world_size, tp_size)]


def dp_groups_for(world_size: int, tp_size: int) -> list[list[int]]:
    """Ranks strided by `tp_size`: the same TP slot of every model replica."""
    return [list(range(slot, world_size, tp_size)) for slot in range(tp_size)]


def check_tp_size(tp_size: int, world_size: int) -> None:
    if not isinstance(tp_size, int) or tp_size < 1:
        raise ValueError(f"tp_size={tp_size!r} is not a positive integer; pass 1 for no tensor parallelism.")
    if world_size % tp_size != 0:
        divisors = [d for d in range(1, world_size + 1) if world_size % d == 0]
        raise ValueError(
            f"tp_size={tp_size} does not divide the world size {world_size}; "
            f"choose one of {divisors} or launch a multiple of {tp_size} processes."
        )


def _timeout_kwargs(timeout: float | None) -> dict:
    import datetime

    return {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}


def init_parallel(tp_size: int = 1, backend: str | None = None, timeout: float | None = None) -> ParallelState:
    """Create (once) the TP and DP groups for this process and return them.

    Uses an already initialised default process group (DeepSpeed, Accelerate) or initialises one with `env://`.
    A plain single process needs no process group and gets `tp_size=1` with groups set to None.
    Calling it again with the same `tp_size` returns the same state; another `tp_size` is an error, because
    re-creating groups under a running launcher can hang. `timeout` (seconds) bounds each collective of the groups
    (torch's default otherwise), so a dead rank makes the others fail instead of waiting.
    """
    global _STATE
    world_size, _ = _world_from_env()
    if dist.is_available() and dist.is_initialized():
        world_size = dist.get_world_size()
    check_tp_size(tp_size, world_size)
    if _STATE is not None:
        if _STATE.tp_size != tp_size:
            raise ValueError(
                f"the parallel state already has tp_size={_STATE.tp_size}; cannot switch to tp_size={tp_size} "
                "in the same process. Start a new process for another TP degree."
            )
        return _STATE
    if world_size == 1:
        _STATE = ParallelState(1, 0, 1, 0, 1, 0, None, None)
        return _STATE
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available() and backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, init_method="env://", **_timeout_kwargs(timeout))
    rank = dist.get_rank()
    tp_group = dp_group = None
    # Every rank must take part in creating every group, in the same order.
    for ranks in tp_groups_for(world_size, tp_size):
        group = dist.new_group(ranks, **_timeout_kwargs(timeout))
        if rank in ranks:
            tp_group = group
    for ranks in dp_groups_for(world_size, tp_size):
        group = dist.new_group(ranks, **_timeout_kwargs(timeout))
        if rank in ranks:
            dp_group = group
    _STATE = ParallelState(
        world_size=world_size,
        rank=rank,
        tp_size=tp_size,
        tp_rank=rank % tp_size,
        dp_size=world_size // tp_size,
        dp_rank=rank // tp_size,
        tp_group=tp_group,
        dp_group=dp_group,
    )
    return _STATE


def get_parallel_state() -> ParallelState | None:
    """The state made by `init_parallel`, or None when it was never called in this process."""
    return _STATE


def destroy_parallel() -> None:
    """Forget the groups (tests and notebooks); the default process group is left to its owner."""
    global _STATE
    _STATE = None


class MegatronMPU:
    """The `mpu` object DeepSpeed expects (`deepspeed.initialize(mpu=...)`): model parallel = TP here."""

    def __init__(self, state: ParallelState):
        self.state = state

    def get_model_parallel_rank(self) -> int:
        return self.state.tp_rank

    def get_model_parallel_world_size(self) -> int:
        return self.state.tp_size

    def get_model_parallel_group(self):
        return self.state.tp_group

    def get_data_parallel_rank(self) -> int:
        return self.state.dp_rank

    def get_data_parallel_world_size(self) -> int:
        return self.state.dp_size

    def get_data_parallel_group(self):
        return self.state.dp_group

    # Newer DeepSpeed releases ask with Megatron-Core's names.
    get_tensor_model_parallel_rank = get_model_parallel_rank
    get_tensor_model_parallel_world_size = get_model_parallel_world_size
    get_tensor_model_parallel_group = get_model_parallel_group


def barrier() -> None:
    """Wait for every rank of the default group (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rank0_first(fn, is_main: bool):
    """Run `fn` on rank 0 first (it fills caches), then on the other ranks (they read them)."""
    result = fn() if is_main else None
    barrier()
    return result if is_main else fn()
