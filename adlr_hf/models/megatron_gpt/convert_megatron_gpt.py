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
  The three `checkpoint_version` QKV layouts are tabled in `megatron_common.checkpoints`.

Both write atomically (a temporary sibling folder renamed at the end) and validate every input before writing.
Checkpoint discovery, safe loading, shard merging and the atomic write are shared with the BERT converter:
`adlr_hf.models.megatron_common.checkpoints`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable

import torch

from ...conversion import check_out_dir, read_hf_weights, read_json
from ..megatron_common import checkpoints as megatron
from .configuration_megatron_gpt import MegatronGPTConfig

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")


def _gpt2_bpe(folder: Path):
    from transformers import GPT2Tokenizer

    return GPT2Tokenizer.from_pretrained(str(folder), local_files_only=True)


def _find_tokenizer(folders: list[Path]):
    """(tokenizer or None, raw files) beside the source: AutoTokenizer, else GPT-2 BPE from vocab.json + merges.txt."""
    return megatron.find_tokenizer(folders, TOKENIZER_FILES,
                                   [("GPT2Tokenizer", ("vocab.json", "merges.txt"), _gpt2_bpe)])


def _save_folder(out: Path, config: MegatronGPTConfig, state_dict: dict[str, torch.Tensor], tokenizer,
                 extra_files: dict[str, Path]) -> Path:
    from .modeling_megatron_gpt import MegatronGPTForCausalLM

    return megatron.save_model_folder(out, MegatronGPTForCausalLM, config, state_dict, tokenizer, extra_files)


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


def _gpt2_config(src: Path) -> MegatronGPTConfig:
    from transformers import GPT2Config

    if not src.is_dir():
        raise FileNotFoundError(f"source folder {str(src)!r} does not exist; pass a GPT2LMHeadModel.save_pretrained "
                                "folder.")
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{str(src / 'config.json')!r} is missing; pass the folder that "
                                "GPT2LMHeadModel.save_pretrained wrote (config.json + weights).")
    raw = read_json(src / "config.json")
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
        bos_token_id=megatron.token_id_within(gpt2.bos_token_id, gpt2.vocab_size, "bos_token_id"),
        eos_token_id=megatron.token_id_within(gpt2.eos_token_id, gpt2.vocab_size, "eos_token_id"),
        pad_token_id=megatron.token_id_within(gpt2.pad_token_id, gpt2.vocab_size, "pad_token_id"),
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
    out = check_out_dir(out_dir, src, overwrite)
    config = _gpt2_config(src)
    state = _map_gpt2_weights(read_hf_weights(src, "GPT2LMHeadModel.save_pretrained output"), src)
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


