"""Converters into MegatronBert: transformers BERT folders (post-LN) and original Megatron-LM BERT checkpoints (pre-LN).

The Megatron checkpoints are written here in the on-disk layout Megatron-LM's `save_checkpoint` produces for
`BertModel` (v1.0 `megatron/model/bert_model.py`: `language_model.{embedding,transformer,pooler}`, `lm_head.{bias,
dense,layernorm}`, `binary_head`; v2.6: `encoder` and `self_attention`), in
`{iter_0000100,release}/mp_rank_XX/model_optim_rng.pt`. The TP shards and the per-version QKV row orders are made by
this file's own code from one full set of weights, never by adlr_hf.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from models.megatron_checkpoints import padded_vocab, row_shard, transformer_body, write_megatron
from safetensors.torch import load_file

import adlr_hf  # noqa: F401 - registers the Auto classes
from adlr_hf import AdlrMegatronBertConfig, MegatronBertForMaskedLM, MegatronBertForPreTraining
from adlr_hf.cli import main as cli_main
from adlr_hf.models.megatron_bert.convert_megatron_bert import convert_bert_hf, convert_megatron_bert

LAYERS, HIDDEN, HEADS, FFN, POSITIONS = 2, 64, 4, 128, 64
HEAD_DIM = HIDDEN // HEADS
WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "a", "big", "small", "house", "tree", "walk", "play", "red",
         "blue", "paris", "is", "capital", "of", "france", "and", "to", "in"]


def _write_vocab(path: Path) -> list[str]:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + WORDS + ["##s", "##ing", "##ed"]
    vocab += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    vocab = list(dict.fromkeys(vocab))  # "a" and "##s" are listed twice
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(vocab) + "\n")
    return vocab


def _tokenizer(vocab_file: Path):
    from transformers import BertTokenizer
    from transformers.models.bert.tokenization_bert import load_vocab

    return BertTokenizer(vocab=load_vocab(str(vocab_file)))


def _perturb(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial biases and layer norms, so every mapping matters
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.copy_((1.0 if "LayerNorm.weight" in name else 0.0) + 0.2 * torch.randn(param.shape, generator=g))
            else:
                param.copy_(0.08 * torch.randn(param.shape, generator=g))
    return model


def _hf_config(vocab_size, **overrides):
    from transformers import BertConfig

    kwargs = dict(vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  intermediate_size=FFN, max_position_embeddings=POSITIONS, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    kwargs.update(overrides)
    return BertConfig(**kwargs)


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """{"mlm": (src, out), "pt": (src, out)}: transformers BertForMaskedLM / BertForPreTraining folders and their
    conversions."""
    from transformers import BertForMaskedLM, BertForPreTraining

    root = tmp_path_factory.mktemp("bert_hf")
    vocab = _write_vocab(root / "vocab" / "vocab.txt")
    tokenizer = _tokenizer(root / "vocab" / "vocab.txt")
    folders = {}
    for kind, cls in (("mlm", BertForMaskedLM), ("pt", BertForPreTraining)):
        torch.manual_seed(1)
        model = _perturb(cls(_hf_config(len(vocab))), seed=len(kind))
        src = root / f"src_{kind}"
        model.save_pretrained(str(src))
        tokenizer.save_pretrained(str(src))
        (src / "vocab.txt").write_text((root / "vocab" / "vocab.txt").read_text())
        folders[kind] = (src, convert_bert_hf(src, root / f"out_{kind}"))
    return folders


def _batch(vocab_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (3, 14), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # padding in the batch
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[:, 7:] = 1
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types)


# ------------------------------------------------------------------------------------------------ transformers BERT


def test_bert_hf_masked_lm_logits_and_tokenizer(hf_folders):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM

    src, out = hf_folders["mlm"]
    ours = AutoModelForMaskedLM.from_pretrained(str(out)).eval()
    reference = BertForMaskedLM.from_pretrained(str(src)).eval()
    assert type(ours) is MegatronBertForMaskedLM and ours.config.layernorm_position == "post"
    batch = _batch(ours.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, reference(**batch).logits, rtol=1e-5, atol=1e-5)
    assert AutoTokenizer.from_pretrained(str(out))("the cats sat").input_ids == \
        AutoTokenizer.from_pretrained(str(src))("the cats sat").input_ids
    assert (out / "vocab.txt").read_text() == (src / "vocab.txt").read_text(), "raw vocab file carried"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


def test_bert_hf_pretraining_keeps_nsp_as_binary_head(hf_folders):
    from transformers import BertForPreTraining

    src, out = hf_folders["pt"]
    ours = MegatronBertForPreTraining.from_pretrained(str(out)).eval()
    reference = BertForPreTraining.from_pretrained(str(src)).eval()
    batch = _batch(ours.config.vocab_size, seed=1)
    with torch.no_grad():
        mine, theirs = ours(**batch), reference(**batch)
    torch.testing.assert_close(mine.logits, theirs.prediction_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine.sop_logits, theirs.seq_relationship_logits, rtol=1e-5, atol=1e-5)
    weights = load_file(str(out / "model.safetensors"))
    assert "bert.pooler.weight" in weights and "binary_head.weight" in weights
    assert "bert.embedding_layernorm.weight" in weights and "bert.final_layernorm.weight" not in weights


def test_bert_hf_fill_mask_pipeline_agrees(hf_folders):
    from transformers import pipeline

    src, out = hf_folders["mlm"]
    text = "the cat [MASK] on the mat ."
    fill = pipeline("fill-mask", model=str(out), top_k=5)
    assert type(fill.model) is MegatronBertForMaskedLM
    ours = fill(text)
    reference = pipeline("fill-mask", model=str(src), top_k=5)(text)
    assert [r["token_str"] for r in ours] == [r["token_str"] for r in reference]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in reference], rtol=1e-4, atol=1e-6)


def test_bert_hf_overwrite_and_cli(hf_folders, tmp_path, capsys):
    src, converted = hf_folders["mlm"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert cli_main(["convert", "bert-hf", str(src), str(out)]) == 2  # not empty, no --overwrite
    err = capsys.readouterr().err.strip()
    assert err.startswith("adlr-hf: error:") and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "old.txt").read_text() == "old", "a refused conversion leaves the folder as it was"
    assert cli_main(["convert", "bert-hf", str(src), str(out), "--overwrite"]) == 0
    assert not (out / "old.txt").exists()
    a, b = load_file(str(out / "model.safetensors")), load_file(str(converted / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert cli_main(["convert", "bert-hf", str(src), str(tmp_path / "o2"), "--vocab-size", "5"]) == 2
    assert "--vocab-size does not apply" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ Megatron-LM BERT


def _full_weights(padded: int, seed: int = 0, binary_head: bool = True) -> dict[str, torch.Tensor]:
    """Full (TP=1) weights in adlr_hf's names and blocked [Q; K; V] layout; the embedding and the MLM bias carry
    `padded` rows (random padding rows, as Megatron initialises them)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.08, mean=0.0):
        return mean + torch.randn(*shape, generator=g) * std

    w = {"bert.word_embeddings.weight": rnd(padded, HIDDEN, std=0.3),
         "bert.position_embeddings.weight": rnd(POSITIONS, HIDDEN, std=0.3),
         "bert.final_layernorm.weight": rnd(HIDDEN, mean=1, std=0.2), "bert.final_layernorm.bias": rnd(HIDDEN),
         "lm_head.dense.weight": rnd(HIDDEN, HIDDEN), "lm_head.dense.bias": rnd(HIDDEN),
         "lm_head.layernorm.weight": rnd(HIDDEN, mean=1, std=0.2), "lm_head.layernorm.bias": rnd(HIDDEN),
         "lm_head.decoder.bias": rnd(padded, std=0.3)}
    if binary_head:
        w.update({"bert.tokentype_embeddings.weight": rnd(2, HIDDEN, std=0.3),
                  "bert.pooler.weight": rnd(HIDDEN, HIDDEN), "bert.pooler.bias": rnd(HIDDEN),
                  "binary_head.weight": rnd(2, HIDDEN, std=0.3), "binary_head.bias": rnd(2)})
    for i in range(LAYERS):
        p = f"bert.layers.{i}."
        w.update({p + "input_layernorm.weight": rnd(HIDDEN, mean=1, std=0.2), p + "input_layernorm.bias": rnd(HIDDEN),
                  p + "attention.query_key_value.weight": rnd(3 * HIDDEN, HIDDEN, std=0.2),
                  p + "attention.query_key_value.bias": rnd(3 * HIDDEN, std=0.2),
                  p + "attention.dense.weight": rnd(HIDDEN, HIDDEN), p + "attention.dense.bias": rnd(HIDDEN),
                  p + "post_attention_layernorm.weight": rnd(HIDDEN, mean=1, std=0.2),
                  p + "post_attention_layernorm.bias": rnd(HIDDEN),
                  p + "mlp.dense_h_to_4h.weight": rnd(FFN, HIDDEN), p + "mlp.dense_h_to_4h.bias": rnd(FFN),
                  p + "mlp.dense_4h_to_h.weight": rnd(HIDDEN, FFN), p + "mlp.dense_4h_to_h.bias": rnd(HIDDEN)})
    return w


