"""What every offline evaluation does with the model folder: find it (a run's folder names its model/), read its
config (one clear error when it is not a transformers config), join the TP/DP groups under a launcher, and load the
model sharded and on its device (a video model together with its video processor)."""

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


def video_model_folder(model_dir) -> str:
    """The saved video model folder `model_dir` (or a training run's `model_dir/model`), checked to hold a config
    and the video processor saved beside the model."""
    path = os.path.expanduser(os.fspath(model_dir))
    if not os.path.isfile(os.path.join(path, "config.json")):
        candidate = os.path.join(path, "model")
        if not os.path.isfile(os.path.join(candidate, "config.json")):
            raise FileNotFoundError(f"model folder {path!r} has no config.json; pass a saved model folder (a run's "
                                    "model/ or a publish)")
        path = candidate
    if not os.path.isfile(os.path.join(path, "video_preprocessor_config.json")):
        raise FileNotFoundError(f"{path} has no video_preprocessor_config.json; save the video processor beside the "
                                "model (adlr_hf's training export does)")
    return path


def load_video_model(path: str, tp: int = 1, device: str | None = None):
    """(model, video processor) of a `video_model_folder`, after joining the TP/DP groups (`load_model`)."""
    from transformers import AutoModel, AutoVideoProcessor

    read_config(path)
    join_parallel_groups(tp)
    processor = AutoVideoProcessor.from_pretrained(path)
    return load_model(AutoModel, path, tp, device), processor
