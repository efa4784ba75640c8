"""Backward warping (SDC-Net, arXiv 1811.00684; NVIDIA/semantic-segmentation branch sdcnet warps with Resample2d):
identities, the bilinear formula with border clamping or zeros outside the image (NVIDIA/unsupervised-video-
interpolation's MyResample2D), nearest mode for label maps, bad inputs."""

import math

import pytest
import torch

from adlr_hf.layers.warp import flow_to_grid, warp


def bilinear_reference(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out[b, c, y, x] = bilinear(I, clamp(y + v), clamp(x + u)), by loops in float64."""
    batch, channels, height, width = image.shape
    out = torch.zeros(batch, channels, height, width, dtype=torch.float64)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                yy = min(max(y + float(flow[b, 1, y, x]), 0.0), height - 1)
                xx = min(max(x + float(flow[b, 0, y, x]), 0.0), width - 1)
                y0, x0 = math.floor(yy), math.floor(xx)
                y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
                a, c = yy - y0, xx - x0
                out[b, :, y, x] = ((1 - a) * (1 - c) * image[b, :, y0, x0] + (1 - a) * c * image[b, :, y0, x1]
                                   + a * (1 - c) * image[b, :, y1, x0] + a * c * image[b, :, y1, x1])
    return out


def test_zero_flow_is_identity():
    image = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    assert torch.allclose(warp(image, torch.zeros(2, 2, 7, 9, dtype=torch.float64)), image, rtol=0, atol=1e-13)
    image32 = image.float()
    assert torch.allclose(warp(image32, torch.zeros(2, 2, 7, 9)), image32, rtol=0, atol=1e-6)


@pytest.mark.parametrize("u, v", [(2, 0), (0, -3), (-1, 2), (20, -20)])
def test_integer_flow_is_an_edge_clamped_shift(u, v):
    image = torch.rand(1, 2, 6, 8, dtype=torch.float64)
    flow = torch.zeros(1, 2, 6, 8, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = u, v
    rows = (torch.arange(6) + v).clamp(0, 5)
    cols = (torch.arange(8) + u).clamp(0, 7)
    expected = image[:, :, rows][:, :, :, cols]
    assert torch.allclose(warp(image, flow), expected, rtol=0, atol=1e-12)
    assert torch.equal(warp(image, flow, mode="nearest"), expected)


def test_fractional_and_out_of_image_flow_match_the_formula():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64)
    flow = torch.randn(2, 2, 5, 7, generator=g, dtype=torch.float64) * 4  # many samples leave the image
    assert torch.allclose(warp(image, flow), bilinear_reference(image, flow), rtol=0, atol=1e-12)


def test_zeros_padding_reads_zero_outside_the_image():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 2, 5, 7, generator=g, dtype=torch.float64) + 1
    flow = torch.randn(1, 2, 5, 7, generator=g, dtype=torch.float64) * 4  # many samples leave the image
    # bilinear with every corner outside the image read as 0 = the edge-clamped warp of the image inside a ring of
    # zeros (a sample further out clamps onto the ring)
    padded = torch.nn.functional.pad(image, (1, 1, 1, 1))
    expected = bilinear_reference(padded, torch.nn.functional.pad(flow, (1, 1, 1, 1)))[:, :, 1:-1, 1:-1]
    assert torch.allclose(warp(image, flow, padding_mode="zeros"), expected, rtol=0, atol=1e-12)
    shift = torch.zeros(1, 2, 5, 7, dtype=torch.float64)
    shift[:, 0] = 2
    assert torch.allclose(warp(image, shift, padding_mode="zeros")[..., -2:], torch.zeros(1, 2, 5, 2,
                                                                                         dtype=torch.float64),
                          rtol=0, atol=1e-12)


def test_bilinear_warp_is_differentiable_in_image_and_flow():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    flow = (torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    assert torch.autograd.gradcheck(warp, (image, flow))


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.int32, torch.bool])
def test_nearest_keeps_label_values_and_dtype(dtype):
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 2 if dtype == torch.bool else 200, (2, 1, 6, 7), generator=g).to(dtype)
    if dtype == torch.int64:
        labels[0, 0, 0, 0] = 2 ** 40 + 3  # large ids survive
    flow = torch.randn(2, 2, 6, 7, generator=g) * 2
    flow = flow.round() + 0.3 * torch.sign(torch.randn(2, 2, 6, 7, generator=g))  # away from .5 ties
    out = warp(labels, flow, mode="nearest")
    assert out.dtype == dtype and out.shape == labels.shape
    rows = (torch.arange(6).view(1, 6, 1) + flow[:, 1]).round().clamp(0, 5).long()
    cols = (torch.arange(7).view(1, 1, 7) + flow[:, 0]).round().clamp(0, 6).long()
    expected = torch.stack([labels[b, 0][rows[b], cols[b]] for b in range(2)])[:, None]
    assert torch.equal(out, expected)


def test_flow_to_grid_hits_pixel_centres():
    flow = torch.zeros(1, 2, 3, 5)
    grid = flow_to_grid(flow)
    assert torch.allclose(grid[0, 0, :, 0], torch.linspace(-1, 1, 5))
    assert torch.allclose(grid[0, :, 0, 1], torch.linspace(-1, 1, 3))


@pytest.mark.parametrize("image, flow, kwargs, match", [
    (torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 5), {}, r"share the batch size and H, W"),
    (torch.rand(2, 3, 4, 4), torch.zeros(1, 2, 4, 4), {}, r"share the batch size"),
    (torch.rand(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), {}, r"flow must be \(B, 2, H, W\)"),
    (torch.rand(3, 4, 4), torch.zeros(1, 2, 4, 4), {}, r"image must be \(B, C, H, W\)"),
    (torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.long), {}, "floating-point"),
    (torch.zeros(1, 1, 4, 4, dtype=torch.long), torch.zeros(1, 2, 4, 4), {}, "use mode='nearest' for label maps"),
    (torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), {"mode": "bicubic"}, "not one of"),
    (torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), {"padding_mode": "reflection"}, "padding_mode='reflection'"),
    ([[1.0]], torch.zeros(1, 2, 4, 4), {}, "must be torch tensors"),
])
def test_bad_inputs(image, flow, kwargs, match):
    with pytest.raises(ValueError, match=match):
        warp(image, flow, **kwargs)