def _megatron_model_dict(full: dict, version: float, rank: int, tp: int) -> dict:
    """One rank's `model` entry of a Megatron-LM BertModel checkpoint (state_dict_for_save_checkpoint)."""
    body = transformer_body(full, "bert.", "attention", version, rank, tp, LAYERS, HEADS, HEAD_DIM)
    embedding = {"word_embeddings": {"weight": row_shard(full["bert.word_embeddings.weight"], rank, tp)},
                 "position_embeddings": {"weight": full["bert.position_embeddings.weight"].clone()}}
    language_model = {"embedding": embedding, ("encoder" if version >= 2.0 else "transformer"): body}
    model = {"language_model": language_model,
             "lm_head": {"bias": row_shard(full["lm_head.decoder.bias"], rank, tp),
                         **{k[len("lm_head."):]: v.clone() for k, v in full.items()
                            if k.startswith("lm_head.") and k != "lm_head.decoder.bias"}}}
    if "binary_head.weight" in full:
        embedding["tokentype_embeddings"] = {"weight": full["bert.tokentype_embeddings.weight"].clone()}
        language_model["pooler"] = {"dense.weight": full["bert.pooler.weight"].clone(),
                                    "dense.bias": full["bert.pooler.bias"].clone()}
        model["binary_head"] = {"weight": full["binary_head.weight"].clone(),
                                "bias": full["binary_head.bias"].clone()}
    return model


