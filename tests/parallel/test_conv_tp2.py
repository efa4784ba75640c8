"""Channel-parallel convolutions and batch norm at TP=2 (two gloo processes) against the dense layers, then whole
PD-ResNet / PD-VGG models at TP=2 against TP=1: eval logits, train-mode loss, every gradient and the batch-norm
running statistics, TP-agnostic saves and `from_pretrained(folder, tp_size=2)`. One spawn runs everything."""

import copy

import pytest
import torch
import torch.nn as nn
from dist_utils import assert_close, assert_saves_match, expected_grad_shard, run_ranks

pytestmark = pytest.mark.slow


def _mappings_dim1(rank, group):
    from adlr_hf.parallel import gather_from_tp_region, scatter_to_tp_region

    full = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(2, 4, 3, 3).requires_grad_()
    local = scatter_to_tp_region(full, group, dim=1)
    assert_close(local, full.detach()[:, 2 * rank: 2 * rank + 2], what="scatter dim 1 keeps own channels")
    local.backward(torch.full_like(local, rank + 1.0))
    expected = torch.cat([torch.ones(2, 2, 3, 3), torch.full((2, 2, 3, 3), 2.0)], dim=1)
    assert_close(full.grad, expected, what="scatter dim 1 backward gathers channels")
    mine = (torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(rank))).requires_grad_()
    both = [torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(r)) for r in range(2)]
    gathered = gather_from_tp_region(mine, group, dim=1)
    assert_close(gathered, torch.cat(both, dim=1), what="gather dim 1")
    g = torch.randn(2, 6, 4, 4, generator=torch.Generator().manual_seed(9))
    gathered.backward(g)
    assert_close(mine.grad, g[:, 3 * rank: 3 * rank + 3], what="gather dim 1 backward splits")
    with pytest.raises(ValueError, match="divisible"):
        scatter_to_tp_region(torch.zeros(1, 3, 2, 2), group, dim=1)


def _run(module, x, mask=None):
    out = module(x) if mask is None else module(x, mask)
    return out if isinstance(out, tuple) else (out, None)


def _check_conv_pair(rank, group, dense, what, x, mask=None):
    """Column (gathered and split) and row (scattered and parallel input) versions of `dense` against it."""
    from adlr_hf.parallel import ColumnParallelConv2d, RowParallelConv2d

    out_per, in_per = dense.out_channels // 2, dense.in_channels // 2
    osl, isl = slice(rank * out_per, (rank + 1) * out_per), slice(rank * in_per, (rank + 1) * in_per)
    multi = getattr(dense, "multi_channel", False)

    dense.zero_grad()
    x_ref = x.clone().requires_grad_()
    ref, ref_update = _run(dense, x_ref, mask)
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    ref.backward(grad_out)

    for gather in (True, False):
        col = ColumnParallelConv2d.from_dense(dense, group, gather_output=gather)
        assert col.weight.shape[0] == out_per and getattr(col.weight, "tensor_model_parallel", False)
        x_tp = x.clone().requires_grad_()
        out, update = _run(col, x_tp, mask)
        assert_close(out, ref.detach() if gather else ref.detach()[:, osl], what=f"{what} column gather={gather}")
        if ref_update is not None:
            assert_close(update, ref_update if gather or not multi else ref_update[:, osl],
                         what=f"{what} column update mask")
        out.backward(grad_out if gather else grad_out[:, osl])
        assert_close(x_tp.grad, x_ref.grad, what=f"{what} column input grad (all-reduced)")
        assert_close(col.weight.grad, dense.weight.grad[osl], what=f"{what} column weight grad")
        if dense.bias is not None:
            assert_close(col.bias.grad, dense.bias.grad[osl], what=f"{what} column bias grad")

    for parallel_input in (False, True):
        row = RowParallelConv2d.from_dense(dense, group, input_is_parallel=parallel_input)
        assert row.weight.shape[1] == in_per
        x_tp = (x[:, isl] if parallel_input else x).clone().requires_grad_()
        row_mask = mask[:, isl] if (mask is not None and multi and parallel_input) else mask
        out, update = _run(row, x_tp, row_mask)
        assert_close(out, ref.detach(), what=f"{what} row input_is_parallel={parallel_input}")
        if ref_update is not None:
            assert_close(update, ref_update, what=f"{what} row update mask")
        out.backward(grad_out)
        assert_close(x_tp.grad, x_ref.grad[:, isl] if parallel_input else x_ref.grad, what=f"{what} row input grad")
        assert_close(row.weight.grad, dense.weight.grad[:, isl], what=f"{what} row weight grad")
        if dense.bias is not None:
            assert_close(row.bias.grad, dense.bias.grad, what=f"{what} row bias grad (added once, after the reduce)")


