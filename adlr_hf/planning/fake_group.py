"""A tensor-parallel group of any size in one process, with no real ranks: torch's "fake" process-group backend.

`apply_tp_plan` asks its group for the TP size and this process's rank in it; a fake group answers both, so one
process can build rank r of a TP=N model on the meta device. Its collectives move nothing (the planner's trace
records them instead; `collectives.py`).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch.distributed as dist


def _register_fake_backend() -> None:
    if "fake" not in dist.Backend.backend_list:
        import torch.testing._internal.distributed.fake_pg  # noqa: F401 - registers the "fake" backend


@contextmanager
def fake_tp_group(rank: int, size: int):
    """The default process group of a fake world of `size` ranks seen from `rank`, for the duration of the block."""
    if dist.is_initialized():
        raise ValueError("adlr-hf plan builds each TP rank with a fake process group and needs a process without "
                         "one; run the plan in its own process, not inside a launched (torchrun/deepspeed) job.")
    from torch._C._distributed_c10d import FakeStore

    _register_fake_backend()
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=size)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()
