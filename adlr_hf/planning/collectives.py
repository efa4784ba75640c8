"""Counting the bytes that pass through `torch.distributed`'s collectives.

`CollectiveLog.install()` wraps the collective functions of `torch.distributed` (all_reduce, reduce, broadcast,
all_gather, all_gather_into_tensor, reduce_scatter, reduce_scatter_tensor and their older `_base` names). Each call
is recorded as (operation, payload bytes, the group's ranks, a tag) while `recording()` is active. In `trace` mode
the call itself is skipped (the planner's meta-device trace: there is nothing to move); otherwise it runs as usual
(a measured run).

Install before a library captures a function object: DeepSpeed keeps `torch.distributed.all_gather_into_tensor`
and `reduce_scatter_tensor` from the moment its communication backend is created (`deepspeed.init_distributed`).

Sizes follow NVIDIA nccl-tests (doc/PERFORMANCE.md): the payload of an all-gather is its whole output, of a
reduce-scatter its whole input, otherwise the tensor itself. `wire_bytes` converts payload to the bytes one rank
sends with ring/tree algorithms, nccl-tests' "bus bandwidth" factors: all-reduce 2(n-1)/n, all-gather and
reduce-scatter (n-1)/n, broadcast and reduce 1. A collective over one rank moves nothing and counts zero.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

# function name -> (operation, how to read its payload tensors from the bound arguments)
_PAYLOAD = {
    "all_reduce": ("all_reduce", lambda a: [a["tensor"]]),
    "reduce": ("reduce", lambda a: [a["tensor"]]),
    "broadcast": ("broadcast", lambda a: [a["tensor"]]),
    "all_gather": ("all_gather", lambda a: list(a["tensor_list"])),
    "all_gather_into_tensor": ("all_gather", lambda a: [a["output_tensor"]]),
    "_all_gather_base": ("all_gather", lambda a: [a["output_tensor"]]),
    "reduce_scatter": ("reduce_scatter", lambda a: list(a["input_list"])),
    "reduce_scatter_tensor": ("reduce_scatter", lambda a: [a["input"]]),
    "_reduce_scatter_base": ("reduce_scatter", lambda a: [a["input"]]),
    "all_reduce_coalesced": ("all_reduce", lambda a: list(a["tensors"])),
}


def wire_factor(op: str, group_size: int) -> float:
    """Bytes one rank sends per payload byte (nccl-tests' bus-bandwidth factors)."""
    n = group_size
    if n <= 1:
        return 0.0
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter"):
        return (n - 1) / n
    return 1.0


@dataclass(frozen=True)
class Record:
    op: str
    payload_bytes: int
    ranks: tuple[int, ...]
    dtype: torch.dtype
    tag: tuple = ()

    @property
    def group_size(self) -> int:
        return len(self.ranks)

    @property
    def wire_bytes(self) -> float:
        return self.payload_bytes * wire_factor(self.op, self.group_size)


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _group_ranks(group) -> tuple[int, ...]:
    if group is None or group is dist.group.WORLD:
        return tuple(range(dist.get_world_size()))
    return tuple(dist.get_process_group_ranks(group))


class CollectiveLog:
    """Records collectives while `recording()` is active; `tagger()` (if set) labels each record."""

    def __init__(self, trace: bool = False):
        self.trace = trace
        self.records: list[Record] = []
        self.tagger = None
        self._active = False
        self._originals: dict[str, object] = {}

    def install(self) -> "CollectiveLog":
        for name in _PAYLOAD:
            original = getattr(dist, name, None)
            if original is None or name in self._originals:
                continue
            self._originals[name] = original
            setattr(dist, name, self._wrap(name, original))
        return self

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(dist, name, original)
        self._originals.clear()

    def _wrap(self, name: str, original):
        op, payload = _PAYLOAD[name]
        signature = inspect.signature(original)

        def wrapper(*args, **kwargs):
            if self._active:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                tensors = payload(bound.arguments)
                tag = self.tagger() if self.tagger is not None else ()
                self.records.append(Record(op, _nbytes(tensors), _group_ranks(bound.arguments.get("group")),
                                           tensors[0].dtype if tensors else torch.float32, tag))
                if self.trace:
                    return None
            return original(*args, **kwargs)

        wrapper.__wrapped__ = original
        wrapper.__name__ = name
        return wrapper

    @contextmanager
    def recording(self):
        self._active = True
        try:
            yield self
        finally:
            self._active = False

    def clear(self) -> None:
        self.records.clear()

    def summary(self, ranks: tuple[int, ...] | None = None) -> dict:
        """Payload and wire bytes, in total and per operation, of the records over `ranks` (a group's members;
        None: every group), leaving out single-rank groups."""
        chosen = [r for r in self.records if r.group_size > 1 and (ranks is None or r.ranks == tuple(ranks))]
        ops: dict[str, dict] = {}
        for record in chosen:
            entry = ops.setdefault(record.op, {"calls": 0, "payload_bytes": 0, "wire_bytes": 0.0})
            entry["calls"] += 1
            entry["payload_bytes"] += record.payload_bytes
            entry["wire_bytes"] += record.wire_bytes
        return {"payload_bytes": sum(r.payload_bytes for r in chosen),
                "wire_bytes": sum(r.wire_bytes for r in chosen), "ops": ops}


@contextmanager
def counting_collectives(trace: bool = False):
    """Install a `CollectiveLog` for the duration of the block (recording starts with `log.recording()`)."""
    log = CollectiveLog(trace=trace).install()
    try:
        yield log
    finally:
        log.uninstall()
