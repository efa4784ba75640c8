"""Megatron-BERT: pre-LN vs post-LN, losses, saving/loading (also as remote code), a collated MLM+SOP batch, and
TP=2 (two gloo processes) reproducing TP=1."""


import pytest
import torch
import torch.nn.functional as F
from dist_utils import assert_close, run_ranks
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining

import adlr_hf  # noqa: F401 - registers the Auto classes
from adlr_hf import AdlrMegatronBertConfig, MegatronBertForMaskedLM, MegatronBertForPreTraining, get_config
from remote_code import run_without_adlr_hf

VOCAB = 1000  # not a multiple of 128 x 2, so the vocab padding is exercised under TP


def tiny(**overrides):
    base = dict(vocab_size=VOCAB, hidden_dropout=0.0, attention_dropout=0.0)
    return get_config("megatron-bert-tiny", **{**base, **overrides})


def _perturb_norms(model, seed):
    """Non-trivial layer norms and biases (fresh ones are 1 and 0, which would hide a wrong placement)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.add_(0.1 * torch.randn(param.shape, generator=g))
    return model


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (3, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    labels = torch.full_like(ids, -100)
    picked = (torch.rand(ids.shape, generator=g) < 0.3) & (mask == 1)
    labels[picked] = ids[picked]
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels,
                sentence_order_label=torch.tensor([0, 1, 1]))


def _without_labels(batch):
    return {k: v for k, v in batch.items() if k not in ("labels", "sentence_order_label")}


# ------------------------------------------------------------------------------------------------ one process


def test_pre_and_post_ln_structure_and_layer_math():
    torch.manual_seed(0)
    pre = _perturb_norms(MegatronBertForPreTraining(tiny(layernorm_position="pre")).eval(), 1)
    torch.manual_seed(0)
    post = _perturb_norms(MegatronBertForPreTraining(tiny(layernorm_position="post")).eval(), 1)
    assert pre.bert.final_layernorm is not None and pre.bert.embedding_layernorm is None
    assert post.bert.final_layernorm is None and post.bert.embedding_layernorm is not None
    pre_keys, post_keys = set(pre.state_dict()), set(post.state_dict())
    assert pre_keys - post_keys == {"bert.final_layernorm.weight", "bert.final_layernorm.bias"}
    assert post_keys - pre_keys == {"bert.embedding_layernorm.weight", "bert.embedding_layernorm.bias"}

    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(2))
    for model, formula in ((pre, "pre"), (post, "post")):
        layer = model.bert.layers[0]
        with torch.no_grad():  # layer and attention return (output, attention probabilities or None)
            if formula == "pre":  # x + Attn(LN(x)), then + MLP(LN(.))
                h = x + layer.attention(layer.input_layernorm(x))[0]
                expected = h + layer.mlp(layer.post_attention_layernorm(h))
            else:  # LN(x + Attn(x)), then LN(. + MLP(.))
                h = layer.input_layernorm(x + layer.attention(x)[0])
                expected = layer.post_attention_layernorm(h + layer.mlp(h))
            torch.testing.assert_close(layer(x)[0], expected)
    batch = _without_labels(_batch())
    with torch.no_grad():
        assert not torch.allclose(pre(**batch).logits, post(**batch).logits, atol=1e-3), "the two layouts differ"


def test_losses_are_mlm_plus_sop():
    torch.manual_seed(0)
    model = MegatronBertForPreTraining(tiny()).eval()
    batch = _batch()
    out = model(**batch)
    assert list(out.keys())[0] == "loss"
    keep = batch["labels"] != -100
    mlm = F.cross_entropy(out.logits[keep], batch["labels"][keep])
    sop = F.cross_entropy(out.sop_logits, batch["sentence_order_label"])
    torch.testing.assert_close(out.mlm_loss, mlm)
    torch.testing.assert_close(out.sop_loss, sop)
    torch.testing.assert_close(out.loss, mlm + sop)
    mlm_only = MegatronBertForMaskedLM(tiny()).eval()
    out = mlm_only(**{k: v for k, v in batch.items() if k != "sentence_order_label"})
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[keep], batch["labels"][keep]))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert_saved")
    torch.manual_seed(0)
    mlm = _perturb_norms(MegatronBertForMaskedLM(tiny(layernorm_position="post")).eval(), 3)
    torch.manual_seed(0)
    pretraining = _perturb_norms(MegatronBertForPreTraining(tiny()).eval(), 4)
    mlm.save_pretrained(root / "mlm")
    pretraining.save_pretrained(root / "pt")
    return root, mlm, pretraining


def test_save_and_auto_load_round_trip(saved):
    root, mlm, pretraining = saved
    config = AutoConfig.from_pretrained(root / "mlm")
    assert config.model_type == "adlr_megatron_bert" and isinstance(config, AdlrMegatronBertConfig)
    assert config.layernorm_position == "post"
    batch = _without_labels(_batch(1))
    loaded = AutoModelForMaskedLM.from_pretrained(root / "mlm").eval()
    assert type(loaded) is MegatronBertForMaskedLM
    assert loaded.lm_head.decoder.weight is loaded.bert.word_embeddings.weight, "decoder stays tied"
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, mlm(**batch).logits)
    loaded_pt = AutoModelForPreTraining.from_pretrained(root / "pt").eval()
    assert type(loaded_pt) is MegatronBertForPreTraining
    with torch.no_grad():
        a, b = loaded_pt(**batch), pretraining(**batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.sop_logits, b.sop_logits)
    assert type(AutoModel.from_pretrained(root / "pt")).__name__ == "MegatronBertModel"
    assert "auto_map" in (root / "mlm" / "config.json").read_text()
    assert (root / "mlm" / "modeling_megatron_bert.py").exists()


def test_remote_code_loads_where_adlr_hf_is_not_importable(saved, tmp_path):
    root, mlm, _ = saved
    batch = _without_labels(_batch(2))
    with torch.no_grad():
        torch.save({"batch": batch, "logits": mlm(**batch).logits}, tmp_path / "expected.pt")
    body = f"""
        import torch
        from transformers import AutoModelForMaskedLM
        model = AutoModelForMaskedLM.from_pretrained({str(root / 'mlm')!r}, trust_remote_code=True).eval()
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        with torch.no_grad():
            torch.testing.assert_close(model(**expected["batch"]).logits, expected["logits"])
        print("remote-code-ok", type(model).__module__)
    """
    stdout = run_without_adlr_hf(body, tmp_path / "hf_home")
    assert "remote-code-ok transformers_modules" in stdout


def test_collated_mlm_sop_batch_trains(tmp_path):
    """build_mlm_dataset + MLMCollator give batches the model takes as model(**batch); a few steps lower the loss."""
    import datasets
    from transformers import BertTokenizer

    from adlr_hf.data.mlm import MLMCollator, build_mlm_dataset

    words = [f"w{i}" for i in range(40)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + words
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    g = torch.Generator().manual_seed(0)
    docs = [" ".join(" ".join(words[int(j)] for j in torch.randint(0, 40, (6,), generator=g)) + " ." for _ in range(4))
            for _ in range(24)]
    samples = build_mlm_dataset(datasets.Dataset.from_dict({"text": docs}), tokenizer, seq_len=32, sop=True)
    collator = MLMCollator(tokenizer, seed=0)
    torch.manual_seed(0)
    model = MegatronBertForPreTraining(tiny(vocab_size=len(tokenizer), max_position_embeddings=32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = collator([samples[i] for i in range(8)])
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "sentence_order_label"}
    losses = []
    for _ in range(5):
        out = model(**batch)
        assert torch.isfinite(out.loss) and out.mlm_loss is not None and out.sop_loss is not None
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]


def test_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match="layernorm_position='middle'"):
        AdlrMegatronBertConfig(layernorm_position="middle")
    with pytest.raises(ValueError, match="num_attention_heads=4 is not divisible by tp_size=3"):
        tiny().check_tp_size(3)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=128"):
        MegatronBertForMaskedLM(tiny())(torch.zeros(1, 129, dtype=torch.long))


# ------------------------------------------------------------------------------------------------ TP=2 vs TP=1

_SHARDED = {  # parameter suffix -> (dim, stride) of its TP split
    "attention.query_key_value.weight": (0, 3), "attention.query_key_value.bias": (0, 3),
    "mlp.dense_h_to_4h.weight": (0, 1), "mlp.dense_h_to_4h.bias": (0, 1),
    "attention.dense.weight": (1, 1), "mlp.dense_4h_to_h.weight": (1, 1),
}


def _tp2_worker(rank, tmp):
    from safetensors.torch import load_file

    from adlr_hf.parallel import apply_tp_plan, init_parallel
    from adlr_hf.parallel.sharding import padded_vocab_size, split_for_rank

    state = init_parallel(tp_size=2)
    padded = padded_vocab_size(VOCAB, 2)
    batch = _batch(5)
    for layout in ("pre", "post"):
        config = tiny(layernorm_position=layout)
        torch.manual_seed(0)
        reference = _perturb_norms(MegatronBertForPreTraining(config), 6)
        torch.manual_seed(0)
        model = _perturb_norms(MegatronBertForPreTraining(config), 6)
        apply_tp_plan(model, state.tp_group)
        assert model.lm_head.decoder.weight is model.bert.word_embeddings.weight, "decoder stays tied after sharding"
        assert model.bert.layers[0].attention.query_key_value.weight.shape[0] == 3 * 64 // 2

        reference.eval()
        model.eval()
        with torch.no_grad():
            ours, ref = model(**_without_labels(batch)), reference(**_without_labels(batch))
        assert_close(ours.logits, ref.logits, what=f"{layout}: eval MLM logits (full vocabulary)")
        assert_close(ours.sop_logits, ref.sop_logits, what=f"{layout}: eval SOP logits")

        reference.train()
        model.train()
        ref_out = reference(**batch)
        ref_out.loss.backward()
        out = model(**batch)
        assert out.logits.shape[-1] == padded // 2, "training logits stay vocab-parallel"
        assert_close(out.mlm_loss, ref_out.mlm_loss.detach(), what=f"{layout}: MLM loss")
        assert_close(out.sop_loss, ref_out.sop_loss.detach(), what=f"{layout}: SOP loss")
        assert_close(out.loss, ref_out.loss.detach(), what=f"{layout}: loss")
        out.loss.backward()

        ref_params = dict(reference.named_parameters())
        checked = 0
        for name, param in model.named_parameters():
            expected = ref_params[name].grad
            if name in ("bert.word_embeddings.weight", "lm_head.decoder.bias"):  # vocab rows, padded then split
                padding = expected.new_zeros(padded - VOCAB, *expected.shape[1:])
                expected = split_for_rank(torch.cat([expected, padding]), 0, rank, 2)
            for suffix, (dim, stride) in _SHARDED.items():
                if name.endswith(suffix):
                    expected = split_for_rank(expected, dim, rank, 2, stride)
            assert_close(param.grad, expected, rtol=1e-5, atol=1e-6, what=f"{layout}: grad of {name}")
            checked += 1
        assert checked == len(ref_params)

        # A TP=2 save is tensor-for-tensor the TP=1 save; loading it inside the TP group shards it again.
        model.save_pretrained(f"{tmp}/{layout}_tp2")
        if rank == 0:
            reference.save_pretrained(f"{tmp}/{layout}_tp1")
        torch.distributed.barrier()
        tp1, tp2 = (load_file(f"{tmp}/{layout}_tp{tp}/model.safetensors") for tp in (1, 2))
        assert tp1.keys() == tp2.keys()
        for key in tp1:
            assert torch.equal(tp1[key], tp2[key]), f"{layout}: saved {key}"
        loaded = AutoModelForPreTraining.from_pretrained(f"{tmp}/{layout}_tp1", tp_size=2).eval()
        assert loaded.bert.layers[0].mlp.dense_h_to_4h.weight.shape[0] == config.ffn_hidden_size // 2
        reference.eval()
        with torch.no_grad():
            assert_close(loaded(**_without_labels(batch)).logits, reference(**_without_labels(batch)).logits,
                         what=f"{layout}: logits after a sharded load")


@pytest.mark.slow
def test_tp2_matches_tp1_pre_and_post_ln(tmp_path):
    run_ranks(_tp2_worker, str(tmp_path))


@pytest.mark.parametrize("layernorm_position", ["pre", "post"])
def test_activation_checkpointing_gives_the_plain_gradients_with_dropout(layernorm_position):
    config = tiny(layernorm_position=layernorm_position, hidden_dropout=0.1, attention_dropout=0.1)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(MegatronBertForMaskedLM(config).train())
    models[1].activation_checkpointing_enable()
    calls = [0, 0]  # attention runs again in backward only where the layer is recomputed
    for i, model in enumerate(models):
        model.bert.layers[0].attention.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    ids = torch.randint(5, config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    labels = torch.where(torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) < 0.3, ids, -100)
    losses = []
    for model in models:
        torch.manual_seed(9)
        losses.append(model(input_ids=ids, labels=labels).loss)
        losses[-1].backward()
    assert calls == [1, 2]
    assert torch.equal(losses[0], losses[1])
    for (name, plain), (_, checkpointed) in zip(models[0].named_parameters(), models[1].named_parameters()):
        torch.testing.assert_close(checkpointed.grad, plain.grad, rtol=1e-6, atol=1e-7, msg=name)
