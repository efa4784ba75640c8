"""What every offline evaluation does with the model folder: read its config (one clear error when it is not a
transformers config), join the TP/DP groups under a launcher, and load the model sharded and on its device."""

from __future__ import annotations

import os

import torch


def read_config(path: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot read {path}/config.json as a transformers config: {err}") from None


def join_parallel_groups(tp: int) -> None:
    """Under a launcher (WORLD_SIZE > 1), or with tp > 1, make the TP/DP groups (tp > 1 in one process is an error
    naming the fix)."""
    from ..parallel.state import init_parallel

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or tp > 1:
        init_parallel(tp)


def load_model(auto_class, path: str, tp: int = 1, device: str | None = None):
    """`auto_class.from_pretrained(path)`, sharded over the TP group when tp > 1, on `device` (default: this rank's
    GPU, else the CPU)."""
    model = auto_class.from_pretrained(path, **({"tp_size": tp} if tp > 1 else {}))
    if device is None:
        device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    return model.to(device)
