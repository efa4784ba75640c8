"""The transformer emotion classifier at TP=2 (two gloo processes) reproduces TP=1: logits, the BCE + 0.02 × LM loss
(vocab-parallel), every gradient, and the gathered save."""

import pytest
import torch
from dist_utils import assert_close, assert_megatron_grads, assert_saves_match, run_ranks

pytestmark = pytest.mark.slow


def _worker(rank, tmp):

    from adlr_hf import get_config
    from adlr_hf.models.emotion import EmotionConfig, EmotionTransformerForSequenceClassification
    from adlr_hf.parallel import apply_tp_plan, full_tp_plan, init_parallel
    from adlr_hf.parallel.sharding import padded_vocab_size

    state = init_parallel(tp_size=2)
    # vocab 1000 is not a multiple of 128 × 2: the vocab padding of the aux LM head is exercised.
    encoder = get_config("megatron-gpt-tiny", vocab_size=1000, hidden_dropout=0.0, attention_dropout=0.0,
                         embedding_dropout=0.0, pad_token_id=1)
    config = EmotionConfig.from_encoder(encoder, ["a", "b", "c", "d"], classifier_hidden_layers=[32, 16],
                                        classifier_dropout=0.0)
    torch.manual_seed(0)
    reference = EmotionTransformerForSequenceClassification(config)
    torch.manual_seed(0)
    model = EmotionTransformerForSequenceClassification(config)
    plan = full_tp_plan(model)
    assert "transformer.layers.*.self_attention.query_key_value" in plan and "lm_head" in plan
    assert not any(key.startswith("classifier") for key in plan), "the head stays replicated"
    apply_tp_plan(model, state.tp_group)
    assert model.lm_head.weight is model.transformer.word_embeddings.weight

    ids = torch.randint(2, 1000, (3, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    mask[2, 9:] = 0  # right padding
    labels = torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 0], [0, 1, 1, 0]])
    for m in (reference, model):
        m.eval()
    with torch.no_grad():
        assert_close(model(ids, attention_mask=mask).logits, reference(ids, attention_mask=mask).logits,
                     what="eval logits")
    reference.train()
    model.train()
    ref = reference(ids, attention_mask=mask, labels=labels)
    ref.loss.backward()
    out = model(ids, attention_mask=mask, labels=labels)
    assert_close(out.lm_loss, ref.lm_loss.detach(), what="vocab-parallel aux LM loss")
    assert_close(out.loss, ref.loss.detach(), what="loss")
    out.loss.backward()
    assert_megatron_grads(model, reference, rank, 1000, padded_vocab_size(1000, 2))

    assert_saves_match(model, reference, f"{tmp}/emotion", rank)


def test_emotion_classifier_tp2_matches_tp1(tmp_path):
    run_ranks(_worker, str(tmp_path))
