"""Converters into MegatronGPTForCausalLM: transformers GPT-2 folders and original Megatron-LM checkpoints.

The Megatron checkpoints are written here in the on-disk layout Megatron-LM's `save_checkpoint` produces
(`{iter_0000100,release}/mp_rank_XX/model_optim_rng.pt` holding `iteration`, `checkpoint_version`, `args` as an
`argparse.Namespace`, numpy/python/torch RNG states and `model` -> `language_model` -> ...). The TP shards and the
per-version QKV row orders are produced by this file's own code from one full set of weights, never by adlr_hf.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import sys
import types
from pathlib import Path

import pytest
import torch
from models.megatron_checkpoints import padded_vocab, row_shard, transformer_body, write_megatron
from dist_utils import run_ranks
from safetensors.torch import load_file

import adlr_hf  # noqa: F401 - registers the Auto classes
from adlr_hf import MegatronGPTConfig, MegatronGPTForCausalLM
from adlr_hf.cli import main as cli_main
from adlr_hf.models.megatron_gpt.convert_megatron_gpt import convert_gpt2_hf, convert_megatron_gpt

LAYERS, HIDDEN, HEADS, FFN, POSITIONS = 2, 64, 4, 256, 64
HEAD_DIM = HIDDEN // HEADS


# ------------------------------------------------------------------------------------------------ helpers


def _write_bpe_files(folder: Path) -> int:
    """A tiny byte-level BPE (GPT-2 format vocab.json + merges.txt); returns its size."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("Ġ", "c"), ("a", "t")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    return len(vocab)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _load(folder, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs).eval()


def _gpt2_config(**overrides):
    from transformers import GPT2Config

    kwargs = dict(n_layer=LAYERS, n_embd=HIDDEN, n_head=HEADS, vocab_size=1000, n_positions=POSITIONS,
                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    kwargs.update(overrides)
    return GPT2Config(**kwargs)


def _gpt2_reference(src: Path):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(str(src)).eval()


@pytest.fixture(scope="module")
def gpt2_folders(tmp_path_factory):
    """(source GPT-2 folder with a tokenizer, converted folder)."""
    from transformers import GPT2LMHeadModel, GPT2Tokenizer

    root = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(_gpt2_config())
    for param in model.parameters():  # non-trivial biases and layer norms, so every mapping is exercised
        param.data.normal_(0.0, 0.2 if param.dim() == 1 else 0.05)
    src = root / "src"
    model.save_pretrained(str(src))
    _write_bpe_files(root / "bpe")
    GPT2Tokenizer.from_pretrained(str(root / "bpe")).save_pretrained(str(src))
    out = convert_gpt2_hf(src, root / "out")
    return src, out


# ------------------------------------------------------------------------------------------------ GPT-2 (transformers)


def test_gpt2_hf_logits_generate_and_tokenizer(gpt2_folders):
    from transformers import AutoTokenizer

    src, out = gpt2_folders
    ours, reference = _load(out), _gpt2_reference(src)
    assert ours.config.hidden_act == "gelu_pytorch_tanh" and ours.config.num_attention_heads == HEADS
    ids = torch.randint(0, 1000, (2, 24), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_logits(ours, ids), _logits(reference, ids), rtol=1e-5, atol=1e-5)
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(ids[:, :5], **kwargs), reference.generate(ids[:, :5], **kwargs))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer("the cat").input_ids == AutoTokenizer.from_pretrained(str(src))("the cat").input_ids
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


