"""Convert GPT-2 checkpoints into adlr_hf's `MegatronGPTForCausalLM` folders.

Paper: Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
arXiv 1909.08053. Reference: NVIDIA/Megatron-LM (checkpoint layout and QKV orderings: `megatron/checkpointing.py`,
`megatron/model/transformer.py`, `megatron/model/language_model.py`, `tools/merge_mp_partitions.py` at tags v1.0 and
v2.6, and the 2019 `utils.py` / `mpu/transformer.py` at abe36e2); huggingface/transformers
`models/megatron_gpt2/convert_megatron_gpt2_checkpoint.py` (the TP=1 Megatron -> GPT-2 mapping).

Two sources:

* `convert_gpt2_hf`: a transformers `GPT2LMHeadModel.save_pretrained` folder. GPT-2's `Conv1D` weights are `[in, out]`
  and are transposed; `c_attn` is then already our blocked `[Q_all; K_all; V_all]` row layout.
* `convert_megatron_gpt`: an original Megatron-LM checkpoint directory at any TP degree
  (`{iter_0000100,release}/mp_rank_XX/model_optim_rng.pt`). The TP shards are merged (column-parallel along dim 0,
  row-parallel along dim 1, vocab along dim 0, the rest from rank 0), the fused QKV rows are rewritten from the
  checkpoint's layout into ours, and the vocabulary padding is stripped.

  | `checkpoint_version` | QKV rows of one TP shard | merged (TP=p) |
  |---|---|---|
  | 0 (2019, v1.0)        | `[3, np/p, hn]`  (stride-3 split of `[Q_all; K_all; V_all]`) | `[3, np, hn]` |
  | 1.0                   | `[np/p, hn, 3]`  | `[np, hn, 3]` |
  | >= 2.0 (v2.x, legacy) | `[np/p, 3, hn]`  (plain split, per-head) | `[np, 3, hn]` |

  Every layout is first brought to per-head `[np/p, 3, hn]` per shard, concatenated over ranks, and transposed to our
  `[3, np, hn]`.

Both write atomically (a temporary sibling folder renamed at the end) and validate every input before writing.
Checkpoints are read with `torch.load(weights_only=True)`; the only extra globals allowed are the ones Megatron pickles
beside the weights (`argparse.Namespace`, numpy's RNG state) and, for classes from Megatron's own modules (enums in
`args`, a loss scaler in the optimizer state), an inert placeholder that runs no code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .configuration_megatron_gpt import MegatronGPTConfig

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")
CHECKPOINT_FILE = "model_optim_rng.pt"
TRACKER_FILE = "latest_checkpointed_iteration.txt"


# ----------------------------------------------------------------------------------------------------------------
# Output folder: validation and the atomic write
# ----------------------------------------------------------------------------------------------------------------


def _check_out_dir(out_dir, src_dir, overwrite: bool) -> Path:
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


def _write_atomically(out: Path, build: Callable[[Path], None]) -> None:
    """`build(tmp)` fills a temporary sibling of `out`, which then replaces `out`; a failure leaves `out` as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out.parent / f".{out.name}.converting-{tag}"
    old = out.parent / f".{out.name}.replaced-{tag}"
    try:
        tmp.mkdir()
        build(tmp)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _save_folder(out: Path, config: MegatronGPTConfig, state_dict: dict[str, torch.Tensor], tokenizer,
                 extra_files: dict[str, Path]) -> Path:
    """Build the model on the meta device around `state_dict` (so key/shape mismatches fail here, strictly) and
    write it, the tokenizer and any raw tokenizer files atomically to `out`."""
    from .modeling_megatron_gpt import MegatronGPTForCausalLM

    with torch.device("meta"):
        model = MegatronGPTForCausalLM(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        unexpected = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        raise ValueError(f"converted weights do not fit MegatronGPTForCausalLM: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, wrong shapes {[(k, got[k], expected[k]) for k in wrong[:5]]}")
    model.load_state_dict(state_dict, strict=False, assign=True)
    model.tie_weights()
    model.eval()

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, path in extra_files.items():
            if not (tmp / name).exists():
                shutil.copy2(path, tmp / name)

    _write_atomically(out, build)
    logger.info("wrote %s (%d layers, hidden %d, vocab %d)", out, config.num_layers, config.hidden_size,
                config.vocab_size)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer found beside the source
# ----------------------------------------------------------------------------------------------------------------


def _find_tokenizer(folders: list[Path]):
    """(tokenizer or None, {file name: path} of raw tokenizer files) from the first folder holding any of them."""
    for folder in folders:
        present = {name: folder / name for name in TOKENIZER_FILES if (folder / name).is_file()}
        if not present:
            continue
        errors = []
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True), present
        except Exception as err:  # noqa: BLE001 - a folder without tokenizer_config.json: try GPT-2 BPE next
            errors.append(f"AutoTokenizer: {err}")
        if "vocab.json" in present and "merges.txt" in present:
            try:
                from transformers import GPT2Tokenizer

                return GPT2Tokenizer.from_pretrained(str(folder), local_files_only=True), present
            except Exception as err:  # noqa: BLE001
                errors.append(f"GPT2Tokenizer: {err}")
        detail = "; ".join(e.splitlines()[0] for e in errors)
        raise ValueError(f"tokenizer files {sorted(present)} in {str(folder)!r} could not be loaded ({detail}); "
                         "fix or remove them.")
    return None, {}