def _megatron_args(version: float, tp: int, padded: int, **extra) -> argparse.Namespace:
    args = dict(num_layers=LAYERS, hidden_size=HIDDEN, num_attention_heads=HEADS, max_position_embeddings=POSITIONS,
                seq_length=POSITIONS, padded_vocab_size=padded, make_vocab_size_divisible_by=128,
                hidden_dropout=0.0, attention_dropout=0.0, layernorm_epsilon=1e-5, openai_gelu=False,
                init_method_std=0.02, fp16=False, tokenizer_type="BertWordPieceLowerCase",
                vocab_file="/data/bert-large-uncased-vocab.txt", apply_residual_connection_post_layernorm=False)
    if version >= 2.0:
        args.update(tensor_model_parallel_size=tp, pipeline_model_parallel_size=1, ffn_hidden_size=FFN,
                    bias_gelu_fusion=False, bert_binary_head=True)
    else:
        args.update(model_parallel_size=tp)
    args.update(extra)
    return argparse.Namespace(**args)


def _write_megatron(root: Path, full: dict, version: float, tp: int, padded: int, release: bool = False,
                    args: argparse.Namespace | None = None) -> Path:
    args = args if args is not None else _megatron_args(version, tp, padded)
    return write_megatron(root, lambda rank: _megatron_model_dict(full, version, rank, tp), version, tp, args, release)


def _reference(full: dict, vocab: int, binary_head: bool = True, hidden_act: str = "gelu", head_hidden_act=None):
    """Our pre-LN model built directly from the test's unsplit weights (padding cut off here)."""
    config = AdlrMegatronBertConfig(vocab_size=vocab, hidden_size=HIDDEN, num_layers=LAYERS, num_attention_heads=HEADS,
                                ffn_hidden_size=FFN, max_position_embeddings=POSITIONS,
                                type_vocab_size=2 if binary_head else 1, hidden_dropout=0.0, attention_dropout=0.0,
                                layer_norm_epsilon=1e-5, layernorm_position="pre", hidden_act=hidden_act,
                                head_hidden_act=head_hidden_act)
    model = (MegatronBertForPreTraining if binary_head else MegatronBertForMaskedLM)(config).eval()
    state = {k: (v[:vocab] if k in ("bert.word_embeddings.weight", "lm_head.decoder.bias") else v)
             for k, v in full.items()}
    if not binary_head:
        state["bert.tokentype_embeddings.weight"] = torch.zeros(1, HIDDEN)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["lm_head.decoder.weight"] and not unexpected, (missing, unexpected)
    return model


