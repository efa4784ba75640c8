"""The spatially-displaced convolution (SDC-Net, arXiv 1811.00684; NVIDIA/semantic-segmentation branch sdcnet,
spatialdisplconv_package): against a direct float64 evaluation of the formula, gradcheck, the naive k*k grid_sample
formulation, the k = 1 warp identity, what autograd keeps for backward, and bad inputs."""

import numpy as np
import pytest
import torch

from adlr_hf.layers.sdc import _SDCFunction, sdc, sdc_naive
from adlr_hf.layers.warp import warp


def direct_sdc(image, kernel_v, kernel_h, flow) -> np.ndarray:
    """out[b,c,y,x] = sum_ij Kv[i] Kh[j] bilinear(I, clamp(y+v+i-(k-1)/2), clamp(x+u+j-(k-1)/2)), in float64 numpy,
    one tap at a time, straight from the definition."""
    image, kv, kh, flow = (t.detach().double().numpy() for t in (image, kernel_v, kernel_h, flow))
    batch, channels, height, width = image.shape
    k = kv.shape[1]
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = np.zeros_like(image)
    for b in range(batch):
        for i in range(k):
            for j in range(k):
                yy = np.clip(ys + flow[b, 1] + i - (k - 1) / 2, 0, height - 1)
                xx = np.clip(xs + flow[b, 0] + j - (k - 1) / 2, 0, width - 1)
                y0, x0 = np.floor(yy).astype(int), np.floor(xx).astype(int)
                y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
                a, c = yy - y0, xx - x0
                img = image[b]
                sample = ((1 - a) * (1 - c) * img[:, y0, x0] + (1 - a) * c * img[:, y0, x1]
                          + a * (1 - c) * img[:, y1, x0] + a * c * img[:, y1, x1])
                out[b] += kv[b, i] * kh[b, j] * sample
    return out


def random_case(k, shape=(2, 3, 7, 9), seed=0, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    batch, channels, height, width = shape
    image = torch.rand(shape, generator=g, dtype=torch.float64)
    kernel_v = torch.randn(batch, k, height, width, generator=g, dtype=torch.float64)
    kernel_h = torch.randn(batch, k, height, width, generator=g, dtype=torch.float64)
    flow = torch.randn(batch, 2, height, width, generator=g, dtype=torch.float64) * scale
    flow[0, :, 0, :3] = torch.tensor([[40.0, -35.5, 0.25], [-60.0, 33.7, -12.5]])  # far outside the image
    return [t.to(dtype) for t in (image, kernel_v, kernel_h, flow)]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 11])
def test_matches_the_formula_in_float64(k):
    case = random_case(k, seed=k)
    expected = direct_sdc(*case)
    assert np.allclose(sdc(*case).numpy(), expected, rtol=0, atol=1e-12)
    assert np.allclose(_SDCFunction.apply(*case).numpy(), expected, rtol=0, atol=1e-12)  # gather path, any k


def test_float32_matches_the_formula():
    case = random_case(11, shape=(1, 2, 12, 10), seed=5, dtype=torch.float32)
    assert np.allclose(sdc(*case).numpy(), direct_sdc(*case), rtol=0, atol=2e-5)


@pytest.mark.parametrize("k", [2, 3])
def test_gradcheck_image_kernels_and_motion(k):
    image, kv, kh, flow = random_case(k, shape=(1, 2, 4, 5), seed=10 + k, scale=2.0)
    inputs = [t.clone().requires_grad_() for t in (image, kv, kh, flow)]
    assert torch.autograd.gradcheck(lambda *a: sdc(*a), inputs, eps=1e-6, atol=1e-6)


