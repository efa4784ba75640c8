"""How an offline evaluation spreads over the data-parallel ranks under a launcher: each rank scores every dp_size-th
item, and every rank ends with the records of all ranks (so every rank returns the same metrics). Without a launcher
there is one rank."""

from __future__ import annotations

import torch.distributed as dist

from ..parallel.state import get_parallel_state


def rank_share(items: list) -> list:
    """This data-parallel rank's items: every dp_size-th, starting at its dp rank."""
    state = get_parallel_state()
    return items if state is None else items[state.dp_rank::state.dp_size]


def gather_records(records: list) -> list:
    """The records of every data-parallel rank, rank after rank (on every rank)."""
    state = get_parallel_state()
    if state is None or state.dp_size == 1:
        return records
    parts = [None] * state.dp_size
    dist.all_gather_object(parts, records, group=state.dp_group)
    return [record for part in parts for record in part]


def shows_progress(progress: bool) -> bool:
    """Whether this process draws the progress bar (the global rank 0 only)."""
    state = get_parallel_state()
    return progress and (state is None or state.rank == 0)
