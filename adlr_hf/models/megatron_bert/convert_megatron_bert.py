"""Convert BERT checkpoints into adlr_hf's `MegatronBertForMaskedLM` / `MegatronBertForPreTraining` folders.

Paper: Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
arXiv 1909.08053. Reference: NVIDIA/Megatron-LM `megatron/model/bert_model.py`, `megatron/model/language_model.py`,
`megatron/model/transformer.py`, `megatron/checkpointing.py` and `pretrain_bert.py` at tags v1.0 and v2.6;
huggingface/transformers `models/bert/modeling_bert.py` (the layout `convert_bert_hf` reads).

Two sources:

* `convert_bert_hf`: a transformers `BertForMaskedLM` / `BertForPreTraining` `save_pretrained` folder -> a **post-LN**
  model (original BERT: LN on the embeddings, LN after each residual add). `query`/`key`/`value` are stacked into our
  blocked `[Q_all; K_all; V_all]` rows; `attention.output.LayerNorm` is our `input_layernorm` and `output.LayerNorm`
  our `post_attention_layernorm` (post-LN meaning). With NSP weights (`cls.seq_relationship`) the result is a
  `MegatronBertForPreTraining` whose `binary_head` is that NSP classifier and whose `bert.pooler` is
  `bert.pooler.dense`.
  Note: NSP (next-sentence prediction: is B the sentence that followed A, or a random one; label 0 = is next) is not
  Megatron's SOP (sentence-order prediction: are two consecutive segments in order or swapped; label 0 = in order).
  The converted `binary_head` still computes the NSP logits; fine-tune it before reading them as SOP.
* `convert_megatron_bert`: an original Megatron-LM BERT checkpoint (`{iter_XXXXXXX,release}/mp_rank_XX/
  model_optim_rng.pt`, v1.0 `language_model.{embedding,transformer,pooler}` or v2.x `language_model.{embedding,
  encoder,pooler}`, plus `lm_head.{dense,layernorm,bias}` and `binary_head`) at any TP degree and in any of the three
  QKV layouts -> a **pre-LN** model (Megatron's BERT is pre-LN with a final LN). The TP shards are merged (QKV by
  `checkpoint_version`, column-parallel rows, row-parallel columns, the word embeddings and the vocab-parallel MLM
  bias along the vocabulary) and the vocabulary padding is stripped from both. A checkpoint trained with
  `--bert-no-binary-head` (v2.x) has no pooler, binary head or token-type embeddings: it becomes a
  `MegatronBertForMaskedLM` with `type_vocab_size=1` and a zero token-type row, which adds nothing, exactly as the
  missing embedding did. `--apply-residual-connection-post-layernorm` checkpoints are rejected: that variant adds the
  residual taken from the layer norm's *output* (LN(x) + Attn(LN(x))), which is neither our pre-LN (x + Attn(LN(x)))
  nor our post-LN (LN(x + Attn(x))) layout.

  Two differences from Megatron-LM that a converted model keeps: (1) Megatron masks padded *query* rows as well as
  padded keys (`bert_extended_attention_mask` builds a [b, s, s] mask); we mask keys only, so outputs at padded
  positions differ (they are never used) and every real position is the same. (2) none in the activations: v2.x's
  default fused bias-GeLU in the MLP is the tanh approximation while its LM head keeps erf GeLU; the converted config
  records both (`hidden_act`, `head_hidden_act`).

Both converters validate every input before writing and write atomically, with the machinery shared with the GPT
converter (`adlr_hf.models.megatron_common.checkpoints`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable

import torch

from ...conversion import check_out_dir, read_hf_weights, read_json
from ..megatron_common import checkpoints as megatron
from .configuration_megatron_bert import AdlrMegatronBertConfig

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_LAYER_MODULES = ("input_layernorm", "attention.query_key_value", "attention.dense", "post_attention_layernorm",
                  "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")


def _save_folder(out: Path, config: AdlrMegatronBertConfig, state: dict[str, torch.Tensor], tokenizer,
                 extra_files: dict[str, Path]) -> Path:
    from .modeling_megatron_bert import MegatronBertForMaskedLM, MegatronBertForPreTraining

    model_class = MegatronBertForPreTraining if "binary_head.weight" in state else MegatronBertForMaskedLM
    return megatron.save_model_folder(out, model_class, config, state, tokenizer, extra_files)


def _wordpiece_loader(vocab_name: str, do_lower_case: bool) -> Callable[[Path], object]:
    def load(folder: Path):
        from transformers import BertTokenizer
        from transformers.models.bert.tokenization_bert import load_vocab

        return BertTokenizer(vocab=load_vocab(str(folder / vocab_name)), do_lower_case=do_lower_case)

    return load


# ----------------------------------------------------------------------------------------------------------------
# transformers BERT -> adlr_hf (post-LN)
# ----------------------------------------------------------------------------------------------------------------

_HF_LAYER = re.compile(r"bert\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)")
_HF_LAYER_KEYS = {
    "attention.output.dense": "attention.dense", "attention.output.LayerNorm": "input_layernorm",
    "intermediate.dense": "mlp.dense_h_to_4h", "output.dense": "mlp.dense_4h_to_h",
    "output.LayerNorm": "post_attention_layernorm",
}
_HF_KEYS = {
    "bert.embeddings.word_embeddings.weight": "bert.word_embeddings.weight",
    "bert.embeddings.position_embeddings.weight": "bert.position_embeddings.weight",
    "bert.embeddings.token_type_embeddings.weight": "bert.tokentype_embeddings.weight",
    "bert.embeddings.LayerNorm.weight": "bert.embedding_layernorm.weight",
    "bert.embeddings.LayerNorm.bias": "bert.embedding_layernorm.bias",
    "bert.pooler.dense.weight": "bert.pooler.weight", "bert.pooler.dense.bias": "bert.pooler.bias",
    "cls.predictions.transform.dense.weight": "lm_head.dense.weight",
    "cls.predictions.transform.dense.bias": "lm_head.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "lm_head.layernorm.weight",
    "cls.predictions.transform.LayerNorm.bias": "lm_head.layernorm.bias",
    "cls.seq_relationship.weight": "binary_head.weight", "cls.seq_relationship.bias": "binary_head.bias",
}
_HF_BUFFERS = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")


def _bert_config(src: Path) -> AdlrMegatronBertConfig:
    from transformers import BertConfig
    from transformers.activations import ACT2FN

    if not src.is_dir():
        raise FileNotFoundError(f"source folder {str(src)!r} does not exist; pass a BertForMaskedLM/BertForPreTraining "
                                "save_pretrained folder.")
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{str(src / 'config.json')!r} is missing; pass the folder that "
                                "BertForMaskedLM.save_pretrained wrote (config.json + weights).")
    raw = read_json(src / "config.json")
    if raw.get("model_type") != "bert":
        raise ValueError(f"config.json in {str(src)!r} has model_type={raw.get('model_type')!r}, not 'bert'; this "
                         "converter reads transformers BERT checkpoints only.")
    unsupported = {"position_embedding_type": (raw.get("position_embedding_type", "absolute"), "absolute"),
                   "is_decoder": (bool(raw.get("is_decoder", False)), False),
                   "add_cross_attention": (bool(raw.get("add_cross_attention", False)), False),
                   "tie_word_embeddings": (bool(raw.get("tie_word_embeddings", True)), True)}
    for name, (value, ours) in unsupported.items():
        if value != ours:
            raise ValueError(f"{name}={value!r} in {str(src / 'config.json')!r} has no counterpart in MegatronBert "
                             f"(which implements {name}={ours!r}); this checkpoint cannot be converted.")
    bert = BertConfig(**{k: v for k, v in raw.items() if k not in ("transformers_version",)})
    if not isinstance(bert.hidden_act, str) or bert.hidden_act not in ACT2FN:
        raise ValueError(f"hidden_act={bert.hidden_act!r} is not a transformers activation name; supported: "
                         f"{sorted(ACT2FN)}.")
    return AdlrMegatronBertConfig(
        vocab_size=bert.vocab_size, hidden_size=bert.hidden_size, num_layers=bert.num_hidden_layers,
        num_attention_heads=bert.num_attention_heads, ffn_hidden_size=bert.intermediate_size,
        max_position_embeddings=bert.max_position_embeddings, type_vocab_size=bert.type_vocab_size,
        hidden_act=bert.hidden_act, hidden_dropout=bert.hidden_dropout_prob,
        attention_dropout=bert.attention_probs_dropout_prob, layer_norm_epsilon=bert.layer_norm_eps,
        layernorm_position="post", initializer_range=bert.initializer_range,
        pad_token_id=megatron.token_id_within(bert.pad_token_id, bert.vocab_size, "pad_token_id"),
    )


def _map_bert_weights(state: dict[str, torch.Tensor], src: Path, num_layers: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    decoder_weight = decoder_bias = None
    for key, tensor in state.items():
        name = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if name.startswith(_HF_BUFFERS):
            continue  # buffers some transformers versions saved, not weights
        if name in _HF_KEYS:
            out[_HF_KEYS[name]] = tensor
        elif name in ("cls.predictions.bias", "cls.predictions.decoder.bias"):
            if decoder_bias is not None and not torch.equal(decoder_bias, tensor):
                raise ValueError(f"cls.predictions.bias and cls.predictions.decoder.bias differ in {str(src)!r}; "
                                 "transformers ties them, so the checkpoint is inconsistent.")
            decoder_bias = tensor
        elif name == "cls.predictions.decoder.weight":
            decoder_weight = tensor
        elif (m := _HF_LAYER.fullmatch(name)) and m.group(2).startswith("attention.self."):
            layer, module, param = m.groups()
            which = module[len("attention.self."):]
            if which not in ("query", "key", "value"):
                raise ValueError(f"unexpected weight {key!r} in {str(src)!r}; it is not part of BertForMaskedLM.")
            qkv.setdefault((layer, param), {})[which] = tensor
        elif (m := _HF_LAYER.fullmatch(name)) and m.group(2) in _HF_LAYER_KEYS:
            layer, module, param = m.groups()
            out[f"bert.layers.{layer}.{_HF_LAYER_KEYS[module]}.{param}"] = tensor
        else:
            raise ValueError(f"unexpected weight {key!r} in {str(src)!r}; it is not part of BertForMaskedLM or "
                             "BertForPreTraining, so this is not a plain transformers BERT checkpoint.")
    for (layer, param), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise ValueError(f"layer {layer} of {str(src)!r} has attention {param}s {sorted(parts)}, not query, key "
                             "and value; the checkpoint is incomplete.")
        out[f"bert.layers.{layer}.attention.query_key_value.{param}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0)  # blocked [Q_all; K_all; V_all] rows
    if "lm_head.dense.weight" not in out or decoder_bias is None:
        raise ValueError(f"{str(src)!r} has no masked-LM head (cls.predictions.*); pass a BertForMaskedLM or "
                         "BertForPreTraining checkpoint (a bare BertModel cannot predict tokens).")
    out["lm_head.decoder.bias"] = decoder_bias
    embed = out.get("bert.word_embeddings.weight")
    if decoder_weight is not None and embed is not None and not torch.equal(decoder_weight, embed):
        raise ValueError(f"cls.predictions.decoder.weight in {str(src)!r} differs from the word embeddings; "
                         "MegatronBert ties them, so an untied BERT cannot be converted.")
    if "binary_head.weight" not in out and "bert.pooler.weight" in out:
        logger.warning("%s has a pooler but no NSP head (cls.seq_relationship): converting to "
                       "MegatronBertForMaskedLM, which has no pooler; bert.pooler.dense is dropped.", src)
        del out["bert.pooler.weight"], out["bert.pooler.bias"]
    if "binary_head.weight" in out and "bert.pooler.weight" not in out:
        raise ValueError(f"{str(src)!r} has an NSP head (cls.seq_relationship) but no bert.pooler.dense; the "
                         "checkpoint is incomplete.")
    layers = sorted({int(k.split(".")[2]) for k in out if k.startswith("bert.layers.")})
    if layers != list(range(num_layers)):
        raise ValueError(f"{str(src)!r} holds encoder layers {layers[:8]}{'...' if len(layers) > 8 else ''} but "
                         f"config.json says num_hidden_layers={num_layers}; the checkpoint is incomplete.")
    return out


def convert_bert_hf(src_dir, out_dir, *, overwrite: bool = False) -> Path:
    """Convert a transformers `BertForMaskedLM` / `BertForPreTraining` folder into a post-LN
    `MegatronBertForMaskedLM` (or `MegatronBertForPreTraining` when the source has NSP weights) folder, with its
    tokenizer. The NSP head becomes `binary_head`; NSP is not SOP (see the module docstring)."""
    src = Path(src_dir).expanduser().absolute()
    out = check_out_dir(out_dir, src, overwrite)
    config = _bert_config(src)
    state = _map_bert_weights(read_hf_weights(src, "BertForMaskedLM.save_pretrained output"), src, config.num_layers)
    tokenizer, raw_files = megatron.find_tokenizer(
        [src], TOKENIZER_FILES, [("BertTokenizer", ("vocab.txt",), _wordpiece_loader("vocab.txt", True))])
    if tokenizer is None:
        logger.warning("no tokenizer files in %s; the converted folder has no tokenizer.", src)
    elif len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer in {str(src)!r} has {len(tokenizer)} tokens but the model only "
                         f"{config.vocab_size}; use the tokenizer the model was trained with.")
    if "binary_head.weight" in state:
        logger.info("%s has an NSP head: writing MegatronBertForPreTraining; its binary_head predicts NSP "
                    "(0 = B follows A), not SOP, until fine-tuned.", src)
    state = megatron.unify_dtype(state, config, "bert.word_embeddings.weight")
    return _save_folder(out, config, state, tokenizer, {k: v for k, v in raw_files.items() if k == "vocab.txt"})


# ----------------------------------------------------------------------------------------------------------------
# Megatron-LM BERT -> adlr_hf (pre-LN)
# ----------------------------------------------------------------------------------------------------------------

_EMBEDDINGS = {"word_embeddings.weight": "bert.word_embeddings.weight",
               "position_embeddings.weight": "bert.position_embeddings.weight",
               "tokentype_embeddings.weight": "bert.tokentype_embeddings.weight"}
_HEADS = {"pooler.dense.weight": "bert.pooler.weight", "pooler.dense.bias": "bert.pooler.bias",
          "lm_head.bias": "lm_head.decoder.bias",
          "lm_head.dense.weight": "lm_head.dense.weight", "lm_head.dense.bias": "lm_head.dense.bias",
          "lm_head.layernorm.weight": "lm_head.layernorm.weight", "lm_head.layernorm.bias": "lm_head.layernorm.bias",
          "binary_head.weight": "binary_head.weight", "binary_head.bias": "binary_head.bias"}


def _normalise_megatron_keys(model: dict, path: Path) -> dict[str, torch.Tensor]:
    """Megatron BertModel names (v1.0 `language_model.{embedding,transformer,pooler}`, v2.x `...encoder...`, plus
    `lm_head` and `binary_head`) -> our names (still per-shard tensors)."""
    out = {}
    for key, tensor in megatron.flatten(model).items():
        name = key[len("language_model."):] if key.startswith("language_model.") else key
        if name.startswith("embedding.") and name[len("embedding."):] in _EMBEDDINGS:
            out[_EMBEDDINGS[name[len("embedding."):]]] = tensor
            continue
        if name in _HEADS:
            out[_HEADS[name]] = tensor
            continue
        body = next((p for p in ("transformer.", "encoder.") if name.startswith(p)), None)
        rest = name[len(body):] if body else None
        if body and rest in ("final_layernorm.weight", "final_layernorm.bias"):
            out[f"bert.{rest}"] = tensor
        elif body and (parts := megatron.megatron_layer_key(rest)):
            layer, module, param = parts
            out[f"bert.layers.{layer}.{module.replace('self_attention.', 'attention.')}.{param}"] = tensor
        else:
            hint = ""
            if "word_embeddings_for_head" in key:
                hint = " (a pipeline stage: merge the pipeline stages first)"
            elif "linear_qkv" in key or "layernorm_qkv" in key or "decoder.layers" in key:
                hint = " (a Megatron-Core / Transformer-Engine layout, which this converter does not read)"
            raise ValueError(f"unexpected weight {key!r} in {str(path)!r}{hint}; only BERT checkpoints of "
                             "Megatron-LM's legacy model (v1.0-v2.x layout) are supported.")
    return out


def _partition(key: str) -> str | None:
    """How Megatron split `key` (our name) over the TP ranks (see megatron.merge_tp_shards)."""
    if key in ("bert.word_embeddings.weight", "lm_head.decoder.bias"):
        return "vocab"  # VocabParallelEmbedding rows; BertLMHead.bias is split like them (partition_dim 0)
    if ".attention.query_key_value." in key:
        return "qkv"
    if ".mlp.dense_h_to_4h." in key:
        return "column"
    if key.endswith((".attention.dense.weight", ".mlp.dense_4h_to_h.weight")):
        return "row"
    return None


def _check_megatron_args(args, path: Path) -> None:
    megatron.check_megatron_args(args, path, "MegatronBert", {
        "apply_residual_connection_post_layernorm": (
            False, "that variant adds the residual from the layer norm's output, LN(x) + Attn(LN(x)), which is "
                   "neither MegatronBert's pre-LN x + Attn(LN(x)) nor its post-LN LN(x + Attn(x))"),
        "untie_embeddings_and_output_weights": (False, "MegatronBert ties the MLM decoder to the word embeddings"),
        "group_query_attention": (False, "MegatronBert has one key/value head per query head"),
    })


def _lm_head_activation(args) -> str:
    """BertLMHead's GeLU: erf (`F.gelu`) unless --openai-gelu (v1.0 and v2.6 `bert_model.py`)."""
    return "gelu_pytorch_tanh" if getattr(args, "openai_gelu", False) else "gelu"