def test_gradients_equal_the_naive_formulation():
    case = random_case(5, shape=(2, 2, 9, 8), seed=3)
    grad_out = torch.randn(2, 2, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    a = [t.clone().requires_grad_() for t in case]
    b = [t.clone().requires_grad_() for t in case]
    out_a, out_b = sdc(*a), sdc_naive(*b)
    assert torch.allclose(out_a, out_b, rtol=0, atol=1e-12)
    for ga, gb in zip(torch.autograd.grad(out_a, a, grad_out), torch.autograd.grad(out_b, b, grad_out)):
        assert torch.allclose(ga, gb, rtol=0, atol=1e-10)


def test_k11_float32_equals_naive_to_1e5():
    g = torch.Generator().manual_seed(6)
    image = torch.rand(2, 3, 24, 20, generator=g)
    kv = torch.softmax(torch.randn(2, 11, 24, 20, generator=g), 1)
    kh = torch.softmax(torch.randn(2, 11, 24, 20, generator=g), 1)
    flow = torch.randn(2, 2, 24, 20, generator=g) * 5
    assert (sdc(image, kv, kh, flow) - sdc_naive(image, kv, kh, flow)).abs().max() < 1e-5


def test_k1_unit_kernels_equal_warp_exactly():
    image, _, _, flow = random_case(1, seed=7, dtype=torch.float32)
    ones = torch.ones(2, 1, 7, 9)
    assert torch.equal(sdc(image, ones, ones, flow), warp(image, flow))
    # the general (gather) path agrees to rounding
    assert torch.allclose(_SDCFunction.apply(image, ones, ones, flow), warp(image, flow), rtol=0, atol=1e-6)


def test_only_the_inputs_are_kept_for_backward():
    """Lean memory: autograd keeps the op's inputs and nothing else (the naive form keeps k*k grids and samples)."""
    image, kv, kh, flow = [t.requires_grad_() for t in random_case(11, shape=(1, 3, 16, 16), seed=8,
                                                                   dtype=torch.float32)]
    input_ptrs = {t.untyped_storage().data_ptr() for t in (image, kv, kh, flow)}

    def saved(fn):
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            fn(image, kv, kh, flow)
        return kept

    kept = saved(sdc)
    assert {t.untyped_storage().data_ptr() for t in kept} <= input_ptrs
    naive_bytes = sum(t.numel() * t.element_size() for t in saved(sdc_naive))
    assert naive_bytes > 100 * image.numel() * image.element_size()


def test_gradients_only_where_asked_and_nan_motion_propagates():
    image, kv, kh, flow = random_case(3, seed=9)
    kv.requires_grad_()
    flow.requires_grad_()
    out = sdc(image, kv, kh, flow)
    gkv, gflow = torch.autograd.grad(out.sum(), (kv, flow))
    ref_kv, ref_flow = (t.clone().requires_grad_() for t in (kv, flow))
    e_kv, e_flow = torch.autograd.grad(sdc_naive(image, ref_kv, kh, ref_flow).sum(), (ref_kv, ref_flow))
    assert torch.allclose(gkv, e_kv, atol=1e-10) and torch.allclose(gflow, e_flow, atol=1e-10)
    flow = flow.detach().clone()
    flow[0, 0, 3, 4] = float("nan")
    out = sdc(image, kv.detach(), kh, flow)
    assert torch.isnan(out[0, :, 3, 4]).all() and torch.isfinite(out[1]).all()


def test_promotes_mixed_dtypes():
    image, kv, kh, flow = random_case(3, dtype=torch.float32)
    out = sdc(image.double(), kv, kh.half(), flow)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("change, match", [
    (dict(kernel_h=torch.zeros(2, 4, 7, 9)), r"must both have k >= 1 channels"),
    (dict(flow=torch.zeros(2, 3, 7, 9)), r"flow must be \(B, 2, H, W\)"),
    (dict(kernel_v=torch.zeros(2, 3, 7, 8)), r"kernel_v \(2, 3, 7, 8\) must match the image's batch size and H, W"),
    (dict(flow=torch.zeros(1, 2, 7, 9)), r"flow \(1, 2, 7, 9\) must match"),
    (dict(image=torch.zeros(2, 3, 7, 9, dtype=torch.uint8)), "must be floating point"),
    (dict(image=torch.zeros(3, 7, 9)), r"image must be 4-D"),
    (dict(kernel_v=np.zeros((2, 3, 7, 9))), "must be a torch tensor"),
])
def test_bad_inputs(change, match):
    args = dict(image=torch.rand(2, 3, 7, 9), kernel_v=torch.rand(2, 3, 7, 9), kernel_h=torch.rand(2, 3, 7, 9),
                flow=torch.zeros(2, 2, 7, 9))
    args.update(change)
    with pytest.raises(ValueError, match=match):
        sdc(**args)
