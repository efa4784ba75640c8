"""Export a training checkpoint (`<run>/checkpoints/step_N/`) to a Hugging Face model folder.

The checkpoint describes itself: its run wrote `RUN/config/` (the resolved config.json and the processor, with any
model the task saves beside its own, such as a frozen model it runs with) when it started, and `trainer_state.json`
names the engine, whose `read_state_dict` reads its own file layout back into full, plain-named weights (TP shards
merged by the model's plan, vocab padding cut). Everything is validated before anything is written, and the output
folder is written atomically.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ..atomic import write_atomically
from ..conversion import check_out_dir, check_state_fits
from .checkpoint import RUN_CONFIG, TRAINER_STATE, run_dir_of

logger = logging.getLogger(__name__)


def _read_trainer_state(checkpoint_dir: Path) -> dict:
    path = checkpoint_dir / TRAINER_STATE
    if not path.is_file():
        raise ValueError(f"{checkpoint_dir} is not a training checkpoint: it has no {TRAINER_STATE}; pass a folder "
                         "<run>/checkpoints/step_N written by `adlr-hf train --save-every N`.")
    return json.loads(path.read_text())


def find_config_dir(checkpoint_dir: Path) -> Path | None:
    """The folder holding the run's config.json: RUN/config (written when the run started), else RUN/model."""
    run = run_dir_of(checkpoint_dir)
    if run is None:
        return None
    return next((d for d in (run / RUN_CONFIG, run / "model") if (d / "config.json").is_file()), None)


def load_checkpoint_state_dict(checkpoint_dir, model: torch.nn.Module,
                               trainer_state: dict | None = None) -> dict[str, torch.Tensor]:
    """The full, plain-named state dict of a training checkpoint for `model` (a dense model of its config), read by
    the engine that wrote it."""
    from .engines import engine_class

    checkpoint_dir = Path(checkpoint_dir)
    trainer_state = trainer_state if trainer_state is not None else _read_trainer_state(checkpoint_dir)
    return engine_class(trainer_state.get("engine", "deepspeed")).read_state_dict(checkpoint_dir, model,
                                                                                 trainer_state)


def auto_class_for(config):
    """The Auto class that rebuilds the head named in the config's `architectures`, as the family's spec maps it
    (AutoModel when none matches)."""
    import transformers

    from ..registry import family_for

    spec = family_for(config)
    names = getattr(config, "architectures", None) or []
    if spec is not None:
        for auto_name, classes in spec.models.items():
            if any(cls.__name__ in names for cls in (classes if isinstance(classes, tuple) else (classes,))):
                return getattr(transformers, auto_name)
    return transformers.AutoModel


def saved_model_subfolders(folder: Path) -> list[Path]:
    """The sub-folders of a model or config folder that are themselves saved models (hold a config.json): models
    the task saved beside the trained one because it runs with them; an export and a publish carry them."""
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and (p / "config.json").is_file())


# -- the export ----------------------------------------------------------------------------------------------------
def export_checkpoint(checkpoint_dir, out_dir, config_dir=None, *, overwrite: bool = False) -> Path:
    """Write `checkpoint_dir` as a Hugging Face folder (config, safetensors, generation config, tokenizer, remote
    code, the saved models the run's config folder carries) at `out_dir`. `config_dir`: the run's model folder or
    tokenizer folder (default: found beside the run)."""

    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint folder {str(checkpoint_dir)!r} does not exist; pass "
                                "<run>/checkpoints/step_N.")
    trainer_state = _read_trainer_state(checkpoint_dir)
    if config_dir is not None and not Path(config_dir).is_dir():
        raise FileNotFoundError(f"config_dir {str(config_dir)!r} does not exist; pass the run's model or tokenizer "
                                "folder.")
    config_dir = Path(config_dir) if config_dir is not None else find_config_dir(checkpoint_dir)
    if config_dir is None or not (config_dir / "config.json").is_file():
        raise ValueError(f"cannot find the config of {checkpoint_dir}: its run folder has no {RUN_CONFIG}/ or model/ "
                         "with config.json; pass config_dir=<a folder with the run's config.json>.")
    out_dir = check_out_dir(out_dir, checkpoint_dir, overwrite)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(config_dir)
    tokenizer_dir = config_dir if (config_dir / "tokenizer_config.json").is_file() else None

    auto = auto_class_for(config)
    model = auto.from_config(config)
    state = load_checkpoint_state_dict(checkpoint_dir, model, trainer_state)
    check_state_fits(model, state, f"checkpoint {checkpoint_dir} (with the config in {config_dir})")
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(dtypes) == 1:
        model.to(dtypes.pop())
    model.load_state_dict(state, strict=False)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()

    tokenizer = None
    if tokenizer_dir is not None and (tokenizer_dir / "tokenizer_config.json").is_file():  # image models have none
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    companions = saved_model_subfolders(config_dir)

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name in ("preprocessor_config.json", "video_preprocessor_config.json"):  # an image / video processor
            if config_dir is not None and (config_dir / name).is_file():
                shutil.copy2(config_dir / name, tmp / name)
        for sub in companions:
            if (tmp / sub.name).exists():
                raise ValueError(f"{str(config_dir)!r}: sub-folder {sub.name!r} clashes with a file the export "
                                 "writes; rename it")
            shutil.copytree(sub, tmp / sub.name)
        (tmp / "adlr_hf_export.json").write_text(json.dumps(
            {"checkpoint": str(checkpoint_dir.resolve()), "step": trainer_state.get("step"),
             "units_seen": trainer_state.get("units_seen"), "unit": trainer_state.get("unit"),
             "tp": trainer_state.get("tp"), "engine": trainer_state.get("engine"),
             "zero_stage": trainer_state.get("zero_stage")}, indent=2))

    write_atomically(out_dir, build)
    logger.info("exported %s -> %s", checkpoint_dir, out_dir)
    return out_dir