def _megatron_tokenizer(src: Path, folder: Path, args):
    """The tokenizer beside the checkpoint: a transformers tokenizer folder, or Megatron's WordPiece vocab file
    (`vocab.txt` or the file name `args.vocab_file` had), cased/uncased from `args.tokenizer_type`."""
    vocab_name = Path(getattr(args, "vocab_file", None) or "vocab.txt").name
    tokenizer_type = getattr(args, "tokenizer_type", None)
    if tokenizer_type is not None and tokenizer_type not in ("BertWordPieceLowerCase", "BertWordPieceCase"):
        logger.warning("args.tokenizer_type=%r is not a BERT WordPiece tokenizer; a vocab file beside the checkpoint "
                       "is read as WordPiece anyway.", tokenizer_type)
    lower = tokenizer_type != "BertWordPieceCase"
    files = tuple(dict.fromkeys((*TOKENIZER_FILES, vocab_name)))
    fallbacks = [("BertTokenizer", (vocab_name,), _wordpiece_loader(vocab_name, lower))]
    tokenizer, raw = megatron.find_tokenizer([src, folder] if folder != src else [src, src.parent], files, fallbacks)
    extra = {"vocab.txt": raw[vocab_name]} if vocab_name in raw else {}
    return tokenizer, extra


def convert_megatron_bert(src_dir, out_dir, *, vocab_size: int | None = None, num_attention_heads: int | None = None,
                          overwrite: bool = False) -> Path:
    """Convert an original Megatron-LM BERT checkpoint (any TP degree) into a pre-LN `MegatronBertForPreTraining`
    folder (`MegatronBertForMaskedLM` when it was trained without the binary head).

    `vocab_size` is the true vocabulary (the checkpoint stores it padded); without it the size of a tokenizer found
    beside the checkpoint is used (a transformers tokenizer folder, or the WordPiece vocab file named by
    `args.vocab_file`), else the padded size is kept (with a warning). `num_attention_heads` is needed only when the
    checkpoint has no saved `args`.
    """
    src, out, folder, files, shards, version, args = megatron.open_megatron_checkpoint(
        src_dir, out_dir, overwrite, _normalise_megatron_keys, _check_megatron_args)
    tp, path0 = len(files), files[0]

    names = shards[0]
    required = ("bert.word_embeddings.weight", "bert.position_embeddings.weight", "bert.final_layernorm.weight",
                "bert.final_layernorm.bias", "lm_head.decoder.bias", "lm_head.dense.weight", "lm_head.dense.bias",
                "lm_head.layernorm.weight", "lm_head.layernorm.bias")
    missing = [k for k in required if k not in names]
    if missing:
        raise ValueError(f"{missing} missing from {str(path0)!r} (our names); pass a complete Megatron-LM BERT "
                         "checkpoint (BertModel with its lm_head).")
    layers = megatron.layer_indices(names, "bert.layers.", path0, "BERT")
    for layer in layers:
        missing = [f"layers.{layer}.{m}.{p}" for m in _LAYER_MODULES for p in ("weight", "bias")
                   if f"bert.layers.{layer}.{m}.{p}" not in names]
        if missing:
            raise ValueError(f"{missing} missing from {str(path0)!r}; pass a complete Megatron-LM BERT checkpoint.")
    has_binary = "binary_head.weight" in names
    if has_binary and "bert.pooler.weight" not in names:
        raise ValueError(f"{str(path0)!r} has a binary_head but no language_model.pooler; the checkpoint is "
                         "incomplete.")
    hidden = names["bert.word_embeddings.weight"].shape[1]
    heads = megatron.resolve_num_heads(args, num_attention_heads, hidden, tp, path0)
    megatron.check_saved_args(args, {"num_layers": len(layers), "hidden_size": hidden}, path0)

    state = megatron.merge_tp_shards(shards, _partition, version=version, heads=heads, hidden=hidden)
    del shards
    padded = state["bert.word_embeddings.weight"].shape[0]
    if state["lm_head.decoder.bias"].shape[0] != padded:
        raise ValueError(f"lm_head.bias has {state['lm_head.decoder.bias'].shape[0]} entries but the word embeddings "
                         f"{padded} rows in {str(folder)!r}; the checkpoint is inconsistent.")
    tokenizer, extra_files = _megatron_tokenizer(src, folder, args)
    vocab_size = megatron.resolve_vocab_size(vocab_size, padded, args, tokenizer, src)
    for key in ("bert.word_embeddings.weight", "lm_head.decoder.bias"):
        state[key] = state[key][:vocab_size].clone()

    if not has_binary and "bert.pooler.weight" in state:
        logger.warning("%s has a pooler but no binary_head: writing MegatronBertForMaskedLM, which has no pooler; "
                       "the pooler is dropped.", src)
        del state["bert.pooler.weight"], state["bert.pooler.bias"]
    if "bert.tokentype_embeddings.weight" not in state:
        # --bert-no-binary-head (v2.x pretrain_bert.py: num_tokentypes = 0): one all-zero token type adds nothing.
        logger.info("%s has no token-type embeddings: type_vocab_size=1 with a zero row.", src)
        dtype = state["bert.word_embeddings.weight"].dtype
        state["bert.tokentype_embeddings.weight"] = torch.zeros(1, hidden, dtype=dtype)
    ffn = state["bert.layers.0.mlp.dense_h_to_4h.weight"].shape[0]
    max_pos = state["bert.position_embeddings.weight"].shape[0]
    megatron.check_saved_args(args, {"ffn_hidden_size": ffn, "max_position_embeddings": max_pos}, path0)

    # v1.0's default: erf GeLU
    hidden_act = megatron.megatron_activation(args, "MegatronBert") if args is not None else "gelu"
    head_act = _lm_head_activation(args) if args is not None else hidden_act
    if head_act != hidden_act:
        logger.info("the checkpoint's MLP uses %s (fused bias-GeLU) and its LM head %s; both are kept.", hidden_act,
                    head_act)
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    config = AdlrMegatronBertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_layers=len(layers), num_attention_heads=heads,
        ffn_hidden_size=ffn, max_position_embeddings=max_pos,
        type_vocab_size=state["bert.tokentype_embeddings.weight"].shape[0], hidden_act=hidden_act,
        head_hidden_act=head_act if head_act != hidden_act else None,
        hidden_dropout=megatron.saved_arg(args, "hidden_dropout", default=0.1),
        attention_dropout=megatron.saved_arg(args, "attention_dropout", default=0.1),
        layer_norm_epsilon=megatron.saved_arg(args, "layernorm_epsilon", default=1e-5), layernorm_position="pre",
        initializer_range=megatron.saved_arg(args, "init_method_std", default=0.02),
        make_vocab_size_divisible_by=megatron.saved_arg(args, "make_vocab_size_divisible_by", default=128),
        pad_token_id=pad if pad is not None else 0,
    )
    state = megatron.unify_dtype(state, config, "bert.word_embeddings.weight")
    logger.info("Megatron BERT checkpoint %s: TP=%d, checkpoint_version=%s, %d layers, hidden %d, %d heads, "
                "binary head %s", folder, tp, version, len(layers), hidden, heads, has_binary)
    return _save_folder(out, config, state, tokenizer, extra_files)


CONVERTERS: dict[str, Callable[..., Path]] = {"bert-hf": convert_bert_hf, "megatron-bert": convert_megatron_bert}
