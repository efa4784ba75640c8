"""Megatron-GPT on one process: HF conventions, cache, padding, loss, saving and loading."""


import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

import adlr_hf
from adlr_hf import MegatronGPTConfig, MegatronGPTForCausalLM, MegatronGPTForSequenceClassification, get_config
from adlr_hf.models.megatron_gpt.modeling_megatron_gpt import last_token_index


def tiny(**overrides):
    base = dict(hidden_dropout=0.0, attention_dropout=0.0, embedding_dropout=0.0)
    return get_config("megatron-gpt-tiny", **{**base, **overrides})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MegatronGPTForCausalLM(tiny()).eval()


def test_output_has_loss_first_and_gpt2_label_shift(model):
    ids = torch.randint(0, 1024, (2, 12), generator=torch.Generator().manual_seed(0))
    out = model(ids, labels=ids)
    assert list(out.keys())[0] == "loss"
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, 1024), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, manual)
    labels = ids.clone()
    labels[:, :6] = -100
    masked = model(ids, labels=labels).loss
    manual = F.cross_entropy(out.logits[:, 5:-1].reshape(-1, 1024), ids[:, 6:].reshape(-1))
    torch.testing.assert_close(masked, manual)


def test_initialisation_follows_megatron(model):
    config = model.config
    layer = model.transformer.layers[0]
    std_out = layer.self_attention.dense.weight.std().item()
    std_in = layer.self_attention.query_key_value.weight.std().item()
    assert abs(std_in - 0.02) < 0.003
    assert abs(std_out - 0.02 / (2 * config.num_layers) ** 0.5) < 0.002
    assert torch.count_nonzero(layer.mlp.dense_h_to_4h.bias) == 0
    assert model.lm_head.weight is model.transformer.word_embeddings.weight


def test_cache_gives_the_same_logits_as_a_full_forward(model):
    ids = torch.randint(0, 1024, (2, 10), generator=torch.Generator().manual_seed(1))
    full = model(ids, use_cache=False).logits
    first = model(ids[:, :7], use_cache=True)
    step = model(ids[:, 7:], cache=first.cache, use_cache=True)
    torch.testing.assert_close(step.logits, full[:, 7:], rtol=1e-5, atol=1e-5)


def test_decoding_head_copy_matches_the_weight_and_follows_its_updates():
    torch.manual_seed(4)
    model = MegatronGPTForCausalLM(tiny()).eval()
    ids = torch.randint(0, 1024, (2, 3), generator=torch.Generator().manual_seed(4))
    hidden = model.transformer(ids).last_hidden_state
    expected = F.linear(hidden, model.lm_head.weight)
    with torch.no_grad():
        decoded = model(ids).logits  # 6 rows <= DECODE_ROWS: the [in, out] copy
        assert "_decode_head_columns" in model.__dict__
        torch.testing.assert_close(decoded, expected, rtol=1e-5, atol=1e-5)
        model.transformer.word_embeddings.weight.mul_(-2.0)  # tied: the head changes in place
        hidden = model.transformer(ids).last_hidden_state
        torch.testing.assert_close(model(ids).logits, F.linear(hidden, model.lm_head.weight), rtol=1e-5, atol=1e-5)
    assert "_decode_head_columns" not in model.state_dict()
    logits = model(ids).logits  # with autograd: the weight itself, so the gradient reaches it
    logits.sum().backward()
    assert model.lm_head.weight.grad is not None
    model.train()
    assert "_decode_head_columns" not in model.__dict__