@pytest.mark.parametrize("version", [0, 1.0, 3.0])
def test_megatron_bert_versions_tp1_and_tp2(tmp_path, version):
    vocab = len(_write_vocab(tmp_path / "tok" / "bert-large-uncased-vocab.txt"))
    full = _full_weights(padded_vocab(vocab, 2))
    outs = {}
    for tp in (1, 2):
        padded = padded_vocab(vocab, tp)
        weights = {k: (v[:padded] if k in ("bert.word_embeddings.weight", "lm_head.decoder.bias") else v)
                   for k, v in full.items()}
        root = _write_megatron(tmp_path / f"tp{tp}", weights, version, tp, padded, release=(tp == 2))
        # Megatron's WordPiece vocab file (named as args.vocab_file) beside the checkpoint gives the true vocab.
        (root / "bert-large-uncased-vocab.txt").write_text((tmp_path / "tok" / "bert-large-uncased-vocab.txt")
                                                           .read_text())
        outs[tp] = convert_megatron_bert(root, tmp_path / f"out{tp}")
    tp1, tp2 = (load_file(str(outs[tp] / "model.safetensors")) for tp in (1, 2))
    assert tp1.keys() == tp2.keys() and all(torch.equal(tp1[k], tp2[k]) for k in tp1), "TP=1 and TP=2 agree"
    for key, tensor in tp1.items():  # exactly the unsplit weights, padding stripped
        expected = full[key][:vocab] if key in ("bert.word_embeddings.weight", "lm_head.decoder.bias") else full[key]
        assert torch.equal(tensor, expected), key
    from transformers import AutoModelForPreTraining, AutoTokenizer

    model = AutoModelForPreTraining.from_pretrained(str(outs[2])).eval()
    assert type(model) is MegatronBertForPreTraining
    assert (model.config.vocab_size, model.config.num_attention_heads, model.config.layernorm_position,
            model.config.hidden_act) == (vocab, HEADS, "pre", "gelu")
    batch = _batch(vocab, seed=2)
    with torch.no_grad():
        mine, ref = model(**batch), _reference(full, vocab)(**batch)
    torch.testing.assert_close(mine.logits, ref.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine.sop_logits, ref.sop_logits, rtol=1e-5, atol=1e-5)
    tokenizer = AutoTokenizer.from_pretrained(str(outs[1]))
    assert len(tokenizer) == vocab and tokenizer.convert_ids_to_tokens(tokenizer("the cats").input_ids) == \
        ["[CLS]", "the", "cat", "##s", "[SEP]"]
    assert (outs[1] / "vocab.txt").is_file()


def test_megatron_bert_without_binary_head(tmp_path):
    """--bert-no-binary-head (v2.x): no pooler, binary head or token types -> MegatronBertForMaskedLM; vocab_size=
    strips the padding when no tokenizer is beside the checkpoint; fused bias-GeLU makes the MLP's GeLU tanh while the
    LM head keeps erf GeLU."""
    vocab = 100
    full = _full_weights(padded_vocab(vocab, 1), seed=3, binary_head=False)
    args = _megatron_args(3.0, 1, padded_vocab(vocab, 1), bias_gelu_fusion=True, bert_binary_head=False)
    root = _write_megatron(tmp_path / "ckpt", full, 3.0, 1, padded_vocab(vocab, 1), args=args)
    out = convert_megatron_bert(root / "iter_0000100", tmp_path / "out", vocab_size=vocab)
    model = MegatronBertForMaskedLM.from_pretrained(str(out)).eval()
    assert model.config.type_vocab_size == 1
    assert (model.config.hidden_act, model.config.head_hidden_act) == ("gelu_pytorch_tanh", "gelu")
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(model.lm_head.act(x), 0.5 * x * (1 + torch.erf(x / 2 ** 0.5)))  # erf in the head
    tanh_gelu = 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))
    torch.testing.assert_close(model.bert.layers[0].mlp.act(x), tanh_gelu)  # tanh in the MLP
    reference = _reference(full, vocab, binary_head=False, hidden_act="gelu_pytorch_tanh", head_hidden_act="gelu")
    batch = _batch(vocab, seed=3)
    batch.pop("token_type_ids")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits, rtol=1e-5, atol=1e-5)
    weights = load_file(str(out / "model.safetensors"))
    for key, tensor in full.items():
        expected = tensor[:vocab] if key in ("bert.word_embeddings.weight", "lm_head.decoder.bias") else tensor
        assert torch.equal(weights[key], expected), key
    assert cli_main(["convert", "megatron-bert", str(root), str(tmp_path / "cli"), "--vocab-size", str(vocab)]) == 0


