"""RNG streams for dropout under tensor parallelism (Megatron-LM `mpu/random.py`).

The default generator is seeded identically on every TP rank, so dropout on replicated activations (embeddings,
after a row-parallel all-reduce) keeps the TP replicas bit-identical. Dropout on activations that are *split*
across ranks (attention probabilities of this rank's heads) must differ per rank: it runs inside
`get_rng_tracker().fork()`, a stream seeded with `seed + 2718 + tp_rank`.
"""

from __future__ import annotations

import contextlib

import torch

MODEL_PARALLEL_RNG = "model-parallel-rng"
TP_SEED_OFFSET = 2718


class RNGStatesTracker:
    """Named generator states that can be swapped in around a block of code (CPU and, if present, CUDA)."""

    def __init__(self):
        self.states: dict[str, dict[str, torch.Tensor]] = {}

    def reset(self) -> None:
        self.states = {}

    def add(self, name: str, seed: int) -> None:
        if name in self.states:
            raise ValueError(f"RNG state {name!r} already exists; call reset() first")
        saved = _capture()
        torch.manual_seed(seed)
        self.states[name] = _capture()
        _restore(saved)

    def get_states(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {k: v.clone() for k, v in state.items()} for name, state in self.states.items()}

    def set_states(self, states: dict[str, dict[str, torch.Tensor]]) -> None:
        self.states = {name: dict(state) for name, state in states.items()}

    @contextlib.contextmanager
    def fork(self, name: str = MODEL_PARALLEL_RNG):
        """Run the block on the named stream; a no-op when the stream was never seeded (plain single process)."""
        if name not in self.states:
            yield
            return
        saved = _capture()
        _restore(self.states[name])
        try:
            yield
        finally:
            self.states[name] = _capture()
            _restore(saved)


def _capture() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


_TRACKER = RNGStatesTracker()


def get_rng_tracker() -> RNGStatesTracker:
    return _TRACKER


def model_parallel_seed(seed: int, tp_rank: int) -> None:
    """Seed the replicated stream with `seed` and the per-TP-rank stream with `seed + 2718 + tp_rank`."""
    torch.manual_seed(seed)
    _TRACKER.reset()
    _TRACKER.add(MODEL_PARALLEL_RNG, seed + TP_SEED_OFFSET + tp_rank)


def tp_rng_fork():
    """Context for dropout on TP-split activations."""
    return _TRACKER.fork(MODEL_PARALLEL_RNG)


def checkpoint_rng_contexts():
    """`context_fn` for `torch.utils.checkpoint` (non-reentrant): the recompute sees the tracker's streams as the
    forward did.

    Checkpointing replays the default generator by itself, but not the tracker's per-TP-rank stream, which the
    forward has advanced by the time backward recomputes a layer: without this, the recomputed attention dropout
    would draw other masks than the forward (Megatron-LM's `CheckpointFunction` saves the tracker states the same
    way).
    """
    snapshot: dict = {}

    @contextlib.contextmanager
    def forward():
        snapshot.update(_TRACKER.get_states())
        yield

    @contextlib.contextmanager
    def recompute():
        live = _TRACKER.get_states()
        _TRACKER.set_states(snapshot)
        try:
            yield
        finally:
            _TRACKER.set_states(live)

    return forward(), recompute()
