"""Reading foreign checkpoints for the Megatron-LM families (GPT and BERT converters) and writing model folders.

Paper: Shoeybi et al., "Megatron-LM", arXiv 1909.08053. Reference: NVIDIA/Megatron-LM at tags v1.0 and v2.6
(`megatron/checkpointing.py`: on-disk layout and `fix_query_key_value_ordering`; `megatron/model/transformer.py`;
`tools/merge_mp_partitions.py`), and the 2019 `mpu/` at abe36e2.

What lives here is what every Megatron model shares:

* the output side: `save_model_folder` (the shared strict key/shape fit of `adlr_hf.conversion`, then an atomic
  write of weights + tokenizer), `find_tokenizer`;
* reading Megatron-LM checkpoints: `resolve_iteration_dir` (`latest_checkpointed_iteration.txt` ->
  `{iter_XXXXXXX,release}`), `rank_files` (`mp_rank_XX/model_optim_rng.pt`), `load_megatron_file`
  (`torch.load(weights_only=True)` with an allow-list), `load_megatron_shards`, `flatten`, `megatron_layer_key`;
* merging TP shards into full tensors (`merge_tp_shards`), including the fused QKV rows of the three
  `checkpoint_version` layouts:

  | `checkpoint_version` | QKV rows of one TP shard | merged (TP=p) |
  |---|---|---|
  | 0 (2019, v1.0)        | `[3, np/p, hn]`  (stride-3 split of `[Q_all; K_all; V_all]`) | `[3, np, hn]` |
  | 1.0                   | `[np/p, hn, 3]`  | `[np, hn, 3]` |
  | >= 2.0 (v2.x, legacy) | `[np/p, 3, hn]`  (plain split, per-head) | `[np, 3, hn]` |

  Every layout is first brought to per-head `[np/p, 3, hn]` per shard, concatenated over ranks, and transposed to our
  blocked `[3, np, hn]` (= `[Q_all; K_all; V_all]`);
* hyper-parameter checks against the saved `args` (`check_megatron_layout`, `check_megatron_args`,
  `resolve_num_heads`, `check_saved_args`, `megatron_activation`) and the vocabulary size (`resolve_vocab_size`).

Checkpoints are read with `torch.load(weights_only=True)`; the only extra globals allowed are the ones Megatron pickles
beside the weights (`argparse.Namespace`, numpy's RNG state) and, for classes from Megatron's own modules (enums in
`args`, a loss scaler in the optimizer state), an inert placeholder that runs no code.
"""

from __future__ import annotations

import argparse
import logging
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ... import conversion
from ...conversion import check_out_dir, fitted_model

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "model_optim_rng.pt"
TRACKER_FILE = "latest_checkpointed_iteration.txt"


# ----------------------------------------------------------------------------------------------------------------
# Output folder
# ----------------------------------------------------------------------------------------------------------------


def save_model_folder(out: Path, model_class, config, state_dict: dict[str, torch.Tensor], tokenizer,
                      extra_files: dict[str, Path]) -> Path:
    """Fit `state_dict` to `model_class(config)` strictly and write it, the tokenizer and raw tokenizer files
    atomically to `out`."""
    model = fitted_model(model_class, config, state_dict, "converted weights")
    conversion.save_model_folder(out, model, (tokenizer,), extra_files)
    logger.info("wrote %s: %s (%d layers, hidden %d, vocab %d)", out, model_class.__name__, config.num_layers,
                config.hidden_size, config.vocab_size)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer found beside the source
# ----------------------------------------------------------------------------------------------------------------

# (label, files that must all be present, loader(folder) -> tokenizer): tried in order when AutoTokenizer fails.
TokenizerFallback = tuple[str, tuple[str, ...], Callable[[Path], object]]


def find_tokenizer(folders: Sequence[Path], files: Sequence[str], fallbacks: Sequence[TokenizerFallback] = ()):
    """(tokenizer or None, {file name: path} of raw tokenizer files) from the first folder holding any of `files`."""
    for folder in folders:
        present = {name: folder / name for name in files if (folder / name).is_file()}
        if not present:
            continue
        errors = []
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True), present
        except Exception as err:  # noqa: BLE001 - a folder without tokenizer_config.json: try the raw files next
            errors.append(f"AutoTokenizer: {err}")
        for label, required, loader in fallbacks:
            if all(name in present for name in required):
                try:
                    return loader(folder), present
                except Exception as err:  # noqa: BLE001
                    errors.append(f"{label}: {err}")
        detail = "; ".join(e.strip().splitlines()[0] for e in errors)
        raise ValueError(f"tokenizer files {sorted(present)} in {str(folder)!r} could not be loaded ({detail}); "
                         "fix or remove them.")
    return None, {}


def token_id_within(value, vocab_size: int, name: str):
    if isinstance(value, int) and 0 <= value < vocab_size:
        return value
    if value is not None:
        logger.warning("%s=%r is outside the vocabulary of %d tokens; the converted config sets it to None.", name,
                       value, vocab_size)
    return None


# ----------------------------------------------------------------------------------------------------------------
# Megatron-LM checkpoints: files
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