def _token_id_within(value, vocab_size: int, name: str):
    if isinstance(value, int) and 0 <= value < vocab_size:
        return value
    if value is not None:
        logger.warning("%s=%r is outside the vocabulary of %d tokens; the converted config sets it to None.", name,
                       value, vocab_size)
    return None


# ----------------------------------------------------------------------------------------------------------------
# transformers GPT-2 -> adlr_hf
# ----------------------------------------------------------------------------------------------------------------

# GPT-2 activation names -> ours. gelu_new/gelu_fast are the tanh approximation, equal to torch's tanh GELU to fp32
# rounding; the others are the same ACT2FN functions.
_GPT2_ACTIVATIONS = {
    "gelu_new": "gelu_pytorch_tanh", "gelu_fast": "gelu_pytorch_tanh", "gelu_pytorch_tanh": "gelu_pytorch_tanh",
    "gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu", "tanh": "tanh", "quick_gelu": "quick_gelu",
}

_GPT2_LAYER_KEYS = {
    "ln_1": "input_layernorm", "attn.c_attn": "self_attention.query_key_value", "attn.c_proj": "self_attention.dense",
    "ln_2": "post_attention_layernorm", "mlp.c_fc": "mlp.dense_h_to_4h", "mlp.c_proj": "mlp.dense_4h_to_h",
}
_GPT2_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); restore the file.") from None


def _read_torch_file(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt, truncated or not a torch file: one clear error
        raise ValueError(f"{str(path)!r} is not a readable PyTorch checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]}); re-copy or re-download it.") from None


def _read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({type(err).__name__}: {err}); "
                         "re-copy or re-download it.") from None


def _read_hf_weights(src: Path) -> dict[str, torch.Tensor]:
    for index_name, reader in (("model.safetensors.index.json", _read_safetensors),
                               ("pytorch_model.bin.index.json", _read_torch_file)):
        index = src / index_name
        if index.is_file():
            files = sorted(set(_read_json(index).get("weight_map", {}).values()))
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
        return _read_safetensors(src / "model.safetensors")
    if (src / "pytorch_model.bin").is_file():
        return _read_torch_file(src / "pytorch_model.bin")
    raise FileNotFoundError(f"no weights in {str(src)!r}: expected model.safetensors, pytorch_model.bin or a sharded "
                            "index (GPT2LMHeadModel.save_pretrained output).")


