"""Converter I/O every family's converter shares: checking the output folder, reading weights (torch files with
`weights_only=True`, reference training checkpoints, safetensors, transformers folders), fitting converted weights to
the model strictly (keys and shapes, on the meta device) and writing the model folder atomically."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from .atomic import write_atomically

logger = logging.getLogger(__name__)


def check_out_dir(out_dir, src_dir, overwrite: bool) -> Path:
    """The absolute output folder; refused when it is a file, holds the source, or is non-empty without
    `overwrite` (--overwrite)."""
    out = Path(out_dir).expanduser().absolute()
    src = Path(src_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {str(out)!r} exists and is not a folder; choose a folder path for OUT.")
    if out.resolve() == src.resolve() or src.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"output folder {str(out)!r} contains the source {str(src)!r}; write to another folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"output folder {str(out)!r} exists and is not empty; pass overwrite=True (--overwrite) "
                         "to replace it, or choose another folder.")
    return out


def check_state_fits(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """`state` must hold exactly the model's weights with the model's shapes (tied copies, such as an LM head tied
    to the embedding, may be left out); else one error naming what is missing, unexpected or mis-shaped."""
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got) - tied)
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        raise ValueError(f"{what} does not fit {type(model).__name__}: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, wrong shapes {[(k, got[k], expected[k]) for k in wrong[:5]]}")


def fitted_model(model_class, config, state: dict[str, torch.Tensor], what: str):
    """`model_class(config)` built on the meta device and given `state` (checked strictly first), in eval mode."""
    with torch.device("meta"):
        model = model_class(config)
    check_state_fits(model, state, what)
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    return model.eval()


def save_model_folder(out: Path, model, processors=(), extra_files: dict[str, Path] | None = None) -> Path:
    """Write `model`, its processors (tokenizer, image processor) and raw extra files atomically to `out`."""

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        for processor in processors:
            if processor is not None:
                processor.save_pretrained(tmp)
        for name, path in (extra_files or {}).items():
            if not (tmp / name).exists():
                shutil.copy2(path, tmp / name)

    write_atomically(out, build)
    return out


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); restore the file.") from None


def read_torch_file(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt, truncated or not a torch file: one clear error
        raise ValueError(f"{str(path)!r} is not a readable PyTorch checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]}); re-copy or re-download it.") from None


def read_reference_checkpoint(path: Path, what: str, saved_by: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """(state dict without DataParallel / DDP `module.` prefixes, the checkpoint's "arch" or None) of a torch file
    holding the reference's {"arch", "state_dict", ...} checkpoint or a bare state dict. `what` names the model and
    `saved_by` the reference script in the error, e.g. "SDC-Net", "main.py"."""
    obj, arch = read_torch_file(path), None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{str(path)!r} holds no {what} state dict: expected a checkpoint dict with a 'state_dict' "
                         f"of tensors (the reference's {saved_by} layout) or a bare state dict; got "
                         f"{type(obj).__name__}")
    return {key.removeprefix("module."): value for key, value in obj.items()}, arch


def read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({type(err).__name__}: {err}); "
                         "re-copy or re-download it.") from None


def read_hf_weights(src: Path, what: str) -> dict[str, torch.Tensor]:
    """All weights of a `save_pretrained` folder (single file or sharded index); `what` names the expected source in
    the error, e.g. "GPT2LMHeadModel.save_pretrained output"."""
    for index_name, reader in (("model.safetensors.index.json", read_safetensors),
                               ("pytorch_model.bin.index.json", read_torch_file)):
        index = src / index_name
        if index.is_file():
            files = sorted(set(read_json(index).get("weight_map", {}).values()))
            if not files:
                raise ValueError(f"{str(index)!r} has no weight_map; restore the index file.")
            state = {}
            for name in files:
                if not (src / name).is_file():
                    raise FileNotFoundError(f"shard {name!r} listed in {str(index)!r} is missing; copy it next to "
                                            "the index.")
                state.update(reader(src / name))
            return state
    if (src / "model.safetensors").is_file():
        return read_safetensors(src / "model.safetensors")
    if (src / "pytorch_model.bin").is_file():
        return read_torch_file(src / "pytorch_model.bin")
    raise FileNotFoundError(f"no weights in {str(src)!r}: expected model.safetensors, pytorch_model.bin or a sharded "
                            f"index ({what}).")