def load_megatron_file(path: Path) -> dict:
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
                         "checkpoint saved by save_checkpoint.")
    return data


def resolve_iteration_dir(src: Path) -> Path:
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


def rank_files(folder: Path) -> list[Path]:
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


def flatten(tree: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
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


def megatron_layer_key(name: str) -> tuple[str, str, str] | None:
    """`layers.N.<module>.<param>` (relative to the transformer/encoder) -> (N, module, param) with v2.x module
    names (v1.0's `attention.*` becomes `self_attention.*`), or None for anything else."""
    m = _MEGATRON_LAYER.fullmatch(name)
    if m is None:
        return None
    layer, module, param = m.groups()
    module = module if module.startswith(("self_", "input", "post", "mlp")) else f"self_{module}"
    return layer, module, param


def load_megatron_shards(files: list[Path], normalise: Callable[[dict, Path], dict[str, torch.Tensor]]):
    """Read every rank, rename with `normalise(model_dict, path)` and check the ranks agree (keys, shapes, version).
    Returns (per-rank state dicts, checkpoint_version as a float, rank 0's args or None)."""
    shards, versions, args = [], [], None
    for rank, path in enumerate(files):
        data = load_megatron_file(path)
        if rank == 0:
            args = data.get("args")
        versions.append(data.get("checkpoint_version", 0))
        shards.append(normalise(data["model"], path))
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


# ----------------------------------------------------------------------------------------------------------------
# Megatron-LM checkpoints: merging TP shards
# ----------------------------------------------------------------------------------------------------------------


def _qkv_per_head(shard: torch.Tensor, version: float, heads: int, head_dim: int) -> torch.Tensor:
    """One TP shard's fused QKV rows -> [heads, 3, head_dim, *rest] (its own heads)."""
    rest = shard.shape[1:]
    if version == 0:
        return shard.view(3, heads, head_dim, *rest).transpose(0, 1)
    if version == 1.0:
        return shard.view(heads, head_dim, 3, *rest).transpose(1, 2)
    return shard.view(heads, 3, head_dim, *rest)


def merge_qkv(shards: list[torch.Tensor], version: float, heads: int, head_dim: int) -> torch.Tensor:
    """TP shards of a fused QKV weight/bias in `version`'s layout -> our blocked [Q_all; K_all; V_all] rows."""
    per_rank = heads // len(shards)
    merged = torch.cat([_qkv_per_head(s, version, per_rank, head_dim) for s in shards], dim=0)  # [np, 3, hn, ...]
    return merged.transpose(0, 1).reshape(3 * heads * head_dim, *shards[0].shape[1:]).contiguous()


# How one (renamed) key is split over TP ranks: "vocab" / "column" (rows, dim 0), "row" (columns, dim 1; the weight
# of a RowParallelLinear, whose bias is replicated), "qkv" (fused QKV rows, see the table above) or None (replicated:
# taken from rank 0).
Partition = Callable[[str], str | None]


def merge_tp_shards(shards: list[dict[str, torch.Tensor]], partition: Partition, *, version: float, heads: int,
                    hidden: int) -> dict[str, torch.Tensor]:
    """Full tensors from the per-rank state dicts (already renamed and checked to agree in keys and shapes)."""
    tp = len(shards)
    state: dict[str, torch.Tensor] = {}
    for key in shards[0]:
        parts = [shard[key] for shard in shards]
        how = partition(key)
        if how == "qkv":
            if parts[0].shape[0] != 3 * hidden // tp:
                raise ValueError(f"{key!r} has {parts[0].shape[0]} rows per TP rank, expected 3 x {hidden} / {tp}; "
                                 "the checkpoint does not match its hidden size.")
            state[key] = merge_qkv(parts, version, heads, hidden // heads)
        elif how in ("vocab", "column"):
            state[key] = torch.cat(parts, dim=0)
        elif how == "row":
            state[key] = torch.cat(parts, dim=1)
        elif how is None:
            state[key] = parts[0]
        else:
            raise ValueError(f"unknown partition {how!r} for {key!r}")
    return state


# ----------------------------------------------------------------------------------------------------------------
# Megatron-LM checkpoints: hyper-parameters
# ----------------------------------------------------------------------------------------------------------------


def saved_arg(args, *names, default=None):
    """The first of `names` that the checkpoint's `args` hold (not None), else `default`."""
    for name in names:
        if args is not None and getattr(args, name, None) is not None:
            return getattr(args, name)
    return default


def megatron_activation(args, model_name: str) -> str:
    """The transformer MLP's activation as an ACT2FN name."""
    if args is None:
        return "gelu_pytorch_tanh"  # the 2019 code (no args saved) always used OpenAI's tanh GeLU
    if getattr(args, "swiglu", False) or getattr(args, "squared_relu", False):
        raise ValueError(f"the checkpoint uses a gated/squared-ReLU MLP (args.swiglu/args.squared_relu), which "
                         f"{model_name} does not implement; it cannot be converted.")
    if getattr(args, "openai_gelu", False):
        return "gelu_pytorch_tanh"
    if getattr(args, "onnx_safe", False):
        return "gelu"
    # v2.x fuses bias+GeLU by default, and the fused kernel is the tanh approximation (megatron/model/fused_bias_gelu.py)
    if getattr(args, "bias_gelu_fusion", False):
        return "gelu_pytorch_tanh"
    return "gelu"


def check_megatron_args(args, path: Path, model_name: str, rejects: dict[str, tuple[bool, str]]) -> None:
    """Reject boolean `args` whose value differs from ours (`rejects`: name -> (our value, why)), and position
    embeddings / normalisation other than learned absolute / LayerNorm."""
    if args is None:
        return
    for name, (ours, why) in rejects.items():
        if bool(getattr(args, name, ours)) != ours:
            raise ValueError(f"args.{name}={getattr(args, name)!r} in {str(path)!r} is not supported ({why}); this "
                             "checkpoint cannot be converted.")
    for name, ours in (("position_embedding_type", "learned_absolute"), ("normalization", "LayerNorm")):
        value = getattr(args, name, ours)
        if value != ours:
            raise ValueError(f"args.{name}={value!r} in {str(path)!r} is not supported ({model_name} uses {ours}); "
                             "this checkpoint cannot be converted.")


def check_megatron_layout(args, version: float, tp: int, folder: Path, path0: Path) -> None:
    """The checkpoint version is known, every TP rank is present, and there is one pipeline stage."""
    if version not in (0.0, 1.0) and version < 2.0:
        raise ValueError(f"checkpoint_version={version!r} in {str(path0)!r} is unknown; Megatron-LM wrote 0, 1.0 "
                         "and >= 2.0.")
    saved_tp = saved_arg(args, "tensor_model_parallel_size", "model_parallel_size")
    if saved_tp is not None and saved_tp != tp:
        raise ValueError(f"{str(folder)!r} has {tp} mp_rank_* folders but args.tensor_model_parallel_size="
                         f"{saved_tp}; copy every rank of the checkpoint.")
    if saved_arg(args, "pipeline_model_parallel_size", default=1) != 1:
        raise ValueError(f"args.pipeline_model_parallel_size={args.pipeline_model_parallel_size} in {str(path0)!r}; "
                         "only tensor parallelism is supported: merge the pipeline stages first.")


def layer_indices(names, prefix: str, path0: Path, what: str) -> list[int]:
    """The sorted layer numbers of keys `<prefix>N.…`; they must be 0..L-1 and not empty."""
    start = len(prefix)
    layers = sorted({int(k[start:].split(".", 1)[0]) for k in names if k.startswith(prefix)})
    if layers != list(range(len(layers))) or not layers:
        raise ValueError(f"transformer layers {layers} in {str(path0)!r} are not 0..L-1; the {what} checkpoint is "
                         "incomplete.")
    return layers


def resolve_num_heads(args, num_attention_heads: int | None, hidden: int, tp: int, path0: Path) -> int:
    heads = saved_arg(args, "num_attention_heads")
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
    return heads


def check_saved_args(args, values: dict[str, int], path0: Path) -> None:
    """Each `args.<name>` that was saved must equal the value read from the weights."""
    for name, value in values.items():
        saved = saved_arg(args, name)
        if saved is not None and saved != value:
            raise ValueError(f"args.{name}={saved} but the weights in {str(path0)!r} have {value}; the checkpoint is "
                             "inconsistent.")


def resolve_vocab_size(vocab_size: int | None, padded: int, args, tokenizer, src: Path) -> int:
    """The true vocabulary: `vocab_size` if given, else the tokenizer's size, else the padded size (with a
    warning). Checked against `args.padded_vocab_size`, the padded rows and the tokenizer."""
    saved_padded = saved_arg(args, "padded_vocab_size")
    if saved_padded is not None and saved_padded != padded:
        raise ValueError(f"args.padded_vocab_size={saved_padded} but the merged word embeddings have {padded} rows; "
                         "the checkpoint is inconsistent or ranks are missing.")
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
    return vocab_size


def unify_dtype(state: dict[str, torch.Tensor], config, reference_key: str) -> dict[str, torch.Tensor]:
    """Cast every tensor to the dtype of `state[reference_key]` and record a non-fp32 dtype in the config."""
    dtype = state[reference_key].dtype
    if any(t.dtype != dtype for t in state.values()):
        state = {k: v.to(dtype) for k, v in state.items()}
    if dtype != torch.float32:
        config.dtype = dtype
    return state


def open_megatron_checkpoint(src_dir, out_dir, overwrite: bool, normalise, check_args):
    """The first steps every Megatron-LM converter takes: the checked output folder, the iteration folder, its rank
    files, the shards (keys normalised by `normalise`), their `checkpoint_version` and saved `args` (checked by
    `check_args(args, path)` and against the layout). Returns (src, out, folder, files, shards, version, args)."""
    src = Path(src_dir).expanduser().absolute()
    out = check_out_dir(out_dir, src, overwrite)
    folder = resolve_iteration_dir(src)
    files = rank_files(folder)
    shards, version, args = load_megatron_shards(files, normalise)
    check_args(args, files[0])
    check_megatron_layout(args, version, len(files), folder, files[0])
    return src, out, folder, files, shards, version, args