def _gpt2_config(src: Path) -> MegatronGPTConfig:
    from transformers import GPT2Config

    if not src.is_dir():
        raise FileNotFoundError(f"source folder {str(src)!r} does not exist; pass a GPT2LMHeadModel.save_pretrained "
                                "folder.")
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{str(src / 'config.json')!r} is missing; pass the folder that "
                                "GPT2LMHeadModel.save_pretrained wrote (config.json + weights).")
    raw = _read_json(src / "config.json")
    if raw.get("model_type") != "gpt2":
        raise ValueError(f"config.json in {str(src)!r} has model_type={raw.get('model_type')!r}, not 'gpt2'; "
                         "this converter reads transformers GPT-2 checkpoints only.")
    gpt2 = GPT2Config(**{k: v for k, v in raw.items() if k not in ("transformers_version",)})
    act = gpt2.activation_function
    if act not in _GPT2_ACTIVATIONS:
        raise ValueError(f"activation_function={act!r} is not supported; supported: {sorted(_GPT2_ACTIVATIONS)}.")
    unsupported = {"scale_attn_weights": (gpt2.scale_attn_weights, True),
                   "scale_attn_by_inverse_layer_idx": (gpt2.scale_attn_by_inverse_layer_idx, False),
                   "add_cross_attention": (gpt2.add_cross_attention, False)}
    for name, (value, ours) in unsupported.items():
        if bool(value) != ours:
            raise ValueError(f"{name}={value!r} in {str(src / 'config.json')!r} has no counterpart in "
                             f"MegatronGPT (which implements {name}={ours}); this checkpoint cannot be converted.")
    return MegatronGPTConfig(
        vocab_size=gpt2.vocab_size, max_position_embeddings=gpt2.n_positions, hidden_size=gpt2.n_embd,
        num_layers=gpt2.n_layer, num_attention_heads=gpt2.n_head, ffn_hidden_size=gpt2.n_inner,
        hidden_act=_GPT2_ACTIVATIONS[act], hidden_dropout=gpt2.resid_pdrop, attention_dropout=gpt2.attn_pdrop,
        embedding_dropout=gpt2.embd_pdrop, layer_norm_epsilon=gpt2.layer_norm_epsilon,
        initializer_range=gpt2.initializer_range, tie_word_embeddings=True, use_cache=gpt2.use_cache,
        bos_token_id=_token_id_within(gpt2.bos_token_id, gpt2.vocab_size, "bos_token_id"),
        eos_token_id=_token_id_within(gpt2.eos_token_id, gpt2.vocab_size, "eos_token_id"),
        pad_token_id=_token_id_within(gpt2.pad_token_id, gpt2.vocab_size, "pad_token_id"),
    )


def _map_gpt2_weights(state: dict[str, torch.Tensor], src: Path) -> dict:
    out = {}
    layer_re = re.compile(r"h\.(\d+)\.(.+)\.(weight|bias)")
    lm_head = None
    for key, tensor in state.items():
        name = key[len("transformer."):] if key.startswith("transformer.") else key
        if name == "lm_head.weight":
            lm_head = tensor
            continue
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # causal-mask buffers of old GPT-2 saves, not weights
        if name in ("wte.weight", "wpe.weight"):
            out[f"transformer.{'word' if name == 'wte.weight' else 'position'}_embeddings.weight"] = tensor
        elif name.startswith("ln_f."):
            out[f"transformer.final_layernorm.{name[5:]}"] = tensor
        elif (m := layer_re.fullmatch(name)) and m.group(2) in _GPT2_LAYER_KEYS:
            layer, module, param = m.groups()
            if module in _GPT2_CONV1D and param == "weight":
                tensor = tensor.t()  # Conv1D [in, out] -> Linear [out, in]
            out[f"transformer.layers.{layer}.{_GPT2_LAYER_KEYS[module]}.{param}"] = tensor.contiguous()
        else:
            raise ValueError(f"unexpected weight {key!r} in {str(src)!r}; it is not part of GPT2LMHeadModel, so this "
                             "is not a plain GPT-2 checkpoint.")
    embed = out.get("transformer.word_embeddings.weight")
    if lm_head is not None and embed is not None and not torch.equal(lm_head, embed):
        raise ValueError(f"lm_head.weight in {str(src)!r} differs from transformer.wte.weight; MegatronGPT ties them, "
                         "so an untied GPT-2 cannot be converted.")
    return out


def convert_gpt2_hf(src_dir, out_dir, *, overwrite: bool = False) -> Path:
    """Convert a transformers `GPT2LMHeadModel` folder into a `MegatronGPTForCausalLM` folder (+ its tokenizer)."""
    src = Path(src_dir).expanduser().absolute()
    out = _check_out_dir(out_dir, src, overwrite)
    config = _gpt2_config(src)
    state = _map_gpt2_weights(_read_hf_weights(src), src)
    tokenizer, _ = _find_tokenizer([src])
    if tokenizer is None:
        logger.warning("no tokenizer files in %s; the converted folder has no tokenizer.", src)
    elif len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer in {str(src)!r} has {len(tokenizer)} tokens but the model only "
                         f"{config.vocab_size}; use the tokenizer the model was trained with.")
    dtype = state["transformer.word_embeddings.weight"].dtype if "transformer.word_embeddings.weight" in state else None
    if dtype is not None and dtype != torch.float32:
        config.dtype = dtype
    return _save_folder(out, config, state, tokenizer, {})


