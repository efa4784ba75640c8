"""What every adlr_hf model file shares: the tensor-parallel pieces, with single-process stand-ins.

Each family folder carries this file (a symlink to `adlr_hf/models/shared/modeling_adlr.py`), because transformers'
remote code copies a model file together with the files it imports with a single dot. With adlr_hf installed the
names below are adlr_hf's own (one class object per process); in a published folder loaded with
`trust_remote_code=True` where adlr_hf is absent, the model runs on one process and the stand-ins apply.
"""

from __future__ import annotations

import torch.nn.functional as F

try:  # Tensor-parallel pieces; without adlr_hf installed the model runs on one process.
    from adlr_hf.parallel import TensorParallelMixin, lm_cross_entropy, tp_rng_fork
except ImportError:  # pragma: no cover - exercised by the remote-code tests in a clean interpreter
    import contextlib

    class TensorParallelMixin:  # noqa: D101 - TP=1: nothing to shard
        pass

    def lm_cross_entropy(logits, target, head=None, ignore_index=-100):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                               ignore_index=ignore_index)

    tp_rng_fork = contextlib.nullcontext

__all__ = ["TensorParallelMixin", "lm_cross_entropy", "tp_rng_fork"]
