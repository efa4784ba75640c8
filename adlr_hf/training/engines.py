"""The two training engines behind the one Trainer loop, DeepSpeed (`engine_deepspeed.py`) and Accelerate
(`engine_accelerate.py`), and what they share.

Both expose the same small surface: `init_distributed()` before the process groups exist, `setup()` to wrap the
model and optimizer, `micro_step(batch)` (forward, backward and, at an accumulation boundary, the optimizer step),
`save(dir)` / `load(dir)` for checkpoints, `module` for the unwrapped model, and the class method
`read_state_dict(checkpoint_dir, model, trainer_state)`: each engine owns its checkpoint file layout, including
reading the full, plain-named weights back for export.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def on_gpu() -> bool:
    return torch.cuda.is_available()


def engine_class(name: str):
    """The engine class for `--engine NAME` (and for a checkpoint's recorded engine)."""
    if name == "deepspeed":
        from .engine_deepspeed import DeepSpeedEngine

        return DeepSpeedEngine
    if name == "accelerate":
        from .engine_accelerate import AccelerateEngine

        return AccelerateEngine
    raise ValueError(f"unknown engine {name!r}; choose deepspeed or accelerate")


ENGINES = ("deepspeed", "accelerate")


def load_deepspeed_config(path: str | None) -> dict:
    if path is None:
        return {"zero_optimization": {"stage": 0}}
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"DeepSpeed config {path!r} does not exist; pass a JSON file such as "
                                "configs/deepspeed/zero1.json")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"DeepSpeed config {path!r} is not valid JSON ({err}); fix the file.") from None


def resolve_batch_config(ds_config: dict, micro_batch: int, grad_accum: int, dp_size: int, clip: float) -> dict:
    """Fill batch sizes and clipping from the command line; a config that disagrees is an error, not a guess."""
    config = json.loads(json.dumps(ds_config))
    for key, value in (("train_micro_batch_size_per_gpu", micro_batch), ("gradient_accumulation_steps", grad_accum)):
        if config.get(key, "auto") == "auto":
            config[key] = value
        elif int(config[key]) != value:
            raise ValueError(f"DeepSpeed config sets {key}={config[key]} but the command line asks for {value}; "
                             f"remove it from the config or pass the same value.")
    expected = config["train_micro_batch_size_per_gpu"] * config["gradient_accumulation_steps"] * dp_size
    if config.get("train_batch_size", "auto") == "auto":
        config["train_batch_size"] = expected
    elif int(config["train_batch_size"]) != expected:
        raise ValueError(
            f"DeepSpeed config train_batch_size={config['train_batch_size']} does not equal micro batch "
            f"{config['train_micro_batch_size_per_gpu']} × gradient accumulation "
            f"{config['gradient_accumulation_steps']} × data-parallel size {dp_size} = {expected}; "
            f"set it to {expected} or to \"auto\"."
        )
    if config.get("gradient_clipping", "auto") == "auto":
        config["gradient_clipping"] = clip
    config.setdefault("steps_per_print", 10**9)  # the Trainer does the logging
    return config


def loss_parts(outputs) -> dict[str, float]:
    """The parts of a model's loss it reports beside `loss` (scalar `*_loss` fields, e.g. a GAN's generator and
    discriminator terms), for the training log; {} for models that report none."""
    items = outputs.items() if hasattr(outputs, "items") else ()
    return {name: float(value.detach().float()) for name, value in items
            if name.endswith("_loss") and isinstance(value, torch.Tensor) and value.numel() == 1}


def zero_stage(ds_config: dict) -> int:
    return int(ds_config.get("zero_optimization", {}).get("stage", 0))




def load_torch(path: Path) -> dict:
    """A checkpoint file written by the run's engine, read with `torch.load(weights_only=True)`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - report which file and why, then stop
        raise ValueError(f"cannot read {path} as a weights-only torch file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); the checkpoint is damaged or was not "
                         "written by adlr_hf's training") from None


def strip_module_prefix(state: dict) -> dict:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def merge_tp_state_dicts(shards: list[dict[str, torch.Tensor]], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full state dict from per-TP-rank state dicts (ordered by rank) using `model`'s TP plan; vocab padding is cut
    to the dense model's row count. Replicated entries come from rank 0."""
    from ..parallel.plan import STYLES, full_tp_plan, match_plan
    from ..parallel.sharding import merge_shards

    expected = model.state_dict()
    if len(shards) == 1:
        return dict(shards[0])
    keys = list(shards[0])
    for rank, shard in enumerate(shards[1:], start=1):
        if set(shard) != set(keys):
            diff = sorted(set(shard) ^ set(keys))[:5]
            raise ValueError(f"TP rank {rank}'s checkpoint has different entries than rank 0 (e.g. {diff}); "
                             "the checkpoint is incomplete or mixes runs.")
    matched = match_plan({k.rpartition(".")[0] for k in keys}, full_tp_plan(model))
    full = {}
    for key in keys:
        module_name, _, param = key.rpartition(".")
        style = STYLES.get(matched.get(module_name, ""))
        spec = style.params.get(param) if style is not None else None
        if spec is None:
            full[key] = shards[0][key]
            continue
        tensor = merge_shards([s[key] for s in shards], spec[0], spec[1])
        if style.vocab and key in expected:
            tensor = tensor[: expected[key].shape[0]]
        full[key] = tensor
    return full


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
