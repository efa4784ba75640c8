"""`from_pretrained(..., tp_size=N)` and TP-agnostic `save_pretrained` for every adlr_hf `PreTrainedModel`.

Checkpoints never record the TP degree: saving gathers the shards (every TP rank must call `save_pretrained`;
rank 0 of the TP group writes) and loading shards the full weights for the requested degree.
"""

from __future__ import annotations

from .plan import apply_tp_plan, gather_state_dict, is_tensor_parallel, tp_rank_and_size
from .random import checkpoint_rng_contexts
from .state import get_parallel_state, init_parallel


class TensorParallelMixin:
    """Mixed into `<Family>PreTrainedModel` before `PreTrainedModel`."""

    @classmethod
    def from_pretrained(cls, *args, tp_size: int | None = None, **kwargs):
        if kwargs.get("distributed_config") is not None:
            # transformers' own TP shards the weights itself (DTensor); ours must not shard them again.
            if tp_size not in (None, 1):
                raise ValueError(f"tp_size={tp_size} and distributed_config are two ways to shard the same model; "
                                 "pass only one of them.")
            return super().from_pretrained(*args, **kwargs)
        model = super().from_pretrained(*args, **kwargs)
        state = get_parallel_state()
        if tp_size is None:
            tp_size = state.tp_size if state is not None else 1
        if tp_size > 1:
            model.parallelize(tp_size)
        return model

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, every_n_layers: int = 1,
                                        offload: bool = False):
        """transformers' activation checkpointing, non-reentrant by default, with the TP dropout stream replayed in
        the recompute (`checkpoint_rng_contexts`). With `use_reentrant=True` only the default generator is
        replayed, so attention dropout at TP>1 would draw other masks in backward; keep the default there."""
        kwargs = {"use_reentrant": False, **(activation_checkpointing_kwargs or {})}
        if not kwargs["use_reentrant"]:
            kwargs.setdefault("context_fn", checkpoint_rng_contexts)
        return super().activation_checkpointing_enable(kwargs, every_n_layers=every_n_layers, offload=offload)

    def parallelize(self, tp_size: int):
        """Shard this model in place over the TP group of `init_parallel(tp_size)` (created if needed)."""
        state = init_parallel(tp_size)
        apply_tp_plan(self, state.tp_group)
        return self

    def save_pretrained(self, save_directory, *args, is_main_process: bool = True, state_dict=None, **kwargs):
        if is_tensor_parallel(self):
            if state_dict is None:
                state_dict = gather_state_dict(self)
            tp_rank, _ = tp_rank_and_size(self)
            if tp_rank != 0:
                return None
        return super().save_pretrained(save_directory, *args, is_main_process=is_main_process,
                                       state_dict=state_dict, **kwargs)
