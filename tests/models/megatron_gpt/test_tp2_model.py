"""Megatron-GPT at TP=2 (two gloo processes) reproduces TP=1: logits, loss, every gradient, saves and generation."""

import pytest
import torch
from dist_utils import assert_close, assert_megatron_grads, assert_saves_match, run_ranks

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
    from adlr_hf.parallel.sharding import padded_vocab_size

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

    assert_megatron_grads(model, reference, rank, 1000, padded_vocab_size(1000, 2))

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