_LAYER_MODULES = ("input_layernorm", "self_attention.query_key_value", "self_attention.dense",
                  "post_attention_layernorm", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")
_COLUMN = ("mlp.dense_h_to_4h",)
_ROW_WEIGHTS = ("self_attention.dense", "mlp.dense_4h_to_h")


def _partition(key: str) -> str | None:
    """How Megatron split `key` (our name) over the TP ranks (see megatron.merge_tp_shards)."""
    module = key.rsplit(".", 1)[0]
    if key == "transformer.word_embeddings.weight":
        return "vocab"
    if module.endswith("query_key_value"):
        return "qkv"
    if module.endswith(_COLUMN):
        return "column"
    if module.endswith(_ROW_WEIGHTS) and key.endswith(".weight"):
        return "row"
    return None


def _normalise_megatron_keys(model: dict, path: Path) -> dict[str, torch.Tensor]:
    """Flat Megatron names -> our names (still per-shard tensors). Accepts the 2019 flat layout, v1.0's
    `language_model.{embedding,transformer}` and v2.x's `language_model.{embedding,encoder}`."""
    flat = megatron.flatten(model)
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
        elif prefix and (parts := megatron.megatron_layer_key(name)):
            layer, module, param = parts
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


def _check_megatron_args(args, path: Path) -> None:
    megatron.check_megatron_args(args, path, "MegatronGPT", {
        "apply_residual_connection_post_layernorm": (False, "MegatronGPT adds the residual before the layer norm"),
        "untie_embeddings_and_output_weights": (False, "MegatronGPT ties the LM head to the word embeddings"),
        "group_query_attention": (False, "MegatronGPT has one key/value head per query head"),
    })


def convert_megatron_gpt(src_dir, out_dir, *, vocab_size: int | None = None, num_attention_heads: int | None = None,
                         overwrite: bool = False) -> Path:
    """Convert an original Megatron-LM GPT checkpoint (any TP degree) into a `MegatronGPTForCausalLM` folder.

    `vocab_size` is the true vocabulary (the checkpoint stores it padded); without it the size of a tokenizer found
    beside the checkpoint is used, else the padded size is kept (with a warning). `num_attention_heads` is needed
    only when the checkpoint has no saved `args`.
    """
    src, out, folder, files, shards, version, args = megatron.open_megatron_checkpoint(
        src_dir, out_dir, overwrite, _normalise_megatron_keys, _check_megatron_args)
    tp, path0 = len(files), files[0]

    names = shards[0]
    for required in ("transformer.word_embeddings.weight", "transformer.position_embeddings.weight",
                     "transformer.final_layernorm.weight"):
        if required not in names:
            raise ValueError(f"{required.split('.', 1)[1]!r} is missing from {str(path0)!r}; pass a complete "
                             "Megatron-LM GPT checkpoint.")
    layers = megatron.layer_indices(names, "transformer.layers.", path0, "GPT")
    num_layers = len(layers)
    for layer in layers:
        missing = [f"layers.{layer}.{m}.{p}" for m in _LAYER_MODULES for p in ("weight", "bias")
                   if f"transformer.layers.{layer}.{m}.{p}" not in names]
        if missing:
            raise ValueError(f"{missing} missing from {str(path0)!r}; pass a complete Megatron-LM GPT checkpoint.")
    hidden = names["transformer.word_embeddings.weight"].shape[1]

    # Hyper-parameters: from args when saved, checked against the tensors.
    heads = megatron.resolve_num_heads(args, num_attention_heads, hidden, tp, path0)
    megatron.check_saved_args(args, {"num_layers": num_layers, "hidden_size": hidden}, path0)

    # Merge the TP shards into full tensors with our names and QKV layout.
    state = megatron.merge_tp_shards(shards, _partition, version=version, heads=heads, hidden=hidden)
    del shards

    padded = state["transformer.word_embeddings.weight"].shape[0]
    # "Beside the checkpoint": the folder passed in, then the iteration folder (or, when an iteration folder was
    # passed, the save directory above it).
    tokenizer, raw_files = _find_tokenizer([src, folder] if folder != src else [src, src.parent])
    vocab_size = megatron.resolve_vocab_size(vocab_size, padded, args, tokenizer, src)
    state["transformer.word_embeddings.weight"] = state["transformer.word_embeddings.weight"][:vocab_size].clone()

    ffn = state["transformer.layers.0.mlp.dense_h_to_4h.weight"].shape[0]
    max_pos = state["transformer.position_embeddings.weight"].shape[0]
    megatron.check_saved_args(args, {"ffn_hidden_size": ffn, "max_position_embeddings": max_pos}, path0)
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    eos = eos if eos is not None else (50256 if vocab_size > 50256 else None)  # GPT-2 BPE's <|endoftext|>
    dropout = megatron.saved_arg(args, "hidden_dropout", default=0.1)
    config = MegatronGPTConfig(
        vocab_size=vocab_size, max_position_embeddings=max_pos, hidden_size=hidden, num_layers=num_layers,
        num_attention_heads=heads, ffn_hidden_size=ffn, hidden_act=megatron.megatron_activation(args, "MegatronGPT"),
        hidden_dropout=dropout, attention_dropout=megatron.saved_arg(args, "attention_dropout", default=0.1),
        embedding_dropout=dropout,  # Megatron's embedding dropout is args.hidden_dropout
        layer_norm_epsilon=megatron.saved_arg(args, "layernorm_epsilon", default=1e-5),
        initializer_range=megatron.saved_arg(args, "init_method_std", default=0.02),
        make_vocab_size_divisible_by=megatron.saved_arg(args, "make_vocab_size_divisible_by", default=128),
        bos_token_id=eos, eos_token_id=eos,
    )
    state = megatron.unify_dtype(state, config, "transformer.word_embeddings.weight")
    logger.info("Megatron checkpoint %s: TP=%d, checkpoint_version=%s, %d layers, hidden %d, %d heads, activation %s",
                folder, tp, version, num_layers, hidden, heads, config.hidden_act)
    return _save_folder(out, config, state, tokenizer, {k: v for k, v in raw_files.items()
                                                        if k in ("vocab.json", "merges.txt")})


CONVERTERS: dict[str, Callable[..., Path]] = {"gpt2-hf": convert_gpt2_hf, "megatron-gpt": convert_megatron_gpt}
