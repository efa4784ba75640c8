"""What every family's model builds on (adlr_hf/models/shared/modeling_adlr.py): the eager attention and the attention
dropout's RNG stream. The behaviour of whole models (output options, attention implementations, auto_map) is swept
over every family in tests/test_all_models.py."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adlr_hf import get_config
from adlr_hf.models.megatron_gpt.modeling_megatron_gpt import MegatronGPTAttention
from adlr_hf.models.shared.modeling_adlr import eager_attention_forward
from adlr_hf.parallel import get_rng_tracker, model_parallel_seed
from adlr_hf.parallel.random import MODEL_PARALLEL_RNG


def test_eager_attention_returns_the_probabilities_sdpa_uses():
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 5, 4, generator=generator) for _ in range(3))
    allowed = torch.rand(2, 1, 5, 5, generator=generator) > 0.3
    allowed[..., 0] = True  # every query sees a key
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    module = nn.Module().eval()
    for mask, is_causal, sdpa_mask in ((additive, False, additive), (allowed, False, allowed), (None, True, None)):
        context, probabilities = eager_attention_forward(module, query, key, value, mask, is_causal=is_causal)
        expected = F.scaled_dot_product_attention(query, key, value, attn_mask=sdpa_mask, is_causal=is_causal)
        torch.testing.assert_close(context, expected.transpose(1, 2), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(probabilities.sum(-1), torch.ones(2, 3, 5), rtol=0, atol=1e-6)
        torch.testing.assert_close(torch.matmul(probabilities, value), expected, rtol=1e-6, atol=1e-6)
    assert probabilities.triu(1).eq(0).all(), "causal: no weight on later keys"


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_attention_dropout_draws_from_the_per_tp_rank_stream(attention):
    config = get_config("megatron-gpt-tiny", attention_dropout=0.5)
    config._attn_implementation = attention
    torch.manual_seed(0)
    layer = MegatronGPTAttention(config, layer_idx=0).train()
    hidden = torch.randn(2, 6, config.hidden_size, generator=torch.Generator().manual_seed(1))
    outputs = []
    try:
        for tp_rank in (0, 0, 1):
            model_parallel_seed(11, tp_rank)
            default_stream = torch.get_rng_state()
            tp_stream = get_rng_tracker().get_states()[MODEL_PARALLEL_RNG]["cpu"]
            outputs.append(layer(hidden)[0])
            assert torch.equal(torch.get_rng_state(), default_stream), "dropout must not draw from the default stream"
            assert not torch.equal(get_rng_tracker().get_states()[MODEL_PARALLEL_RNG]["cpu"], tp_stream), \
                "the per-rank stream was not used"
    finally:
        get_rng_tracker().reset()
    assert torch.equal(outputs[0], outputs[1]), "the same rank's stream gives the same masks"
    assert not torch.equal(outputs[0], outputs[2]), "another rank's stream gives other masks"
