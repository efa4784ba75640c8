"""Stopping a run on SIGTERM / SIGINT (a scheduler's pre-emption, Ctrl-C) with a checkpoint instead of a traceback.

While the training loop runs, the first signal only sets a flag; at the next step boundary every rank learns of it
(one all-reduce of a flag per step, so ranks that got the signal at different moments stop at the same step), saves a
checkpoint and leaves with `TrainingStopped`. A second signal exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import torch
import torch.distributed as dist

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingStopped(Exception):
    """The run stopped at a step boundary on a signal; its checkpoint is complete."""

    def __init__(self, signum: int, step: int, checkpoint):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopOnSignal:
    """Context manager that turns SIGTERM / SIGINT into a stop request (see the module docstring)."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False

    def _handle(self, signum, frame):
        if self.received is not None:  # a second signal: leave now
            os._exit(128 + signum)
        self.received = signum
        print(f"adlr_hf.train: {signal.Signals(signum).name} received; saving a checkpoint after this step "
              "(send it again to exit at once)", file=sys.stderr, flush=True)

    def requested(self) -> int | None:
        """The signal any rank received so far (the same answer on every rank), or None."""
        flag = torch.tensor([self.received or 0], dtype=torch.int64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None