def test_gpt2_hf_pytorch_bin_with_mask_buffers(gpt2_folders, tmp_path):
    """An old-style pytorch_model.bin with the `attn.bias`/`masked_bias` buffers converts to the same weights."""
    src, out = gpt2_folders
    state = load_file(str(src / "model.safetensors"))
    for layer in range(LAYERS):
        state[f"transformer.h.{layer}.attn.bias"] = torch.tril(torch.ones(1, 1, POSITIONS, POSITIONS))
        state[f"transformer.h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    state["lm_head.weight"] = state["transformer.wte.weight"]
    bin_src = tmp_path / "bin"
    bin_src.mkdir()
    (bin_src / "config.json").write_text((src / "config.json").read_text())
    torch.save(state, bin_src / "pytorch_model.bin")
    converted = convert_gpt2_hf(bin_src, tmp_path / "out")
    a, b = load_file(str(converted / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gpt2_hf_overwrite(gpt2_folders, tmp_path):
    src, _ = gpt2_folders
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(ValueError, match="not empty.*overwrite"):
        convert_gpt2_hf(src, out)
    assert (out / "old.txt").read_text() == "old", "a refused conversion leaves the folder as it was"
    convert_gpt2_hf(src, out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _tp2_gpt2_worker(rank, src, out):
    from adlr_hf.parallel import init_parallel

    init_parallel(tp_size=2)
    torch.manual_seed(0)
    reference = _gpt2_reference(Path(src))
    ours = _load(out, tp_size=2)
    assert ours.transformer.layers[0].self_attention.query_key_value.weight.shape[0] == 3 * HIDDEN // 2
    ids = torch.randint(0, 1000, (2, 20), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_logits(ours, ids), _logits(reference, ids), rtol=1e-5, atol=1e-5)
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(ids[:, :5], **kwargs), reference.generate(ids[:, :5], **kwargs))


@pytest.mark.slow
def test_gpt2_hf_converted_runs_at_tp2(gpt2_folders):
    src, out = gpt2_folders
    run_ranks(_tp2_gpt2_worker, str(src), str(out))


# ------------------------------------------------------------------------------------------------ Megatron-LM


def _full_weights(vocab: int, padded: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Full (TP=1) weights in adlr_hf's names and blocked [Q; K; V] layout; the embedding carries `padded` rows,
    its padding rows random as Megatron initialises them."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.05):
        return torch.randn(*shape, generator=g) * std

    w = {"transformer.word_embeddings.weight": rnd(padded, HIDDEN, std=0.2),
         "transformer.position_embeddings.weight": rnd(POSITIONS, HIDDEN, std=0.2),
         "transformer.final_layernorm.weight": 1 + rnd(HIDDEN, std=0.2),
         "transformer.final_layernorm.bias": rnd(HIDDEN, std=0.2)}
    for i in range(LAYERS):
        p = f"transformer.layers.{i}."
        w.update({p + "input_layernorm.weight": 1 + rnd(HIDDEN, std=0.2), p + "input_layernorm.bias": rnd(HIDDEN),
                  p + "self_attention.query_key_value.weight": rnd(3 * HIDDEN, HIDDEN, std=0.2),
                  p + "self_attention.query_key_value.bias": rnd(3 * HIDDEN, std=0.2),
                  p + "self_attention.dense.weight": rnd(HIDDEN, HIDDEN), p + "self_attention.dense.bias": rnd(HIDDEN),
                  p + "post_attention_layernorm.weight": 1 + rnd(HIDDEN, std=0.2),
                  p + "post_attention_layernorm.bias": rnd(HIDDEN),
                  p + "mlp.dense_h_to_4h.weight": rnd(FFN, HIDDEN), p + "mlp.dense_h_to_4h.bias": rnd(FFN),
                  p + "mlp.dense_4h_to_h.weight": rnd(HIDDEN, FFN), p + "mlp.dense_4h_to_h.bias": rnd(HIDDEN)})
    return w


def _megatron_model_dict(full: dict, version: float, rank: int, tp: int, flat_2019: bool = False) -> dict:
    """One rank's `model` entry in Megatron-LM's layout for `version`."""
    layers = transformer_body(full, "transformer.", "self_attention", version, rank, tp, LAYERS, HEADS, HEAD_DIM)
    word = row_shard(full["transformer.word_embeddings.weight"], rank, tp)
    position = full["transformer.position_embeddings.weight"].clone()
    if flat_2019:  # the 2019 GPT2Model.state_dict(): flat names, no language_model
        return {"word_embeddings.weight": word, "position_embeddings.weight": position,
                **{f"transformer.{k}": v for k, v in layers.items()}}
    body = "encoder" if version >= 2.0 else "transformer"
    return {"language_model": {"embedding": {"word_embeddings": {"weight": word},
                                             "position_embeddings": {"weight": position}},
                               body: layers}}


def _megatron_args(version: float, tp: int, padded: int, **extra) -> argparse.Namespace:
    args = dict(num_layers=LAYERS, hidden_size=HIDDEN, num_attention_heads=HEADS, max_position_embeddings=POSITIONS,
                padded_vocab_size=padded, make_vocab_size_divisible_by=128, hidden_dropout=0.0,
                attention_dropout=0.0, layernorm_epsilon=1e-5, openai_gelu=False, init_method_std=0.02,
                fp16=False, params_dtype=torch.float32, tokenizer_type="GPT2BPETokenizer")
    if version >= 2.0:
        args.update(tensor_model_parallel_size=tp, pipeline_model_parallel_size=1, ffn_hidden_size=FFN,
                    bias_gelu_fusion=True)
    else:
        args.update(model_parallel_size=tp)
    args.update(extra)
    return argparse.Namespace(**args)


def _write_megatron(root: Path, full: dict, version: float, tp: int, padded: int, release: bool = False,
                    args: argparse.Namespace | None | str = "default", flat_2019: bool = False,
                    legacy_format: bool = False) -> Path:
    args = _megatron_args(version, tp, padded) if args == "default" else args
    return write_megatron(root, lambda rank: _megatron_model_dict(full, version, rank, tp, flat_2019), version, tp,
                          args, release, legacy_format)


def _reference_logits(full: dict, out: Path, vocab: int, ids):
    """Our model built directly from the test's unsplit weights (padding rows cut off by the test)."""
    config = MegatronGPTConfig.from_pretrained(str(out))
    reference = MegatronGPTForCausalLM(config).eval()
    state = dict(full)
    state["transformer.word_embeddings.weight"] = full["transformer.word_embeddings.weight"][:vocab]
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert missing == ["lm_head.weight"] and not unexpected
    return _logits(reference, ids)


@pytest.mark.parametrize("version", [0, 1.0, 3.0])
def test_megatron_versions_tp1_and_tp2(tmp_path, version):
    vocab = _write_bpe_files(tmp_path / "tok")
    full = _full_weights(vocab, padded_vocab(vocab, 2))
    outs = {}
    for tp in (1, 2):
        padded = padded_vocab(vocab, tp)
        weights = {**full, "transformer.word_embeddings.weight": full["transformer.word_embeddings.weight"][:padded]}
        root = _write_megatron(tmp_path / f"tp{tp}", weights, version, tp, padded, release=(tp == 2))
        for name in ("vocab.json", "merges.txt"):  # the tokenizer beside the checkpoint gives the true vocab
            (root / name).write_text((tmp_path / "tok" / name).read_text())
        outs[tp] = convert_megatron_gpt(root, tmp_path / f"out{tp}")
    tp1, tp2 = (load_file(str(outs[tp] / "model.safetensors")) for tp in (1, 2))
    assert tp1.keys() == tp2.keys() and all(torch.equal(tp1[k], tp2[k]) for k in tp1), "TP=1 and TP=2 agree"
    for key, tensor in tp1.items():  # exactly the unsplit weights, padding stripped
        expected = full[key][:vocab] if key.endswith("word_embeddings.weight") else full[key]
        assert torch.equal(tensor, expected), key
    model = _load(outs[1])
    assert model.config.vocab_size == vocab and model.config.num_attention_heads == HEADS
    assert model.config.hidden_act == ("gelu_pytorch_tanh" if version >= 2.0 else "gelu")  # fused bias-GeLU is tanh
    assert model.config.eos_token_id == vocab - 1  # <|endoftext|> of the tokenizer
    ids = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(_logits(model, ids), _reference_logits(full, outs[1], vocab, ids), rtol=1e-5,
                               atol=1e-5)
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(str(outs[1]))) == vocab


def test_megatron_2019_flat_layout_without_args(tmp_path, caplog):
    """The 2019 code saved no args and flat names; heads must be given; the padded vocab is kept with a warning."""
    padded = padded_vocab(300, 1)
    full = _full_weights(300, padded)
    root = _write_megatron(tmp_path / "ckpt", full, 0, 1, padded, args=None, flat_2019=True, legacy_format=True)
    with pytest.raises(ValueError, match="num_attention_heads"):
        convert_megatron_gpt(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with caplog.at_level(logging.WARNING):
        out = convert_megatron_gpt(root / "iter_0000100", tmp_path / "out", num_attention_heads=HEADS)
    assert "padded vocabulary" in caplog.text
    model = _load(out)
    assert model.config.vocab_size == padded and model.config.hidden_act == "gelu_pytorch_tanh"
    ids = torch.randint(0, padded, (1, 12), generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(_logits(model, ids), _reference_logits(full, out, padded, ids), rtol=1e-5, atol=1e-5)
    out2 = convert_megatron_gpt(root, tmp_path / "out2", num_attention_heads=HEADS, vocab_size=300)
    assert load_file(str(out2 / "model.safetensors"))["transformer.word_embeddings.weight"].shape[0] == 300


@pytest.mark.parametrize("legacy_format", [False, True])
def test_megatron_args_with_megatron_classes(tmp_path, legacy_format):
    """Newer `args` pickle Megatron's own enums; they load as inert placeholders under weights_only=True."""
    module = types.ModuleType("megatron.core.enums")

    class ModelType(enum.Enum):
        encoder_or_decoder = 1

    ModelType.__module__, ModelType.__qualname__ = module.__name__, "ModelType"
    module.ModelType = ModelType
    padded = padded_vocab(300, 1)
    full = _full_weights(300, padded)
    args = _megatron_args(3.0, 1, padded, model_type=ModelType.encoder_or_decoder)
    sys.modules.update({"megatron": types.ModuleType("megatron"), "megatron.core": types.ModuleType("megatron.core"),
                        "megatron.core.enums": module})
    try:
        root = _write_megatron(tmp_path / "ckpt", full, 3.0, 1, padded, args=args, legacy_format=legacy_format)
    finally:
        for name in ("megatron.core.enums", "megatron.core", "megatron"):
            sys.modules.pop(name)
    out = convert_megatron_gpt(root, tmp_path / "out", vocab_size=300)
    assert MegatronGPTConfig.from_pretrained(str(out)).vocab_size == 300


# ------------------------------------------------------------------------------------------------ bad inputs


class _Evil:
    pass


def _bad_megatron(tmp_path: Path, case: str) -> Path:
    padded = padded_vocab(300, 2)
    full = _full_weights(300, padded)
    root = tmp_path / "ckpt"
    if case == "missing folder":
        return tmp_path / "nowhere"
    if case == "no ranks":
        (root / "iter_0000100").mkdir(parents=True)
        (root / "latest_checkpointed_iteration.txt").write_text("100")
        return root
    _write_megatron(root, full, 3.0, 2, padded)
    rank1 = root / "iter_0000100" / "mp_rank_01" / "model_optim_rng.pt"
    if case == "missing rank file":
        rank1.unlink()
    elif case == "corrupt":
        rank1.write_bytes(rank1.read_bytes()[:500])
    elif case == "shapes":
        ckpt = torch.load(rank1, weights_only=False)
        layer = ckpt["model"]["language_model"]["encoder"]
        layer["layers.1.mlp.dense_h_to_4h.weight"] = layer["layers.1.mlp.dense_h_to_4h.weight"][:-8]
        torch.save(ckpt, rank1)
    elif case == "tracker":
        (root / "latest_checkpointed_iteration.txt").write_text("best\n")
    elif case == "unsafe global":
        ckpt = torch.load(rank1, weights_only=False)
        ckpt["optimizer"] = _Evil()
        torch.save(ckpt, rank1)
    return root


@pytest.mark.parametrize("case, error, pattern", [
    ("missing folder", FileNotFoundError, "nowhere.*does not exist"),
    ("no ranks", FileNotFoundError, "no mp_rank_"),
    ("missing rank file", FileNotFoundError, "mp_rank_01.*model_optim_rng.pt.*missing"),
    ("corrupt", ValueError, "mp_rank_01.*not a readable PyTorch checkpoint"),
    ("shapes", ValueError, "layers.1.mlp.dense_h_to_4h.weight.*shape.*rank 1"),
    ("tracker", ValueError, "contains 'best'"),
    ("unsafe global", ValueError, "_Evil"),
])
def test_megatron_bad_inputs(tmp_path, case, error, pattern):
    src = _bad_megatron(tmp_path, case)
    with pytest.raises(error, match=pattern):
        convert_megatron_gpt(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_gpt2_hf_bad_inputs(gpt2_folders, tmp_path):
    src, _ = gpt2_folders
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        convert_gpt2_hf(tmp_path / "nowhere", tmp_path / "out")
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    with pytest.raises(FileNotFoundError, match="config.json.*missing"):
        convert_gpt2_hf(no_config, tmp_path / "out")
    bad_act = tmp_path / "bad_act"
    bad_act.mkdir()
    config = json.loads((src / "config.json").read_text())
    (bad_act / "config.json").write_text(json.dumps({**config, "activation_function": "mish_plus"}))
    (bad_act / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="activation_function='mish_plus'"):
        convert_gpt2_hf(bad_act, tmp_path / "out")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((src / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no weights.*model.safetensors"):
        convert_gpt2_hf(no_weights, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_convert(gpt2_folders, tmp_path, capsys):
    src, converted = gpt2_folders
    assert cli_main(["convert", "gpt2-hf", str(src), str(tmp_path / "out")]) == 0
    a, b = load_file(str(tmp_path / "out" / "model.safetensors")), load_file(str(converted / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert _load(tmp_path / "out").config.num_layers == LAYERS
    capsys.readouterr()
    assert cli_main(["convert", "gpt2-hf", str(src), str(tmp_path / "out")]) == 2  # not empty, no --overwrite
    err = capsys.readouterr().err.strip()
    assert err.startswith("adlr-hf: error:") and "--overwrite" in err and len(err.splitlines()) == 1
    assert cli_main(["convert", "gpt2-hf", str(src), str(tmp_path / "out2"), "--vocab-size", "5"]) == 2
    assert "--vocab-size does not apply" in capsys.readouterr().err
    assert cli_main(["convert", "gpt2-hf", str(src), str(tmp_path / "out"), "--overwrite"]) == 0

    padded = padded_vocab(300, 1)
    root = _write_megatron(tmp_path / "ckpt", _full_weights(300, padded), 0, 1, padded, args=None, flat_2019=True)
    assert cli_main(["convert", "megatron-gpt", str(root), str(tmp_path / "meg")]) == 2
    assert "--num-attention-heads" in capsys.readouterr().err
    assert cli_main(["convert", "megatron-gpt", str(root), str(tmp_path / "meg"), "--num-attention-heads",
                     str(HEADS), "--vocab-size", "300"]) == 0
    assert _load(tmp_path / "meg").config.vocab_size == 300