# ----------------------------------------------------------------------------------------------------------------
# Megatron-LM -> adlr_hf
# ----------------------------------------------------------------------------------------------------------------


class _PickledMegatronObject:
    """Inert stand-in for a class from Megatron-LM's own modules found in a checkpoint (an enum in `args`, a loss
    scaler in the optimizer state). It stores what the pickle hands it and runs no code; the converter never uses it."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.pickled_args = args

    def __setstate__(self, state):
        self.pickled_state = state


_MEGATRON_MODULES = ("megatron.", "fp16.", "mpu.")
_NUMPY_RECONSTRUCT = np._core.multiarray._reconstruct
# What Megatron pickles beside the weights: `args` and numpy's RNG state (np.random.get_state(): a uint32 array).
_SAFE_GLOBALS = [
    argparse.Namespace, np.ndarray, np.dtype, type(np.dtype(np.uint32)), _NUMPY_RECONSTRUCT,
    (_NUMPY_RECONSTRUCT, "numpy.core.multiarray._reconstruct"),  # the same function as pickled by numpy 1.x
]
_UNSUPPORTED_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")


def _megatron_stub(full_name: str):
    return (type(full_name.rsplit(".", 1)[-1], (_PickledMegatronObject,), {}), full_name)


def _load_megatron_file(path: Path) -> dict:
    stubs: dict[str, tuple] = {}
    if zipfile.is_zipfile(path):
        try:
            for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)):
                if name.startswith(_MEGATRON_MODULES):
                    stubs[name] = _megatron_stub(name)
        except Exception:  # noqa: BLE001 - an unreadable file is reported by the load below
            pass
    for _ in range(64):  # legacy (non-zip) files cannot be scanned: add placeholders as the loader names them
        try:
            with torch.serialization.safe_globals(_SAFE_GLOBALS + list(stubs.values())):
                data = torch.load(path, map_location="cpu", weights_only=True)
            break
        except Exception as err:  # noqa: BLE001
            found = _UNSUPPORTED_GLOBAL.search(str(err))
            if found and found.group(1).startswith(_MEGATRON_MODULES) and found.group(1) not in stubs:
                stubs[found.group(1)] = _megatron_stub(found.group(1))
                continue
            if found:
                raise ValueError(f"{str(path)!r} pickles {found.group(1)}, which is not loaded under "
                                 "torch.load(weights_only=True); if you trust the file, re-save only its 'model', "
                                 "'args' and 'checkpoint_version' entries.") from None
            raise ValueError(f"{str(path)!r} is not a readable PyTorch checkpoint ({type(err).__name__}: "
                             f"{str(err).strip().splitlines()[0][:200]}); re-copy or re-download it.") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        extra = " (a virtual-pipeline checkpoint: 'model0', 'model1', ...; not supported)" \
            if isinstance(data, dict) and "model0" in data else ""
        raise ValueError(f"{str(path)!r} has no 'model' state dict (found {keys}){extra}; pass a Megatron-LM "
                         "GPT checkpoint saved by save_checkpoint.")
    return data


def _resolve_iteration_dir(src: Path) -> Path:
    """The iter_XXXXXXX/ or release/ folder that holds the mp_rank_* folders."""
    if not src.is_dir():
        raise FileNotFoundError(f"checkpoint folder {str(src)!r} does not exist; pass a Megatron-LM save directory "
                                "(with latest_checkpointed_iteration.txt) or one of its iter_*/release folders.")
    if any(p.name.startswith("mp_rank_") for p in src.iterdir()):
        return src
    tracker = src / TRACKER_FILE
    if tracker.is_file():
        text = tracker.read_text().strip()
        if text == "release":
            folder = src / "release"
        elif text.isdigit():
            folder = src / f"iter_{int(text):07d}"
        else:
            raise ValueError(f"{str(tracker)!r} contains {text!r}, expected an iteration number or 'release'; fix "
                             "the file or point at an iter_*/release folder directly.")
        if not folder.is_dir():
            raise FileNotFoundError(f"{str(tracker)!r} names {folder.name!r} but {str(folder)!r} does not exist; "
                                    "fix the tracker file or point at an existing iter_*/release folder.")
        return folder
    candidates = sorted(p.name for p in src.iterdir() if p.is_dir() and (p.name == "release" or
                                                                        re.fullmatch(r"iter_\d+", p.name)))
    if len(candidates) == 1:
        return src / candidates[0]
    if candidates:
        raise ValueError(f"{str(src)!r} has no {TRACKER_FILE} and several checkpoints {candidates}; point at one of "
                         "them directly.")
    raise FileNotFoundError(f"no mp_rank_* folders, {TRACKER_FILE} or iter_*/release folders in {str(src)!r}; pass a "
                            "Megatron-LM checkpoint directory.")


def _rank_files(folder: Path) -> list[Path]:
    ranks: dict[int, Path] = {}
    pipeline_stages = set()
    for path in folder.iterdir():
        m = re.fullmatch(r"mp_rank_(\d+)(?:_(\d+))?", path.name)
        if not m or not path.is_dir():
            continue
        if m.group(2) is not None:
            pipeline_stages.add(int(m.group(2)))
        ranks.setdefault(int(m.group(1)), path)
    if not ranks:
        raise FileNotFoundError(f"no mp_rank_* folders in {str(folder)!r}; pass a Megatron-LM checkpoint directory.")
    if len(pipeline_stages) > 1:
        raise ValueError(f"{str(folder)!r} holds a pipeline-parallel checkpoint ({len(pipeline_stages)} stages); "
                         "only tensor parallelism is supported: merge the pipeline stages with Megatron-LM's "
                         "tools/checkpoint first.")
    if sorted(ranks) != list(range(len(ranks))):
        missing = sorted(set(range(max(ranks) + 1)) - set(ranks))
        raise FileNotFoundError(f"tensor-parallel rank folder(s) {['mp_rank_%02d' % r for r in missing]} missing "
                                f"in {str(folder)!r}; copy every rank of the checkpoint.")
    files = []
    for rank in range(len(ranks)):
        path = ranks[rank] / CHECKPOINT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} is missing (TP rank {rank}); copy the complete checkpoint.")
        files.append(path)
    return files


def _flatten(tree: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, torch.Tensor):
            flat[name] = value
        elif name.endswith("_extra_state") or value is None:
            continue
        else:
            raise ValueError(f"unexpected entry {name!r} of type {type(value).__name__} in the model state dict")
    return flat


_MEGATRON_LAYER = re.compile(r"layers\.(\d+)\.(input_layernorm|post_attention_layernorm|(?:self_)?attention\.dense|"
                             r"(?:self_)?attention\.query_key_value|mlp\.dense_h_to_4h|mlp\.dense_4h_to_h)\."
                             r"(weight|bias)")
_LAYER_MODULES = ("input_layernorm", "self_attention.query_key_value", "self_attention.dense",
                  "post_attention_layernorm", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")
_COLUMN = ("self_attention.query_key_value", "mlp.dense_h_to_4h")
_ROW_WEIGHTS = ("self_attention.dense", "mlp.dense_4h_to_h")


def _normalise_megatron_keys(model: dict, path: Path) -> dict[str, torch.Tensor]:
    """Flat Megatron names -> our names (still per-shard tensors). Accepts the 2019 flat layout, v1.0's
    `language_model.{embedding,transformer}` and v2.x's `language_model.{embedding,encoder}`."""
    flat = _flatten(model)
    out = {}
    for key, tensor in flat.items():
        name = key[len("language_model."):] if key.startswith("language_model.") else key
        name = name[len("embedding."):] if name.startswith("embedding.") else name
        if name in ("word_embeddings.weight", "position_embeddings.weight"):
            out[f"transformer.{name}"] = tensor
            continue
        for prefix in ("transformer.", "encoder."):
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        else:
            prefix = None
        if prefix and name in ("final_layernorm.weight", "final_layernorm.bias"):
            out[f"transformer.{name}"] = tensor
        elif prefix and (m := _MEGATRON_LAYER.fullmatch(name)):
            layer, module, param = m.groups()
            module = module if module.startswith(("self_", "input", "post", "mlp")) else f"self_{module}"
            out[f"transformer.layers.{layer}.{module}.{param}"] = tensor
        else:
            hint = ""
            if "output_layer" in key or "word_embeddings_for_head" in key:
                hint = " (untied output embeddings or a pipeline stage: MegatronGPT ties the LM head)"
            elif "rotary" in key or "linear_qkv" in key or "layernorm_qkv" in key:
                hint = " (a Megatron-Core / Transformer-Engine layout, which this converter does not read)"
            raise ValueError(f"unexpected weight {key!r} in {str(path)!r}{hint}; only GPT checkpoints of "
                             "Megatron-LM's legacy model (v1.0-v2.x layout) are supported.")
    return out


