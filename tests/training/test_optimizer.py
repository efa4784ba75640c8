"""The tasks' default training optimizer: AdamW with Megatron's betas, decay on matrices only, torch's fused kernel."""

import torch
from torch import nn

from types import SimpleNamespace

from adlr_hf.tasks import CausalLMTask


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 3))


def test_fused_adamw_takes_the_same_steps_as_the_plain_one():
    fused_model, plain_model = _model(), _model()
    fused = CausalLMTask().build_optimizer(fused_model, SimpleNamespace(lr=1e-2, weight_decay=0.1))
    assert fused.defaults["fused"] is True and fused.defaults["betas"] == (0.9, 0.95)
    assert [g["weight_decay"] for g in fused.param_groups] == [0.1, 0.0]
    assert {id(p) for p in fused.param_groups[0]["params"]} == {id(m.weight) for m in (fused_model[0], fused_model[2])}
    plain = torch.optim.AdamW([{"params": [p for p in plain_model.parameters() if p.ndim >= 2], "weight_decay": 0.1},
                               {"params": [p for p in plain_model.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                              lr=1e-2, betas=(0.9, 0.95), foreach=False)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for model, optimizer in ((fused_model, fused), (plain_model, plain)):
            model(x).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