def _conv_primitives(rank, group):
    from adlr_hf.layers import PartialConv2d
    from adlr_hf.parallel import ColumnParallelConv2d, RowParallelConv2d

    torch.manual_seed(0)
    x = torch.randn(3, 8, 9, 9)
    cases = [
        ("conv3x3 bias", nn.Conv2d(8, 6, 3, padding=1)),
        ("conv1x1 stride 2", nn.Conv2d(8, 6, 1, stride=2, bias=False)),
        ("conv reflect padding", nn.Conv2d(8, 6, 3, padding=1, padding_mode="reflect")),
        ("partial 3x3 bias", PartialConv2d(8, 6, 3, padding=1)),
        ("partial 3x3 stride 2 no bias", PartialConv2d(8, 6, 3, stride=2, padding=1, bias=False)),
        ("partial 7x7 stride 2 pad 3", PartialConv2d(8, 4, 7, stride=2, padding=3, bias=False)),
    ]
    for what, dense in cases:
        _check_conv_pair(rank, group, dense, what, x)

    # Explicit masks (the inpainting use): a single-channel mask, and a multi-channel one with return_mask.
    mask1 = (torch.rand(3, 1, 9, 9, generator=torch.Generator().manual_seed(4)) > 0.4).float()
    _check_conv_pair(rank, group, PartialConv2d(8, 6, 3, padding=1, return_mask=True), "partial mask 1ch", x, mask1)
    mask8 = (torch.rand(3, 8, 9, 9, generator=torch.Generator().manual_seed(5)) > 0.4).float()
    _check_conv_pair(rank, group, PartialConv2d(8, 6, 3, padding=1, multi_channel=True, return_mask=True),
                     "partial mask multi-channel", x, mask8)
    _check_conv_pair(rank, group, PartialConv2d(8, 6, 3, padding=1, multi_channel=True, return_mask=True),
                     "partial multi-channel, padding only", x)

    # TP-invariant direct construction: the shard is a slice of the dense layer built from the same seed.
    for partial in (False, True):
        dense_cls = PartialConv2d if partial else nn.Conv2d
        torch.manual_seed(7)
        col = ColumnParallelConv2d(8, 6, 3, padding=1, group=group, gather_output=False, partial=partial)
        torch.manual_seed(7)
        ref = dense_cls(8, 6, 3, padding=1)
        assert_close(col.weight, ref.weight[3 * rank: 3 * rank + 3].detach(), what="column conv init slice")
        assert_close(col.bias, ref.bias[3 * rank: 3 * rank + 3].detach(), what="column conv init bias slice")
        torch.manual_seed(7)
        row = RowParallelConv2d(8, 6, 3, padding=1, group=group, partial=partial)
        assert_close(row.weight, ref.weight[:, 4 * rank: 4 * rank + 4].detach(), what="row conv init slice")
        assert_close(row.bias, ref.bias.detach(), what="row conv init bias (whole)")
        assert not getattr(row.bias, "tensor_model_parallel", True), "a row conv's bias is replicated"

    with pytest.raises(ValueError, match="divisible by tp_size=2"):
        ColumnParallelConv2d(8, 5, 3, group=group)
    with pytest.raises(ValueError, match="groups=1"):
        RowParallelConv2d.from_dense(nn.Conv2d(8, 8, 3, groups=2), group)
    with pytest.raises(ValueError, match="mask_in"):
        ColumnParallelConv2d.from_dense(nn.Conv2d(8, 6, 3), group)(x, mask1)


def _batch_norm(rank, group):
    from adlr_hf.parallel import ChannelParallelBatchNorm2d

    torch.manual_seed(1)
    dense = nn.BatchNorm2d(6)
    with torch.no_grad():
        dense.weight.uniform_(0.5, 1.5)
        dense.bias.uniform_(-0.5, 0.5)
        dense.running_mean.uniform_(-1, 1)
        dense.running_var.uniform_(0.5, 2)
    sl = slice(3 * rank, 3 * rank + 3)
    x = torch.randn(4, 6, 5, 5) * 2 + 1
    for training in (False, True):
        ref_bn = copy.deepcopy(dense).train(training)
        bn = ChannelParallelBatchNorm2d.from_dense(ref_bn, group)
        assert bn.training == training and bn.num_features == 3 and bn.full_num_features == 6
        x_ref = x.clone().requires_grad_()
        ref = ref_bn(x_ref)
        grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2))
        ref.backward(grad)
        x_tp = x[:, sl].clone().requires_grad_()
        out = bn(x_tp)
        assert_close(out, ref.detach()[:, sl], what=f"batch norm train={training} output")
        out.backward(grad[:, sl])
        assert_close(x_tp.grad, x_ref.grad[:, sl], what=f"batch norm train={training} input grad")
        assert_close(bn.weight.grad, ref_bn.weight.grad[sl], what="batch norm weight grad")
        assert_close(bn.bias.grad, ref_bn.bias.grad[sl], what="batch norm bias grad")
        assert_close(bn.running_mean, ref_bn.running_mean[sl], what=f"running mean after train={training}")
        assert_close(bn.running_var, ref_bn.running_var[sl], what=f"running var after train={training}")
        assert int(bn.num_batches_tracked) == int(ref_bn.num_batches_tracked)
    # A float64 dense layer (a model cast before it is parallelized) gives float64 slices, buffers included.
    wide = ChannelParallelBatchNorm2d.from_dense(copy.deepcopy(dense).double().eval(), group)
    assert {t.dtype for t in (wide.weight, wide.bias, wide.running_mean, wide.running_var)} == {torch.float64}
    assert_close(wide(x[:, sl].double()), dense.double().eval()(x.double())[:, sl], what="float64 batch norm output")


