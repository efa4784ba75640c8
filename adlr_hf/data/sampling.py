"""Sharding samples over data-parallel ranks only, resumable mid-epoch, shared by every data pipeline.

TP ranks of one model replica pass the same `dp_rank` and therefore read identical batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from ..checks import check_int


class DPSampler(Sampler[int]):
    """Indices of one data-parallel rank's shard, reshuffled each epoch, resumable mid-epoch.

    Epoch `e` uses `torch.randperm(dataset_len)` seeded with `seed + e` (DistributedSampler's rule), identical on
    every rank; rank `r` takes positions `r, r + dp_size, ...`. `drop_last=True` first cuts the permutation to a
    multiple of dp_size (shards disjoint; up to dp_size - 1 samples skipped per epoch); `drop_last=False` pads it by
    repeating its start (every sample seen, a few twice). TP ranks of one replica pass the same dp_rank.

    Resume: the sampler holds a resume position (`epoch`, `start_index`): while `self.epoch` equals that epoch the
    first `start_index` samples of the shard are skipped; other epochs start at 0. So the usual loop
    `for e in range(sampler.epoch, n): sampler.set_epoch(e); ...` resumes exactly where a run stopped.
    """

    def __init__(self, dataset_len: int, dp_rank: int, dp_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, epoch: int = 0, start_index: int = 0):
        check_int("dataset_len", dataset_len, 0)
        check_int("dp_size", dp_size, 1)
        if isinstance(dp_rank, bool) or not isinstance(dp_rank, int) or not 0 <= dp_rank < dp_size:
            raise ValueError(f"dp_rank={dp_rank!r} must be an int in [0, dp_size={dp_size})")
        check_int("seed", seed, 0)
        check_int("epoch", epoch, 0)
        self.dataset_len, self.dp_rank, self.dp_size = dataset_len, dp_rank, dp_size
        self.seed, self.shuffle, self.drop_last = seed, bool(shuffle), bool(drop_last)
        if drop_last:
            self.samples_per_rank = dataset_len // dp_size
        else:
            self.samples_per_rank = math.ceil(dataset_len / dp_size)
        self.epoch = epoch
        self.resume_from(epoch, start_index)

    def resume_from(self, epoch: int, start_index: int) -> None:
        """Set the resume position: in `epoch`, skip the first `start_index` samples of this rank's shard."""
        check_int("epoch", epoch, 0)
        if isinstance(start_index, bool) or not isinstance(start_index, int) or \
                not 0 <= start_index <= self.samples_per_rank:
            raise ValueError(f"start_index={start_index!r} must be an int in [0, {self.samples_per_rank}] "
                             "(the samples in this rank's shard)")
        self._resume_epoch, self._resume_index = epoch, start_index

    def set_epoch(self, epoch: int) -> None:
        check_int("epoch", epoch, 0)
        self.epoch = epoch

    @property
    def start_index(self) -> int:
        """Samples skipped at the start of the current epoch."""
        return self._resume_index if self.epoch == self._resume_epoch else 0

    def __len__(self) -> int:
        return self.samples_per_rank - self.start_index

    def __iter__(self) -> Iterator[int]:
        n = self.dataset_len
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        total = self.samples_per_rank * self.dp_size
        if total > n:  # drop_last=False: pad by repeating the start of the order
            order += (order * math.ceil((total - n) / max(n, 1)))[: total - n]
        shard = order[self.dp_rank:total:self.dp_size]
        return iter(shard[self.start_index:])


def dp_sampler(dataset_len: int, dp_rank: int, dp_size: int, seed: int, shuffle: bool = True, *,
               drop_last: bool = True, epoch: int = 0, start_index: int = 0) -> DPSampler:
    """The sampler of data-parallel rank `dp_rank` of `dp_size` (see `DPSampler`)."""
    return DPSampler(dataset_len, dp_rank, dp_size, seed=seed, shuffle=shuffle, drop_last=drop_last, epoch=epoch,
                     start_index=start_index)


def steps_per_epoch(dataset_len: int, micro_batch_size: int, dp_size: int, drop_last: bool = True) -> int:
    """Micro-batches each DP rank gets per epoch from `make_lm_dataloader` with the same arguments."""
    check_int("micro_batch_size", micro_batch_size, 1)
    check_int("dp_size", dp_size, 1)
    per_rank = dataset_len // dp_size if drop_last else math.ceil(dataset_len / dp_size)
    return per_rank // micro_batch_size if drop_last else math.ceil(per_rank / micro_batch_size)



def make_dp_dataloader(dataset: Any, micro_batch_size: int, dp_rank: int, dp_size: int, seed: int,
                       collate_fn: Callable, start_step: int = 0, drop_last: bool = True, *, shuffle: bool = True,
                       num_workers: int = 0, pin_memory: bool = False, what: str = "samples") -> DataLoader:
    """A DataLoader of this DP rank's micro-batches, positioned at `start_step` (micro-batches this rank already
    consumed since the start of training, across epochs).

    Its `sampler` (a `DPSampler`) starts in epoch `start_step // steps_per_epoch(...)` at the right offset; call
    `loader.sampler.set_epoch(e)` before each epoch as with DistributedSampler. `drop_last=True` drops the tail that
    does not divide over the ranks and each rank's final partial micro-batch; `drop_last=False` pads the shards and
    keeps the partial batch (for evaluation, with shuffle=False).
    """
    check_int("micro_batch_size", micro_batch_size, 1)
    check_int("start_step", start_step, 0)
    n = len(dataset)
    steps = steps_per_epoch(n, micro_batch_size, dp_size, drop_last)
    if steps == 0:
        raise ValueError(f"the dataset has {n} {what}: with dp_size={dp_size} and micro_batch_size="
                         f"{micro_batch_size} each rank gets no full micro-batch; use more data, a smaller "
                         "micro_batch_size or drop_last=False")
    epoch, step_in_epoch = divmod(start_step, steps)
    sampler = dp_sampler(n, dp_rank, dp_size, seed, shuffle, drop_last=drop_last, epoch=epoch,
                         start_index=step_in_epoch * micro_batch_size)
    # The loader's own generator: creating an iterator (each epoch, on resume, every evaluation) draws a base seed
    # from it; from the global generator that draw would shift the dropout stream and break exact resume.
    return DataLoader(dataset, batch_size=micro_batch_size, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))