def test_left_padding_does_not_change_a_prompts_logits(model):
    ids = torch.randint(1, 1024, (1, 8), generator=torch.Generator().manual_seed(2))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 8, dtype=torch.long)], dim=1)
    plain = model(ids).logits
    with_pad = model(padded, attention_mask=mask).logits[:, 3:]
    torch.testing.assert_close(with_pad, plain, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(model(padded, attention_mask=mask).logits).all()


def test_generate_greedy_equals_manual_loop_and_sampling_runs(model):
    prompt = torch.randint(1, 1024, (2, 4), generator=torch.Generator().manual_seed(3))
    out = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    ids = prompt
    for _ in range(6):
        ids = torch.cat([ids, model(ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ids)
    torch.manual_seed(0)
    sampled = model.generate(prompt, max_new_tokens=5, do_sample=True, top_k=20, pad_token_id=0, eos_token_id=None)
    assert sampled.shape == (2, 9)
    beams = model.generate(prompt, max_new_tokens=5, num_beams=3, pad_token_id=0, eos_token_id=None)
    assert beams.shape == (2, 9)


def test_static_cache_generation_equals_the_dynamic_cache(model):
    prompt = torch.randint(1, 1024, (2, 5), generator=torch.Generator().manual_seed(6))
    prompt[0, :2] = 0
    mask = (prompt != 0).long()
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None,
                  output_scores=True, return_dict_in_generate=True)
    dynamic = model.generate(prompt, **kwargs)
    static = model.generate(prompt, cache_implementation="static", **kwargs)
    assert torch.equal(static.sequences, dynamic.sequences)
    for step_static, step_dynamic in zip(static.scores, dynamic.scores, strict=True):
        torch.testing.assert_close(step_static, step_dynamic, rtol=1e-5, atol=1e-5)


def test_a_prepared_4d_mask_gives_the_2d_masks_logits_and_positions(model):
    ids = torch.randint(1, 1024, (2, 6), generator=torch.Generator().manual_seed(7))
    ids[1, :3] = 0
    mask = (ids != 0).long()
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    prepared = causal[None, None] & mask.bool()[:, None, None, :]
    expected = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(model(ids, attention_mask=prepared).logits, expected, rtol=1e-5, atol=1e-5)
    additive = torch.zeros(prepared.shape).masked_fill(~prepared, torch.finfo(torch.float32).min)
    torch.testing.assert_close(model(ids, attention_mask=additive).logits, expected, rtol=1e-5, atol=1e-5)


def test_save_and_auto_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.model_type == "adlr_megatron_gpt" and isinstance(config, MegatronGPTConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is MegatronGPTForCausalLM
    ids = torch.randint(0, 1024, (2, 9))
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "MegatronGPTModel"
    assert "auto_map" in (tmp_path / "config.json").read_text()
    assert (tmp_path / "modeling_megatron_gpt.py").exists()


def test_sequence_classification_pools_the_last_real_token():
    torch.manual_seed(0)
    clf = MegatronGPTForSequenceClassification(tiny(num_labels=3, pad_token_id=0)).eval()
    ids = torch.randint(1, 1024, (1, 6))
    alone = clf(ids).logits
    right = clf(torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1),
                attention_mask=torch.tensor([[1] * 6 + [0] * 3])).logits
    left = clf(torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1),
               attention_mask=torch.tensor([[0] * 3 + [1] * 6])).logits
    torch.testing.assert_close(right, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(left, alone, rtol=1e-5, atol=1e-5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_index(None, mask, 0).tolist() == [2, 4, 4]
    assert last_token_index(torch.tensor([[5, 6, 0, 0]]), None, 0).tolist() == [1]
    embeds = clf.transformer.word_embeddings(ids)
    torch.testing.assert_close(clf(inputs_embeds=embeds).logits, alone, rtol=1e-5, atol=1e-5)
    multi = clf(ids, labels=torch.tensor([[1.0, 0.0, 1.0]]))
    torch.testing.assert_close(multi.loss, F.binary_cross_entropy_with_logits(multi.logits,
                                                                             torch.tensor([[1.0, 0.0, 1.0]])))
    assert type(AutoModelForSequenceClassification.from_config(tiny(num_labels=2))).__name__ == \
        "MegatronGPTForSequenceClassification"


def test_bad_configs_and_variants_fail_clearly():
    with pytest.raises(ValueError, match="hidden_size=100 is not divisible by num_attention_heads=3"):
        MegatronGPTConfig(hidden_size=100, num_attention_heads=3)
    with pytest.raises(ValueError, match="num_attention_heads=4 is not divisible by tp_size=3"):
        tiny().check_tp_size(3)
    with pytest.raises(ValueError, match="unknown model variant 'megatron-gpt-355M'.*megatron-gpt-355m"):
        get_config("megatron-gpt-355M")
    model = MegatronGPTForCausalLM(tiny())
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=128"):
        model(torch.zeros(1, 129, dtype=torch.long))


def test_registered_variants_have_the_paper_sizes():
    rows = {r["name"]: r for r in adlr_hf.list_models()}
    assert round(rows["megatron-gpt-355m"]["parameters"] / 1e6) == 355
    assert round(rows["megatron-gpt-8.3b"]["parameters"] / 1e9, 1) == 8.3
    config = get_config("megatron-gpt-355m")
    assert (config.num_layers, config.hidden_size, config.num_attention_heads) == (24, 1024, 16)
