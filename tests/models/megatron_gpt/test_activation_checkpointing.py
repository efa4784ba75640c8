"""Activation checkpointing (Megatron's --checkpoint-activations) changes memory, not results: with dropout on, the
recomputed layers draw the same masks, so the loss and every gradient equal the plain run's, at TP=1 and TP=2, with
the SDPA and the eager attention (whose probability dropout also draws from the per-TP-rank stream)."""

import pytest
import torch
from dist_utils import run_ranks


def _config():
    from adlr_hf import get_config

    return get_config("megatron-gpt-tiny", vocab_size=1000, hidden_dropout=0.1, attention_dropout=0.2,
                      embedding_dropout=0.1)


def _loss_and_grads(model, ids, seed):
    torch.manual_seed(seed)
    loss = model(ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def _plain_and_checkpointed(tp_group=None, attention="sdpa"):
    from adlr_hf import MegatronGPTForCausalLM
    from adlr_hf.parallel import apply_tp_plan

    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MegatronGPTForCausalLM(_config()).train()
        model.set_attn_implementation(attention)
        if tp_group is not None:
            apply_tp_plan(model, tp_group)
        models.append(model)
    models[1].activation_checkpointing_enable()
    return models


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_checkpointed_gradients_equal_the_plain_ones(attention):
    plain, checkpointed = _plain_and_checkpointed(attention=attention)
    calls = [0, 0]  # attention runs again in backward only where the layer is recomputed
    for i, model in enumerate((plain, checkpointed)):
        model.transformer.layers[0].self_attention.register_forward_hook(
            lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    ids = torch.randint(0, 1000, (2, 24), generator=torch.Generator().manual_seed(1))
    loss, grads = _loss_and_grads(plain, ids, seed=7)
    loss_ckpt, grads_ckpt = _loss_and_grads(checkpointed, ids, seed=7)
    assert calls == [1, 2]
    assert torch.equal(loss, loss_ckpt)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-6, atol=1e-7, msg=name)
    _, other_seed = _loss_and_grads(plain, ids, seed=8)  # dropout is on: another seed gives other gradients
    assert not torch.allclose(other_seed["transformer.layers.0.mlp.dense_h_to_4h.weight"],
                              grads["transformer.layers.0.mlp.dense_h_to_4h.weight"])


def _tp2_worker(rank):
    from adlr_hf.parallel import get_rng_tracker, init_parallel, model_parallel_seed

    state = init_parallel(tp_size=2)
    for attention in ("sdpa", "eager"):
        plain, checkpointed = _plain_and_checkpointed(state.tp_group, attention)
        ids = torch.randint(0, 1000, (2, 24), generator=torch.Generator().manual_seed(1))
        results = []
        for model in (plain, checkpointed):
            model_parallel_seed(3, state.tp_rank)  # the same replicated and per-rank streams for both runs
            results.append(_loss_and_grads(model, ids, seed=7))
            assert get_rng_tracker().states, "the per-TP-rank dropout stream is in use"
        (loss, grads), (loss_ckpt, grads_ckpt) = results
        assert torch.equal(loss, loss_ckpt), attention
        for name, grad in grads.items():
            torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-6, atol=1e-7,
                                       msg=lambda m: f"{attention} {name}: {m}")


@pytest.mark.slow
def test_tp2_checkpointed_gradients_replay_the_tp_dropout_stream():
    run_ranks(_tp2_worker)
