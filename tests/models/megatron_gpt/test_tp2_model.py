"""Megatron-GPT at TP=2 (two gloo processes) reproduces TP=1: logits, loss, every gradient, saves and generation."""

import pytest
import torch
from dist_utils import assert_close, assert_saves_match, run_ranks

pytestmark = pytest.mark.slow


def _tiny_config():
    from adlr_hf import get_config

    # vocab 1000 is not a multiple of 128 × 2, so the vocab padding is exercised.
    return get_config("megatron-gpt-tiny", vocab_size=1000, hidden_dropout=0.0, attention_dropout=0.0,
                      embedding_dropout=0.0)


def _worker(rank, tmp):
    from transformers import AutoModelForCausalLM

    from adlr_hf import MegatronGPTForCausalLM
    from adlr_hf.parallel import apply_tp_plan, init_parallel
    from adlr_hf.parallel.sharding import padded_vocab_size, split_for_rank

    state = init_parallel(tp_size=2)
    config = _tiny_config()
    torch.manual_seed(0)
    reference = MegatronGPTForCausalLM(config)
    torch.manual_seed(0)
    model = MegatronGPTForCausalLM(config)
    full_state = {k: v.clone() for k, v in model.state_dict().items()}
    apply_tp_plan(model, state.tp_group)
    assert model.lm_head.weight is model.transformer.word_embeddings.weight, "LM head stays tied after sharding"
    # shard_state_dict cuts a full state dict exactly as the sharded modules hold it.
    from adlr_hf.parallel import full_tp_plan, shard_state_dict

    sharded = shard_state_dict(full_state, full_tp_plan(model), rank, 2)
    for key, tensor in model.state_dict().items():
        assert torch.equal(sharded[key], tensor), f"shard_state_dict {key}"

    ids = torch.randint(0, 1000, (3, 20), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # a left-padded row

    reference.eval()
    model.eval()
    with torch.no_grad():
        assert_close(model(ids, attention_mask=mask).logits, reference(ids, attention_mask=mask).logits,
                     what="eval logits (full vocabulary)")

    reference.train()
    model.train()
    ref_loss = reference(ids, labels=ids).loss
    ref_loss.backward()
    out = model(ids, labels=ids)
    assert out.logits.shape[-1] == padded_vocab_size(1000, 2) // 2, "training logits stay vocab-parallel"
    assert_close(out.loss, ref_loss.detach(), what="loss")
    out.loss.backward()

    ref_params = dict(reference.named_parameters())
    specs = {
        "query_key_value.weight": (0, 3), "query_key_value.bias": (0, 3), "dense_h_to_4h.weight": (0, 1),
        "dense_h_to_4h.bias": (0, 1), "self_attention.dense.weight": (1, 1), "dense_4h_to_h.weight": (1, 1),
    }
    for name, param in model.named_parameters():
        expected = ref_params[name].grad
        if name.endswith("word_embeddings.weight"):
            expected = torch.cat([expected, expected.new_zeros(padded_vocab_size(1000, 2) - 1000, expected.shape[1])])
            expected = split_for_rank(expected, 0, rank, 2)
        for suffix, (dim, stride) in specs.items():
            if name.endswith(suffix):
                expected = split_for_rank(expected, dim, rank, 2, stride)
        assert_close(param.grad, expected, rtol=1e-5, atol=1e-6, what=f"grad of {name}")

    # A TP=2 save is tensor-for-tensor the TP=1 save.
    assert_saves_match(model, reference, f"{tmp}/gpt", rank)

    # Loading inside an initialised TP group shards automatically; generation matches TP=1.
    loaded = AutoModelForCausalLM.from_pretrained(f"{tmp}/gpt-tp1", tp_size=2)
    assert loaded.transformer.layers[0].mlp.dense_h_to_4h.weight.shape[0] == config.ffn_hidden_size // 2
    reference.eval()
    prompt = ids[:, :6]
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    assert torch.equal(loaded.generate(prompt, **kwargs), reference.generate(prompt, **kwargs)), "greedy generate"
    beams = dict(max_new_tokens=6, num_beams=3, do_sample=False, pad_token_id=0)
    assert torch.equal(loaded.generate(prompt, **beams), reference.generate(prompt, **beams)), "beam search"
    static = dict(kwargs, cache_implementation="static")  # the static cache holds this rank's heads only
    assert torch.equal(loaded.generate(prompt, **static), reference.generate(prompt, **kwargs)), "static cache"


def test_tp2_model_matches_tp1(tmp_path):
    run_ranks(_worker, str(tmp_path))
