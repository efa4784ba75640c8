"""TP=2 ≡ TP=1 for the whole model (the visual and spatial MLPs split column → row, the detector replicated):
eval logits, the training loss (CE + contrastive losses) and every gradient, in two gloo processes."""

import pytest
import torch
from dist_utils import assert_close, run_ranks

from adlr_hf import registry
from adlr_hf.models.reldn import ReldnForRelationshipDetection
from adlr_hf.parallel import full_tp_plan, shard_state_dict


def _worker(rank: int) -> None:
    config = registry.get_config("reldn-tiny-visual")
    assert config.use_contrastive_losses and set(config.enabled_modules) == {"visual", "spatial", "semantic",
                                                                           "subject", "object"}
    torch.manual_seed(0)
    reference = ReldnForRelationshipDetection(config)
    torch.manual_seed(0)
    model = ReldnForRelationshipDetection(config)
    model.parallelize(2)
    plan = full_tp_plan(model)
    assert set(plan) == {"head.visual_mlp.0", "head.visual_mlp.2", "head.spatial_mlp.0", "head.spatial_mlp.2"}
    assert model.head.visual_mlp[0].weight.shape[0] == config.feature_dim * 3 // 2 // 2  # really split
    generator = torch.Generator().manual_seed(1)
    inputs = dict(boxes=torch.tensor([[[0.0, 0, 10, 10], [5, 5, 20, 20], [2, 3, 8, 30]]] * 2),
                  box_labels=torch.tensor([[1, 2, 3], [4, 5, -1]]), image_sizes=torch.tensor([[40, 40], [32, 36]]),
                  pixel_values=torch.rand(2, 3, 40, 40, generator=generator),
                  labels=torch.tensor([[[0, 1, 2], [1, 2, 0]], [[1, 0, 4], [-1, -1, -1]]]))
    reference.eval()
    model.eval()
    with torch.no_grad():
        assert_close(model(**inputs).predicate_logits, reference(**inputs).predicate_logits, what="eval logits")
    reference.train()
    model.train()
    torch.manual_seed(5)  # the contrastive node sample draws from the global generator
    expected = reference(**inputs).loss
    expected.backward()
    torch.manual_seed(5)
    loss = model(**inputs).loss
    assert_close(loss, expected.detach(), what="loss")
    loss.backward()
    grads = shard_state_dict({n: p.grad for n, p in reference.named_parameters()}, plan, rank, 2)
    for name, param in model.named_parameters():
        if grads[name] is None:
            assert param.grad is None, name
            continue
        atol = 1e-6 * float(grads[name].abs().max())
        assert_close(param.grad, grads[name], rtol=1e-5, atol=atol, what=f"grad of {name}")


@pytest.mark.slow
def test_tp2_matches_tp1_with_every_module_and_the_contrastive_losses():
    run_ranks(_worker)
