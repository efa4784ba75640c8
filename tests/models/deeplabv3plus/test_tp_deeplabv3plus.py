"""DeepLabV3+ at TP=2 equals TP=1 (two gloo ranks): the head's channel-split convolutions give the same logits, loss
(train mode: batch statistics and dropout) and gradients; a TP=2 save is the TP=1 save; `from_pretrained(tp_size=2)`
shards on load; built inside a gloo (CPU) process group the batch norms stay `nn.BatchNorm2d`."""

import copy

import pytest
import torch
from torch import nn

from dist_utils import assert_close, assert_saves_match, expected_grad_shard, run_ranks

pytestmark = pytest.mark.slow



def _worker(rank, tmp):
    from transformers import AutoModelForSemanticSegmentation

    from adlr_hf import get_config
    from adlr_hf.models.deeplabv3plus import DeepLabV3PlusForSemanticSegmentation
    from adlr_hf.parallel import apply_tp_plan, init_parallel, is_tensor_parallel

    state = init_parallel(tp_size=2)
    torch.manual_seed(0)
    reference = DeepLabV3PlusForSemanticSegmentation(get_config("deeplabv3plus-tiny")).double()
    norms = [m for m in reference.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms), "gloo group: no SyncBatchNorm"
    model = copy.deepcopy(reference)
    apply_tp_plan(model, state.tp_group)
    assert is_tensor_parallel(model)
    split = [n for n, m in model.named_modules() if type(m).__name__ == "ColumnParallelConv2d"]
    assert len(split) == 8, split  # 4 ASPP branches, image pooling, bot_aspp, 2 decoder convs
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(3, 3, 32, 40, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 32, 40), generator=g)
    labels[:, :4] = 255
    reference.eval()
    model.eval()
    with torch.no_grad():
        assert_close(model(pixels).logits, reference(pixels).logits, rtol=1e-10, atol=1e-10, what="eval logits")
    reference.train()
    model.train()
    torch.manual_seed(5)  # the trunk's Dropout2d (on by default) is replicated: the same draws on both models
    ref_out = reference(pixels, labels=labels)
    torch.manual_seed(5)
    out = model(pixels, labels=labels)
    assert_close(out.logits, ref_out.logits.detach(), rtol=1e-10, atol=1e-10, what="train logits")
    assert_close(out.loss, ref_out.loss.detach(), rtol=1e-10, atol=1e-12, what="loss")
    ref_out.loss.backward()
    out.loss.backward()
    ref_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        expected = expected_grad_shard(model, name, ref_params[name].grad, rank)
        assert_close(param.grad, expected, rtol=1e-9, atol=1e-11, what=f"grad of {name}")
    assert_saves_match(model.eval(), reference.eval(), f"{tmp}/tiny", rank, "deeplabv3plus-tiny")
    loaded = AutoModelForSemanticSegmentation.from_pretrained(f"{tmp}/tiny-tp1", tp_size=2, dtype=torch.float64)
    assert is_tensor_parallel(loaded)
    with torch.no_grad():
        assert_close(loaded.eval()(pixels).logits, reference(pixels).logits, rtol=1e-10, atol=1e-10,
                     what="loaded at tp_size=2")


def test_deeplabv3plus_tp2_matches_tp1(tmp_path):
    run_ranks(_worker, str(tmp_path))