def _qkv_per_head(shard: torch.Tensor, version: float, heads: int, head_dim: int) -> torch.Tensor:
    """One TP shard's fused QKV rows -> [heads, 3, head_dim, *rest] (its own heads)."""
    rest = shard.shape[1:]
    if version == 0:
        return shard.view(3, heads, head_dim, *rest).transpose(0, 1)
    if version == 1.0:
        return shard.view(heads, head_dim, 3, *rest).transpose(1, 2)
    return shard.view(heads, 3, head_dim, *rest)


def _merge_qkv(shards: list[torch.Tensor], version: float, heads: int, head_dim: int) -> torch.Tensor:
    per_rank = heads // len(shards)
    merged = torch.cat([_qkv_per_head(s, version, per_rank, head_dim) for s in shards], dim=0)  # [np, 3, hn, ...]
    return merged.transpose(0, 1).reshape(3 * heads * head_dim, *shards[0].shape[1:]).contiguous()


def _arg(args, *names, default=None):
    for name in names:
        if args is not None and getattr(args, name, None) is not None:
            return getattr(args, name)
    return default


def _megatron_activation(args) -> str:
    if args is None:
        return "gelu_pytorch_tanh"  # the 2019 code (no args saved) always used OpenAI's tanh GeLU
    if getattr(args, "swiglu", False) or getattr(args, "squared_relu", False):
        raise ValueError("the checkpoint uses a gated/squared-ReLU MLP (args.swiglu/args.squared_relu), which "
                         "MegatronGPT does not implement; it cannot be converted.")
    if getattr(args, "openai_gelu", False):
        return "gelu_pytorch_tanh"
    if getattr(args, "onnx_safe", False):
        return "gelu"
    # v2.x fuses bias+GeLU by default, and the fused kernel is the tanh approximation (megatron/model/fused_bias_gelu.py)
    if getattr(args, "bias_gelu_fusion", False):
        return "gelu_pytorch_tanh"
    return "gelu"


