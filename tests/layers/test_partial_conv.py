"""PartialConv2d against the paper's formula by hand, masks, caching, dtypes, torch.compile and the converter."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adlr_hf.layers import PartialConv2d, convert_to_partial_padding


def reference_partial_conv(conv, x, mask=None, multi_channel=False):
    """The formula of arXiv 1811.11718 written out in float64, window by window (no caching, no shortcuts)."""
    x = x.double()
    n, c, h, w = x.shape
    if mask is None:
        mask = torch.ones(n, c if multi_channel else 1, h, w, dtype=torch.float64)
    mask = mask.double()
    weight = conv.weight.double()
    kh, kw = conv.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    xp = F.pad(x * mask, (pw, pw, ph, ph))
    mp = F.pad(mask.expand(n, mask.shape[1], h, w), (pw, pw, ph, ph))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = torch.zeros(n, conv.out_channels, oh, ow, dtype=torch.float64)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    window = (c if multi_channel else 1) * kh * kw
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
            patch, mpatch = xp[:, :, rows, cols], mp[:, :, rows, cols]
            raw = torch.einsum("nchw,ochw->no", patch, weight)  # conv without bias
            total = mpatch.sum(dim=(1, 2, 3))  # (n,)
            update = total.clamp(0, 1)
            ratio = window / (total + 1e-8) * update
            out[:, :, i, j] = (raw * ratio[:, None] + bias) * update[:, None]
    return out


def ones_conv(bias=False):
    conv = PartialConv2d(1, 1, 3, padding=1, bias=bias)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        if bias:
            conv.bias.fill_(0.5)
    return conv


def test_all_ones_kernel_on_all_ones_input_gives_nine_everywhere():
    out = ones_conv()(torch.ones(1, 1, 5, 6))
    torch.testing.assert_close(out, torch.full((1, 1, 5, 6), 9.0))
    # zero padding sees 9 / 6 / 4 valid pixels: the ratio is 1 inside, 1.5 on edges, 2.25 in corners
    zero = F.conv2d(torch.ones(1, 1, 5, 6), torch.ones(1, 1, 3, 3), padding=1)
    assert zero[0, 0, 2, 2] == 9 and zero[0, 0, 0, 2] == 6 and zero[0, 0, 0, 0] == 4
    ratio = out / zero
    assert ratio[0, 0, 2, 2] == 1.0 and ratio[0, 0, 0, 2] == 1.5 and ratio[0, 0, 2, 0] == 1.5
    assert ratio[0, 0, 0, 0] == 2.25 and ratio[0, 0, -1, -1] == 2.25


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2)])
def test_matches_the_formula_and_equals_conv2d_in_the_interior(bias, stride, dilation):
    torch.manual_seed(0)
    pconv = PartialConv2d(3, 4, 3, stride=stride, padding=dilation, dilation=dilation, bias=bias)
    plain = nn.Conv2d(3, 4, 3, stride=stride, padding=dilation, dilation=dilation, bias=bias)
    plain.load_state_dict(pconv.state_dict())
    x = torch.randn(2, 3, 9, 8)
    out = pconv(x)
    torch.testing.assert_close(out.double(), reference_partial_conv(pconv, x), rtol=1e-5, atol=1e-5)
    border = -(-dilation // stride)  # output rows/cols whose window touches the padding
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    torch.testing.assert_close(out[inner], plain(x)[inner], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out[:, :, 0], plain(x)[:, :, 0])


def test_bias_is_added_back_and_fully_masked_windows_output_zero():
    conv = ones_conv(bias=True)
    x = torch.arange(36, dtype=torch.float32).view(1, 1, 6, 6)
    mask = torch.ones(1, 1, 6, 6)
    mask[:, :, :, :3] = 0  # left half is a hole: windows centred in columns 0-1 see no valid pixel
    out = conv(x, mask)
    assert torch.all(out[..., :2] == 0)
    # column 2: each window sees one valid column (3 pixels, 2 at the top/bottom rows) -> ratio 9/3 or 9/2
    xm = x * mask
    raw = F.conv2d(xm, torch.ones(1, 1, 3, 3), padding=1)  # the conv without bias
    count = F.conv2d(mask, torch.ones(1, 1, 3, 3), padding=1)
    expected = torch.where(count > 0, raw * 9 / count.clamp(min=1) + 0.5, torch.zeros_like(raw))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.double(), reference_partial_conv(conv, x, mask))


def test_multi_channel_mask_with_holes_against_direct_computation():
    torch.manual_seed(1)
    conv = PartialConv2d(3, 5, 3, padding=1, multi_channel=True, return_mask=True)
    x = torch.randn(2, 3, 7, 7)
    mask = (torch.rand(2, 3, 7, 7) > 0.4).float()
    mask[0, :, 2:5, 2:5] = 0  # a hole through all channels: its centre window is empty
    out, update = conv(x, mask)
    torch.testing.assert_close(out.double(), reference_partial_conv(conv, x, mask, multi_channel=True),
                               rtol=1e-5, atol=1e-5)
    count = F.conv2d(mask, torch.ones(5, 3, 3, 3), padding=1)
    assert update.shape == (2, 5, 7, 7)
    torch.testing.assert_close(update, count.clamp(0, 1))
    assert update[0, :, 3, 3].eq(0).all() and out[0, :, 3, 3].eq(0).all()
    # chained use: the update mask is the next multi-channel layer's mask
    nxt = PartialConv2d(5, 2, 3, padding=1, multi_channel=True)
    torch.testing.assert_close(nxt(out, update).double(), reference_partial_conv(nxt, out, update, True),
                               rtol=1e-5, atol=1e-5)


def test_single_channel_mask_and_return_mask_shapes():
    torch.manual_seed(2)
    conv = PartialConv2d(2, 3, 3, padding=1, return_mask=True)
    x = torch.randn(2, 2, 6, 6)
    out, update = conv(x)  # no mask: padding only
    assert out.shape == (2, 3, 6, 6) and update.shape == (1, 1, 6, 6) and update.eq(1).all()
    mask = (torch.rand(2, 1, 6, 6) > 0.5).float()
    out, update = conv(x, mask)
    assert update.shape == (2, 1, 6, 6)
    torch.testing.assert_close(out.double(), reference_partial_conv(conv, x, mask), rtol=1e-5, atol=1e-5)
    multi = PartialConv2d(2, 3, 3, padding=1, multi_channel=True, return_mask=True)
    assert multi(x)[1].shape == (2, 3, 6, 6)  # expanded, ready for a multi-channel next layer


def test_padding_only_ratio_is_cached_per_spatial_size_and_invalidated_when_it_changes():
    torch.manual_seed(3)
    conv = PartialConv2d(2, 2, 3, padding=1)
    for shape in [(1, 2, 8, 8), (4, 2, 8, 8), (1, 2, 10, 6), (3, 2, 8, 8)]:
        x = torch.randn(*shape)
        fresh = PartialConv2d(2, 2, 3, padding=1)
        fresh.load_state_dict(conv.state_dict())
        assert torch.equal(conv(x), fresh(x))
        torch.testing.assert_close(conv(x).double(), reference_partial_conv(conv, x), rtol=1e-5, atol=1e-5)
    # the batch size is not part of the key: two spatial sizes, one dtype/device -> two entries
    assert sorted(key[:2] for key in conv._ratio_cache) == [(8, 8), (10, 6)]
    conv.double()  # a dtype move clears the cache
    assert not conv._ratio_cache
    assert conv(torch.randn(1, 2, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_bf16_is_finite_and_close_to_fp32():
    torch.manual_seed(4)
    conv = PartialConv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 16, 16)
    full = conv(x)
    half = conv.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), full, rtol=3e-2, atol=3e-2)
    mask = (torch.rand(2, 1, 16, 16) > 0.3).to(torch.bfloat16)
    masked = conv(x.to(torch.bfloat16), mask)
    assert torch.isfinite(masked).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 weights, bf16 compute: the ratio follows the output
        auto = conv.float()(x)
    assert auto.dtype == torch.bfloat16 and torch.isfinite(auto).all()
    torch.testing.assert_close(auto.float(), full, rtol=3e-2, atol=3e-2)


def test_state_dict_equals_conv2d_and_a_meta_built_layer_needs_only_its_weights():
    conv = PartialConv2d(3, 4, 3, padding=1)
    assert set(conv.state_dict()) == {"weight", "bias"} and not list(conv.buffers())
    nn.Conv2d(3, 4, 3, padding=1).load_state_dict(conv.state_dict())
    # Built on the meta device (init_empty_weights, from_pretrained), then given its weights: nothing else to fill.
    with torch.device("meta"):
        empty = PartialConv2d(3, 4, 3, padding=1, multi_channel=True)
    empty.load_state_dict(conv.state_dict(), assign=True)
    x, mask = torch.randn(2, 3, 7, 7), (torch.rand(2, 3, 7, 7) > 0.3).float()
    reference = PartialConv2d(3, 4, 3, padding=1, multi_channel=True)
    reference.load_state_dict(conv.state_dict())
    torch.testing.assert_close(empty(x), reference(x), rtol=0, atol=0)
    torch.testing.assert_close(empty(x, mask), reference(x, mask), rtol=0, atol=0)


def test_gradients_flow_and_inference_mode_cache_does_not_leak_into_training():
    torch.manual_seed(5)
    conv = PartialConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 6, 6)
    with torch.inference_mode():
        conv(x)
    x.requires_grad_(True)
    conv(x).sum().backward()
    assert x.grad is not None and conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_torch_compile_fullgraph_matches_eager_across_input_sizes():
    torch.manual_seed(6)
    conv = PartialConv2d(3, 4, 3, padding=1)
    compiled = torch.compile(conv, backend="eager", fullgraph=True)  # dynamo tracing, no graph breaks
    for size in (8, 11):
        x = torch.randn(2, 3, size, size)
        torch.testing.assert_close(compiled(x), conv(x))


def test_torch_compile_inductor_on_a_tiny_input():
    torch.manual_seed(7)
    conv = PartialConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    start = time.perf_counter()
    try:
        out = torch.compile(conv)(x)
    except Exception as err:  # noqa: BLE001 - no C++ toolchain for inductor's CPU backend here
        pytest.skip(f"inductor cannot compile on this machine: {type(err).__name__}: {str(err)[:200]}")
    torch.testing.assert_close(out, conv(x), rtol=1e-5, atol=1e-5)
    assert time.perf_counter() - start < 300


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        PartialConv2d(1, 1, 3, padding=1, padding_mode="reflect")
    conv = PartialConv2d(3, 2, 3, padding=1)
    with pytest.raises(ValueError, match="1 channel"):
        conv(torch.randn(1, 3, 5, 5), torch.ones(1, 3, 5, 5))
    with pytest.raises(ValueError, match="input's H, W"):
        conv(torch.randn(1, 3, 5, 5), torch.ones(1, 1, 4, 5))
    with pytest.raises(ValueError, match="4-D"):
        conv(torch.randn(3, 5, 5))


def test_convert_to_partial_padding_swaps_only_padded_zero_convs_and_keeps_the_parameters():
    torch.manual_seed(8)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 1),  # unpadded: unchanged
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),  # another padding mode: unchanged
                      nn.Conv2d(4, 2, 5, stride=2, padding=2, bias=False)),
    )
    weights = [model[0].weight, model[3][1].weight]
    x = torch.randn(2, 3, 12, 12)
    plain_out = model(x)
    converted = convert_to_partial_padding(model)
    assert converted is model
    assert type(model[0]) is PartialConv2d and type(model[3][1]) is PartialConv2d
    assert type(model[2]) is nn.Conv2d and type(model[3][0]) is nn.Conv2d
    assert model[0].weight is weights[0] and model[3][1].weight is weights[1]
    out = model(x)
    assert out.shape == plain_out.shape and not torch.allclose(out, plain_out)
    # the first layer alone: identical to nn.Conv2d away from the border
    first = nn.Conv2d(3, 4, 3, padding=1)
    first.load_state_dict(model[0].state_dict())
    torch.testing.assert_close(model[0](x)[..., 1:-1, 1:-1], first(x)[..., 1:-1, 1:-1])
    lone = nn.Conv2d(1, 1, 3, padding=1)
    assert type(convert_to_partial_padding(lone)) is PartialConv2d
