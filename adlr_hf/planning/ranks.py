"""Each TP rank's model, built on the meta device (no memory, no initialisation cost) and sharded by the family's own
TP plan (`adlr_hf.parallel.apply_tp_plan`) through a fake process group of the TP size (`fake_group.py`): the
planner counts what `apply_tp_plan` actually keeps on a rank, vocabulary padding included, instead of a formula.

Ranks whose parameters have the same shapes are one entry (`RankShape`); only the first of each is traced.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from .fake_group import fake_tp_group


@dataclass
class RankShape:
    tp_ranks: list[int]
    parameters: int            # elements on the rank, tied tensors once, vocabulary padding included
    split: int                 # of which split over the TP group
    replicated: int            # of which whole on every TP rank
    padded_vocab: int | None   # rows of the vocab-parallel embedding (all ranks together), None without one
    signature: tuple = field(repr=False, default=())
    trace: dict | None = None


def build_meta_model(model_class, config):
    with torch.device("meta"):
        return model_class(config)


def _unique_parameters(model):
    seen, out = set(), []
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) not in seen:
            seen.add(id(param))
            out.append((name, param))
    return out


def _describe(model) -> tuple[tuple, int, int, int | None]:
    params = _unique_parameters(model)
    signature = tuple((name, tuple(p.shape)) for name, p in params)
    split = sum(p.numel() for _, p in params if getattr(p, "tensor_model_parallel", False))
    total = sum(p.numel() for _, p in params)
    padded = next((m.padded_num_embeddings for m in model.modules() if hasattr(m, "padded_num_embeddings")), None)
    return signature, total, split, padded


def rank_shapes(model_class, config, tp: int, trace=None) -> list[RankShape]:
    """One `RankShape` per distinct set of parameter shapes over TP ranks 0..tp-1. `trace(model, group)` is called
    on the first rank of each, inside its fake group, and its result kept in `RankShape.trace`."""
    from ..parallel.plan import apply_tp_plan

    shapes: dict[tuple, RankShape] = {}
    for rank in range(tp):
        model = build_meta_model(model_class, config)
        with fake_tp_group(rank, tp) if tp > 1 else contextlib.nullcontext() as group:
            if tp > 1:
                apply_tp_plan(model, group)
            signature, total, split, padded = _describe(model)
            if signature in shapes:
                shapes[signature].tp_ranks.append(rank)
                continue
            entry = RankShape([rank], total, split, total - split, padded, signature)
            if trace is not None:
                entry.trace = trace(model, group)
            shapes[signature] = entry
    return list(shapes.values())