def _check_megatron_args(args, path: Path) -> None:
    if args is None:
        return
    rejects = {
        "apply_residual_connection_post_layernorm": (False, "MegatronGPT adds the residual before the layer norm"),
        "untie_embeddings_and_output_weights": (False, "MegatronGPT ties the LM head to the word embeddings"),
        "group_query_attention": (False, "MegatronGPT has one key/value head per query head"),
    }
    for name, (ours, why) in rejects.items():
        if bool(getattr(args, name, ours)) != ours:
            raise ValueError(f"args.{name}={getattr(args, name)!r} in {str(path)!r} is not supported ({why}); this "
                             "checkpoint cannot be converted.")
    for name, ours in (("position_embedding_type", "learned_absolute"), ("normalization", "LayerNorm")):
        value = getattr(args, name, ours)
        if value != ours:
            raise ValueError(f"args.{name}={value!r} in {str(path)!r} is not supported (MegatronGPT uses {ours}); "
                             "this checkpoint cannot be converted.")


def _load_megatron_shards(files: list[Path]):
    """Read every rank, normalise names and check the ranks agree (keys, shapes, version)."""
    shards, versions, args = [], [], None
    for rank, path in enumerate(files):
        data = _load_megatron_file(path)
        if rank == 0:
            args = data.get("args")
        versions.append(data.get("checkpoint_version", 0))
        shards.append(_normalise_megatron_keys(data["model"], path))
    for rank, shard in enumerate(shards[1:], start=1):
        if shard.keys() != shards[0].keys():
            diff = sorted(set(shard) ^ set(shards[0]))
            raise ValueError(f"TP rank {rank} ({str(files[rank])!r}) and rank 0 hold different weights, e.g. "
                             f"{diff[:3]}; the ranks come from different checkpoints.")
        for key, tensor in shard.items():
            if tensor.shape != shards[0][key].shape:
                raise ValueError(f"{key!r} has shape {tuple(tensor.shape)} in TP rank {rank} ({str(files[rank])!r}) "
                                 f"but {tuple(shards[0][key].shape)} in rank 0; the ranks come from different "
                                 "checkpoints or a file is damaged.")
        if versions[rank] != versions[0]:
            raise ValueError(f"TP rank {rank} has checkpoint_version={versions[rank]!r} but rank 0 has "
                             f"{versions[0]!r}; the ranks come from different checkpoints.")
    return shards, float(versions[0] or 0), args