# ------------------------------------------------------------------------------------------------ bad inputs


def _bad_megatron(tmp_path: Path, case: str) -> Path:
    padded = padded_vocab(100, 2)
    root = tmp_path / "ckpt"
    if case == "missing folder":
        return tmp_path / "nowhere"
    args = _megatron_args(3.0, 2, padded, apply_residual_connection_post_layernorm=(case == "residual"))
    _write_megatron(root, _full_weights(padded), 3.0, 2, padded, args=args)
    rank1 = root / "iter_0000100" / "mp_rank_01" / "model_optim_rng.pt"
    if case == "missing rank":
        rank1.unlink()
    elif case == "corrupt":
        rank1.write_bytes(rank1.read_bytes()[:400])
    elif case == "no lm_head":
        for path in (root / "iter_0000100").glob("mp_rank_*/model_optim_rng.pt"):
            ckpt = torch.load(path, weights_only=False)
            del ckpt["model"]["lm_head"]
            torch.save(ckpt, path)
    return root


@pytest.mark.parametrize("case, error, pattern", [
    ("missing folder", FileNotFoundError, "nowhere.*does not exist"),
    ("missing rank", FileNotFoundError, "mp_rank_01.*model_optim_rng.pt.*missing"),
    ("corrupt", ValueError, "mp_rank_01.*not a readable PyTorch checkpoint"),
    ("residual", ValueError, "apply_residual_connection_post_layernorm=True.*neither MegatronBert's pre-LN"),
    ("no lm_head", ValueError, "lm_head.decoder.bias.*missing"),
])
def test_megatron_bert_bad_inputs(tmp_path, case, error, pattern):
    src = _bad_megatron(tmp_path, case)
    with pytest.raises(error, match=pattern):
        convert_megatron_bert(src, tmp_path / "out", vocab_size=100)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bert_hf_bad_inputs(hf_folders, tmp_path):
    src, _ = hf_folders["mlm"]
    config = json.loads((src / "config.json").read_text())

    def folder(name, config_dict=None, weights=True):
        path = tmp_path / name
        path.mkdir()
        if config_dict is not None:
            (path / "config.json").write_text(json.dumps(config_dict))
        if weights:
            (path / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
        return path

    cases = [
        (tmp_path / "nowhere", FileNotFoundError, "nowhere.*does not exist"),
        (folder("no_config"), FileNotFoundError, "config.json.*missing"),
        (folder("no_weights", config, weights=False), FileNotFoundError, "no weights.*model.safetensors"),
        (folder("roberta", {**config, "model_type": "roberta"}), ValueError, "model_type='roberta', not 'bert'"),
        (folder("relative", {**config, "position_embedding_type": "relative_key"}), ValueError,
         "position_embedding_type='relative_key'.*no counterpart"),
        (folder("decoder", {**config, "is_decoder": True}), ValueError, "is_decoder=True"),
    ]
    corrupt = folder("corrupt", config, weights=False)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    cases.append((corrupt, ValueError, "not a readable safetensors file"))
    bare = folder("bare", config, weights=False)  # a BertModel: no MLM head
    from safetensors.torch import save_file

    save_file({k: v for k, v in load_file(str(src / "model.safetensors")).items() if k.startswith("bert.")},
              str(bare / "model.safetensors"))
    cases.append((bare, ValueError, "no masked-LM head"))
    for path, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            convert_bert_hf(path, tmp_path / "out")
        assert not (tmp_path / "out").exists(), path.name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