def _randomise_batch_norms(model, seed):
    """Non-trivial affine params and running statistics, so eval mode is a real test of the slicing."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=g) + 0.5)
                module.bias.copy_(torch.rand(n, generator=g) - 0.5)
                module.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=g) + 0.5)



def _whole_model(rank, group, name, overrides, tmp, expected_types):
    from transformers import AutoModelForImageClassification

    from adlr_hf import PDResNetForImageClassification, get_config
    from adlr_hf.parallel import apply_tp_plan, gather_state_dict, is_tensor_parallel

    config = get_config(name, **overrides)
    torch.manual_seed(0)
    reference = PDResNetForImageClassification(config)
    _randomise_batch_norms(reference, seed=11)
    model = copy.deepcopy(reference)
    apply_tp_plan(model, group)
    assert is_tensor_parallel(model)
    kinds = {type(m).__name__ for m in model.modules()}
    assert expected_types <= kinds, f"{name}: {sorted(expected_types - kinds)} missing from the sharded model"

    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 3, 7, 9])
    reference.eval()
    model.eval()
    with torch.no_grad():
        assert_close(model(pixels).logits, reference(pixels).logits, rtol=1e-5, atol=1e-5, what=f"{name} eval logits")

    # A TP=2 save is tensor-for-tensor the TP=1 save; loading it at tp_size=2 gives the same logits.
    folder = f"{tmp}/{name}"
    assert_saves_match(model, reference, folder, rank, name)
    loaded = AutoModelForImageClassification.from_pretrained(f"{folder}-tp1", tp_size=2).eval()
    assert is_tensor_parallel(loaded)
    with torch.no_grad():
        assert_close(loaded(pixels).logits, reference(pixels).logits, rtol=1e-5, atol=1e-5,
                     what=f"{name} from_pretrained(tp_size=2) logits")

    # Train mode: batch statistics, loss, every gradient, and the running statistics they update.
    reference.train()
    model.train()
    ref_out = reference(pixels, labels=labels)
    ref_out.loss.backward()
    out = model(pixels, labels=labels)
    assert_close(out.logits, ref_out.logits.detach(), rtol=1e-5, atol=1e-5, what=f"{name} train logits")
    assert_close(out.loss, ref_out.loss.detach(), what=f"{name} train loss")
    out.loss.backward()
    ref_params = dict(reference.named_parameters())
    for pname, param in model.named_parameters():
        expected = expected_grad_shard(model, pname, ref_params[pname].grad, rank)
        assert_close(param.grad, expected, rtol=1e-4, atol=1e-5, what=f"{name} grad of {pname}")
    gathered = gather_state_dict(model)
    ref_state = reference.state_dict()
    assert gathered.keys() == ref_state.keys()
    for key, value in ref_state.items():
        assert_close(gathered[key], value, rtol=1e-5, atol=1e-6, what=f"{name} state after a train step: {key}")


def _worker(rank, tmp):
    from adlr_hf.parallel import init_parallel

    state = init_parallel(tp_size=2)
    group = state.tp_group
    _mappings_dim1(rank, group)
    _conv_primitives(rank, group)
    _batch_norm(rank, group)
    common = {"ColumnParallelConv2d", "RowParallelConv2d", "ChannelParallelBatchNorm2d", "RowParallelLinear"}
    _whole_model(rank, group, "pd-resnet-tiny", {}, tmp, common)
    _whole_model(rank, group, "pd-resnet50", {"base_width": 8, "depths": [1, 1, 1, 1], "num_labels": 10}, tmp, common)
    _whole_model(rank, group, "pd-vgg-tiny", {"classifier_dropout": 0.0}, tmp, common | {"ColumnParallelLinear"})


def test_channel_parallel_convs_and_pd_models_at_tp2_match_tp1(tmp_path):
    run_ranks(_worker, str(tmp_path))