def convert_megatron_gpt(src_dir, out_dir, *, vocab_size: int | None = None, num_attention_heads: int | None = None,
                         overwrite: bool = False) -> Path:
    """Convert an original Megatron-LM GPT checkpoint (any TP degree) into a `MegatronGPTForCausalLM` folder.

    `vocab_size` is the true vocabulary (the checkpoint stores it padded); without it the size of a tokenizer found
    beside the checkpoint is used, else the padded size is kept (with a warning). `num_attention_heads` is needed
    only when the checkpoint has no saved `args`.
    """
    src = Path(src_dir).expanduser().absolute()
    out = _check_out_dir(out_dir, src, overwrite)
    folder = _resolve_iteration_dir(src)
    files = _rank_files(folder)
    tp = len(files)
    shards, version, args = _load_megatron_shards(files)
    path0 = files[0]
    _check_megatron_args(args, path0)
    if version not in (0.0, 1.0) and version < 2.0:
        raise ValueError(f"checkpoint_version={version!r} in {str(path0)!r} is unknown; Megatron-LM wrote 0, 1.0 "
                         "and >= 2.0.")
    saved_tp = _arg(args, "tensor_model_parallel_size", "model_parallel_size")
    if saved_tp is not None and saved_tp != tp:
        raise ValueError(f"{str(folder)!r} has {tp} mp_rank_* folders but args.tensor_model_parallel_size="
                         f"{saved_tp}; copy every rank of the checkpoint.")
    if _arg(args, "pipeline_model_parallel_size", default=1) != 1:
        raise ValueError(f"args.pipeline_model_parallel_size={args.pipeline_model_parallel_size} in {str(path0)!r}; "
                         "only tensor parallelism is supported: merge the pipeline stages first.")

    names = shards[0]
    for required in ("transformer.word_embeddings.weight", "transformer.position_embeddings.weight",
                     "transformer.final_layernorm.weight"):
        if required not in names:
            raise ValueError(f"{required.split('.', 1)[1]!r} is missing from {str(path0)!r}; pass a complete "
                             "Megatron-LM GPT checkpoint.")
    layers = sorted({int(k.split(".")[2]) for k in names if k.startswith("transformer.layers.")})
    if layers != list(range(len(layers))) or not layers:
        raise ValueError(f"transformer layers {layers} in {str(path0)!r} are not 0..L-1; the checkpoint is incomplete.")
    num_layers = len(layers)
    for layer in layers:
        missing = [f"layers.{layer}.{m}.{p}" for m in _LAYER_MODULES for p in ("weight", "bias")
                   if f"transformer.layers.{layer}.{m}.{p}" not in names]
        if missing:
            raise ValueError(f"{missing} missing from {str(path0)!r}; pass a complete Megatron-LM GPT checkpoint.")
    hidden = names["transformer.word_embeddings.weight"].shape[1]

    # Hyper-parameters: from args when saved, checked against the tensors.
    heads = _arg(args, "num_attention_heads")
    if num_attention_heads is not None:
        if heads is not None and heads != num_attention_heads:
            raise ValueError(f"num_attention_heads={num_attention_heads} disagrees with the checkpoint's "
                             f"args.num_attention_heads={heads}; drop the option.")
        heads = num_attention_heads
    if heads is None:
        raise ValueError(f"{str(path0)!r} saves no args, and the number of attention heads cannot be read from the "
                         "weights; pass num_attention_heads= (--num-attention-heads).")
    if heads <= 0 or hidden % heads or heads % tp:
        raise ValueError(f"num_attention_heads={heads} must divide the hidden size {hidden} and be divisible by the "
                         f"TP degree {tp}; pass the value the model was trained with.")
    for name, value in (("num_layers", num_layers), ("hidden_size", hidden)):
        saved = _arg(args, name)
        if saved is not None and saved != value:
            raise ValueError(f"args.{name}={saved} but the weights in {str(path0)!r} have {value}; the checkpoint is "
                             "inconsistent.")

    # Merge the TP shards into full tensors with our names and QKV layout.
    state: dict[str, torch.Tensor] = {}
    for key in names:
        parts = [shard[key] for shard in shards]
        module = key.rsplit(".", 1)[0]
        if key == "transformer.word_embeddings.weight":
            state[key] = torch.cat(parts, dim=0)
        elif module.endswith("query_key_value"):
            if parts[0].shape[0] != 3 * hidden // tp:
                raise ValueError(f"{key!r} has {parts[0].shape[0]} rows per TP rank, expected 3 x {hidden} / {tp}; "
                                 "the checkpoint does not match its hidden size.")
            state[key] = _merge_qkv(parts, version, heads, hidden // heads)
        elif module.endswith(_COLUMN):
            state[key] = torch.cat(parts, dim=0)
        elif module.endswith(_ROW_WEIGHTS) and key.endswith(".weight"):
            state[key] = torch.cat(parts, dim=1)
        else:
            state[key] = parts[0]
    del shards

    padded = state["transformer.word_embeddings.weight"].shape[0]
    saved_padded = _arg(args, "padded_vocab_size")
    if saved_padded is not None and saved_padded != padded:
        raise ValueError(f"args.padded_vocab_size={saved_padded} but the merged word embeddings have {padded} rows; "
                         "the checkpoint is inconsistent or ranks are missing.")
    # "Beside the checkpoint": the folder passed in, then the iteration folder (or, when an iteration folder was
    # passed, the save directory above it).
    tokenizer, raw_files = _find_tokenizer([src, folder] if folder != src else [src, src.parent])
    if vocab_size is None and tokenizer is not None:
        vocab_size = len(tokenizer)
        logger.info("true vocabulary size %d from the tokenizer beside %s", vocab_size, src)
    if vocab_size is None:
        vocab_size = padded
        logger.warning("no tokenizer beside %s and no vocab_size given: keeping the padded vocabulary of %d rows "
                       "(pass vocab_size= / --vocab-size to strip the padding).", src, padded)
    if not 0 < vocab_size <= padded:
        raise ValueError(f"vocab_size={vocab_size} must be between 1 and the checkpoint's padded vocabulary "
                         f"{padded}; pass the tokenizer's size.")
    if tokenizer is not None and len(tokenizer) > vocab_size:
        raise ValueError(f"the tokenizer beside {str(src)!r} has {len(tokenizer)} tokens but vocab_size={vocab_size}; "
                         "pass the tokenizer's size or the tokenizer the model was trained with.")
    state["transformer.word_embeddings.weight"] = state["transformer.word_embeddings.weight"][:vocab_size].clone()

    ffn = state["transformer.layers.0.mlp.dense_h_to_4h.weight"].shape[0]
    max_pos = state["transformer.position_embeddings.weight"].shape[0]
    for name, value in (("ffn_hidden_size", ffn), ("max_position_embeddings", max_pos)):
        saved = _arg(args, name)
        if saved is not None and saved != value:
            raise ValueError(f"args.{name}={saved} but the weights in {str(path0)!r} have {value}; the checkpoint is "
                             "inconsistent.")
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    eos = eos if eos is not None else (50256 if vocab_size > 50256 else None)  # GPT-2 BPE's <|endoftext|>
    dropout = _arg(args, "hidden_dropout", default=0.1)
    config = MegatronGPTConfig(
        vocab_size=vocab_size, max_position_embeddings=max_pos, hidden_size=hidden, num_layers=num_layers,
        num_attention_heads=heads, ffn_hidden_size=ffn, hidden_act=_megatron_activation(args),
        hidden_dropout=dropout, attention_dropout=_arg(args, "attention_dropout", default=0.1),
        embedding_dropout=dropout,  # Megatron's embedding dropout is args.hidden_dropout
        layer_norm_epsilon=_arg(args, "layernorm_epsilon", default=1e-5),
        initializer_range=_arg(args, "init_method_std", default=0.02),
        make_vocab_size_divisible_by=_arg(args, "make_vocab_size_divisible_by", default=128),
        bos_token_id=eos, eos_token_id=eos,
    )
    dtype = state["transformer.word_embeddings.weight"].dtype
    if any(t.dtype != dtype for t in state.values()):
        state = {k: v.to(dtype) for k, v in state.items()}
    if dtype != torch.float32:
        config.dtype = dtype
    logger.info("Megatron checkpoint %s: TP=%d, checkpoint_version=%s, %d layers, hidden %d, %d heads, activation %s",
                folder, tp, version, num_layers, hidden, heads, config.hidden_act)
    return _save_folder(out, config, state, tokenizer, {k: v for k, v in raw_files.items()
                                                        if k in ("vocab.json", "merges.txt")})


CONVERTERS: dict[str, Callable[..., Path]] = {"gpt2-hf": convert_gpt2_hf, "megatron-gpt": convert_megatron_gpt}
