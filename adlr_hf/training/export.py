"""Export a training checkpoint (`<run>/checkpoints/step_N/`) to a Hugging Face model folder.

What the engines leave in a checkpoint folder:

| engine / stage | weights | how they are merged here |
|---|---|---|
| DeepSpeed ZeRO 0-2 | `mp_rank_XX_model_states.pt` per TP rank, `"module"` = its shards | merged by the TP plan |
| DeepSpeed ZeRO-3 (TP=1 only) | partitioned over DP ranks | `deepspeed.utils.zero_to_fp32` gathers them (fp32) |
| Accelerate `save_state` | `model.safetensors` (full weights at TP=1) | loaded as is |
| Accelerate at TP>1 | `tp_rank_XX_model_optim.pt` per TP rank, `"model"` = its shards | merged by the TP plan |

"Merged by the TP plan": each parameter's (dim, stride) comes from `parallel.plan.STYLES` for the module the model's
plan (`full_tp_plan`) names, shards are joined with `sharding.merge_shards`, and vocab-parallel rows are cut back from
the padded size (a multiple of 128 × TP) to the config's vocabulary.

The config comes from the run's exported model folder (`<run>/model/config.json`) when there is one, otherwise from
the variant recorded in `trainer_state.json` plus the run's tokenizer folder (vocabulary size and special tokens).
DeepSpeed files are read with `torch.load(weights_only=True)`; everything is validated before anything is written,
and the output folder is written atomically (a temporary sibling renamed at the end).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import torch

from ..atomic import write_atomically
from .checkpoint import TRAINER_STATE

logger = logging.getLogger(__name__)

_MP_FILE = re.compile(r"^mp_rank_(\d+)_model_states\.pt$")
_ZERO3_FILE = re.compile(r"^zero_pp_rank_\d+_mp_rank_(\d+)_model_states\.pt$")


# -- locating the pieces -------------------------------------------------------------------------------------------
def _read_trainer_state(checkpoint_dir: Path) -> dict:
    path = checkpoint_dir / TRAINER_STATE
    if not path.is_file():
        raise ValueError(f"{checkpoint_dir} is not a training checkpoint: it has no {TRAINER_STATE}; pass a folder "
                         "<run>/checkpoints/step_N written by `adlr-hf train --save-every N`.")
    return json.loads(path.read_text())


def run_dir_of(checkpoint_dir: Path) -> Path | None:
    """`<run>` for `<run>/checkpoints/step_N`, else None."""
    checkpoint_dir = Path(checkpoint_dir)
    return checkpoint_dir.parent.parent if checkpoint_dir.parent.name == "checkpoints" else None


def _find_config_dir(checkpoint_dir: Path) -> Path | None:
    run = run_dir_of(checkpoint_dir)
    if run is None:
        return None
    for candidate in (run / "model", run / "tokenizer"):
        if candidate.is_dir():
            return candidate
    return None


def _load_config(config_dir: Path | None, trainer_state: dict, checkpoint_dir: Path):
    """The model config, from a model folder (config.json) or from the recorded variant + a tokenizer folder."""
    from transformers import AutoConfig

    if config_dir is not None and (config_dir / "config.json").is_file():
        return AutoConfig.from_pretrained(config_dir), config_dir
    variant = trainer_state.get("model")
    if variant is None:
        raise ValueError(f"cannot tell the model of {checkpoint_dir}: no config_dir with config.json and no 'model' "
                         f"in {TRAINER_STATE}; pass config_dir=<the run's model folder>.")
    variant_path = Path(variant)
    if variant_path.is_dir() and (variant_path / "config.json").is_file():
        config = AutoConfig.from_pretrained(variant_path)
    elif variant_path.is_file() and variant_path.suffix == ".json":
        raw = json.loads(variant_path.read_text())
        config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    else:
        from ..registry import get_config
        from .args import parse_overrides

        config = get_config(variant, **parse_overrides(trainer_state.get("overrides") or []))
    tokenizer_dir = config_dir if config_dir is not None and (config_dir / "tokenizer_config.json").is_file() else None
    if tokenizer_dir is not None:
        from ..data.text import load_tokenizer

        tokenizer = load_tokenizer(tokenizer_dir)
        if not (variant_path.is_dir() and (variant_path / "config.json").is_file()):
            config.vocab_size = len(tokenizer)  # the run sized a fresh model's vocabulary to its tokenizer
        config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    return config, tokenizer_dir


def _mp_files(checkpoint_dir: Path) -> dict[int, Path]:
    files = {}
    for path in checkpoint_dir.iterdir():
        match = _MP_FILE.match(path.name)
        if match:
            files[int(match.group(1))] = path
    return files


def _zero3_files(checkpoint_dir: Path) -> list[Path]:
    return sorted(p for p in checkpoint_dir.iterdir() if _ZERO3_FILE.match(p.name))


# -- reading the weights -------------------------------------------------------------------------------------------
def _load_torch(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - report which file and why, then stop
        raise ValueError(f"cannot read {path} as a weights-only torch file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); was it written by DeepSpeed's "
                         "save_checkpoint?") from None


def _strip_module_prefix(state: dict) -> dict:
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


def _check_shapes(state: dict[str, torch.Tensor], model: torch.nn.Module, checkpoint_dir: Path) -> None:
    expected = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items()
             if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k, got, want = wrong[0]
        raise ValueError(f"{checkpoint_dir}: {k} has shape {got} but the config gives {want} ({len(wrong)} such "
                         "entries); the config does not describe this checkpoint: pass config_dir=<the run's model "
                         "folder> (runs started with --set overrides record them only there).")
    tied = set((getattr(model, "_tied_weights_keys", None) or {}).keys())
    missing = sorted(set(expected) - set(state) - tied)
    if missing:
        raise ValueError(f"{checkpoint_dir} lacks {len(missing)} weights the model needs (e.g. {missing[:3]}); it is "
                         "not a checkpoint of this model.")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(f"{checkpoint_dir} has weights the model does not know (e.g. {unexpected[:3]}); it is not a "
                         "checkpoint of this model.")


def load_checkpoint_state_dict(checkpoint_dir, model: torch.nn.Module,
                               trainer_state: dict | None = None) -> dict[str, torch.Tensor]:
    """The full, plain-named state dict of a training checkpoint for `model` (a dense model of its config)."""
    checkpoint_dir = Path(checkpoint_dir)
    trainer_state = trainer_state if trainer_state is not None else _read_trainer_state(checkpoint_dir)
    engine = trainer_state.get("engine", "deepspeed")
    tp = int(trainer_state.get("tp", 1))
    zero3 = int(trainer_state.get("zero_stage") or 0) == 3 or (_zero3_files(checkpoint_dir)
                                                               and not _mp_files(checkpoint_dir))
    if engine == "accelerate" and tp > 1:
        # save_state keeps TP rank 0's shards only; the Accelerate engine writes every TP rank's shards beside it.
        files = [checkpoint_dir / f"tp_rank_{rank:02d}_model_optim.pt" for rank in range(tp)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ValueError(f"{checkpoint_dir} lacks {missing} for its TP={tp} shards; it cannot be exported. "
                             "Publish the run's model folder instead.")
        shards = [_strip_module_prefix(dict(_load_torch(f)["model"])) for f in files]
        return merge_tp_state_dicts(shards, model)
    if engine == "accelerate" and (checkpoint_dir / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return _strip_module_prefix(load_file(checkpoint_dir / "model.safetensors"))
    if zero3:
        if tp > 1:
            raise ValueError(f"{checkpoint_dir}: ZeRO-3 with TP={tp} is not a layout adlr_hf writes.")
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        # zero_to_fp32 reads DeepSpeed's optimizer pickles itself (not weights_only); they are the run's own files.
        state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir.parent), tag=checkpoint_dir.name)
        return {k: v.detach().cpu() for k, v in state.items()}
    files = _mp_files(checkpoint_dir)
    if not files:
        raise ValueError(f"{checkpoint_dir} has no mp_rank_XX_model_states.pt (DeepSpeed) and no model.safetensors "
                         "(Accelerate); it is not a complete checkpoint.")
    if sorted(files) != list(range(len(files))):
        raise ValueError(f"{checkpoint_dir} has TP ranks {sorted(files)}; some mp_rank_XX files are missing.")
    if len(files) != tp:
        raise ValueError(f"{checkpoint_dir} holds {len(files)} TP shards but {TRAINER_STATE} says tp={tp}; the "
                         "checkpoint is incomplete or mixes runs.")
    shards = []
    for rank in range(len(files)):
        saved = _load_torch(files[rank])
        if not isinstance(saved, dict) or "module" not in saved:
            raise ValueError(f"{files[rank]} has no 'module' state dict; it is not a DeepSpeed model-states file.")
        shards.append(_strip_module_prefix(dict(saved["module"])))
    return merge_tp_state_dicts(shards, model)


# Head-class suffix -> transformers Auto class; other families add rows when they add heads.
AUTO_CLASS_BY_SUFFIX = (
    ("ForCausalLM", "AutoModelForCausalLM"),
    ("ForSequenceClassification", "AutoModelForSequenceClassification"),
    ("ForMaskedLM", "AutoModelForMaskedLM"),
    ("ForPreTraining", "AutoModelForPreTraining"),
    ("ForImageClassification", "AutoModelForImageClassification"),
    ("ForSemanticSegmentation", "AutoModelForSemanticSegmentation"),
)


def auto_class_for(config):
    """The Auto class that rebuilds the head the config names in `architectures` (AutoModel if none matches)."""
    import transformers

    for arch in getattr(config, "architectures", None) or []:
        for suffix, name in AUTO_CLASS_BY_SUFFIX:
            if arch.endswith(suffix):
                return getattr(transformers, name)
    if not getattr(config, "architectures", None) and type(config) in transformers.AutoModelForCausalLM._model_mapping:
        return transformers.AutoModelForCausalLM
    return transformers.AutoModel


# -- the export ----------------------------------------------------------------------------------------------------
def export_checkpoint(checkpoint_dir, out_dir, config_dir=None, *, overwrite: bool = False) -> Path:
    """Write `checkpoint_dir` as a Hugging Face folder (config, safetensors, generation config, tokenizer, remote
    code) at `out_dir`. `config_dir`: the run's model folder or tokenizer folder (default: found beside the run)."""
    import adlr_hf  # noqa: F401 - registers the families with the Auto classes

    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint folder {str(checkpoint_dir)!r} does not exist; pass "
                                "<run>/checkpoints/step_N.")
    trainer_state = _read_trainer_state(checkpoint_dir)
    if config_dir is not None and not Path(config_dir).is_dir():
        raise FileNotFoundError(f"config_dir {str(config_dir)!r} does not exist; pass the run's model or tokenizer "
                                "folder.")
    config_dir = Path(config_dir) if config_dir is not None else _find_config_dir(checkpoint_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise ValueError(f"{out_dir} exists and is not empty; pass overwrite=True or choose another folder.")
    config, tokenizer_dir = _load_config(config_dir, trainer_state, checkpoint_dir)
    if tokenizer_dir is None and config_dir is not None and (config_dir / "tokenizer_config.json").is_file():
        tokenizer_dir = config_dir

    auto = auto_class_for(config)
    model = auto.from_config(config)
    state = load_checkpoint_state_dict(checkpoint_dir, model, trainer_state)
    _check_shapes(state, model, checkpoint_dir)
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

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if config_dir is not None and (config_dir / "preprocessor_config.json").is_file():  # an image processor
            shutil.copy2(config_dir / "preprocessor_config.json", tmp / "preprocessor_config.json")
        (tmp / "adlr_hf_export.json").write_text(json.dumps(
            {"checkpoint": str(checkpoint_dir.resolve()), "step": trainer_state.get("step"),
             "units_seen": trainer_state.get("units_seen"), "unit": trainer_state.get("unit"),
             "tp": trainer_state.get("tp"), "engine": trainer_state.get("engine"),
             "zero_stage": trainer_state.get("zero_stage")}, indent=2))

    write_atomically(out_dir, build)
    logger.info("exported %s -> %s", checkpoint_dir, out_dir)
    return out_dir
