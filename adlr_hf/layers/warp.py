"""Backward warping of images and label maps by a dense per-pixel motion field.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py`, which warps with FlowNet2's
`Resample2d` (bilinear for frames, `bilinear=False` i.e. nearest for label maps).

Semantics (flow in pixels, channel 0 = u = x displacement, channel 1 = v = y displacement):

    out[b, c, y, x] = I[b, c, y + v[b, y, x], x + u[b, y, x]]

read bilinearly (or at the nearest pixel), with sample coordinates clamped to the image (border padding), through
`F.grid_sample(align_corners=True, padding_mode="border")`: pixel centres sit at integer coordinates 0 .. W-1.
`padding_mode="zeros"` reads 0 outside the image instead (grid_sample's default, which NVIDIA/unsupervised-video-
interpolation's `MyResample2D` relies on).
Deviation from the reference: `grid_sample` replaces the FlowNet2 CUDA extension (`Resample2d`); exact parity of the
two at the image border is not established (the reference clamps each bilinear corner, which gives the same values).

This file needs only torch, so a published model folder can carry a copy of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["PADDING_MODES", "WARP_MODES", "flow_to_grid", "warp"]

WARP_MODES = ("bilinear", "nearest")
PADDING_MODES = ("border", "zeros")


def _check_pair(image: torch.Tensor, flow: torch.Tensor, what: str = "image") -> None:
    if not isinstance(image, torch.Tensor) or not isinstance(flow, torch.Tensor):
        raise ValueError(f"{what} and flow must be torch tensors; got {type(image).__name__} and "
                         f"{type(flow).__name__}")
    if image.dim() != 4:
        raise ValueError(f"{what} must be (B, C, H, W); got shape {tuple(image.shape)} (add a batch dimension with "
                         f"{what}[None] or a channel one with {what}[:, None])")
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W) with (u, v) = (x, y) displacement in pixels; got shape "
                         f"{tuple(flow.shape)}")
    if image.shape[0] != flow.shape[0] or image.shape[2:] != flow.shape[2:]:
        raise ValueError(f"{what} {tuple(image.shape)} and flow {tuple(flow.shape)} must share the batch size and "
                         "H, W; resize or crop the flow to the image")
    if not flow.is_floating_point():
        raise ValueError(f"flow must be a floating-point tensor; got dtype {flow.dtype}")
    if image.device != flow.device:
        raise ValueError(f"{what} is on {image.device} but flow is on {flow.device}; move them to one device")


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """The (B, H, W, 2) `grid_sample` grid (align_corners=True normalisation to [-1, 1]) of the sample points
    (x + u, y + v). A size-1 axis maps to 0 (its only pixel)."""
    _, _, height, width = flow.shape
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    gx = x * (2.0 / (width - 1)) - 1.0 if width > 1 else torch.zeros_like(x)
    gy = y * (2.0 / (height - 1)) - 1.0 if height > 1 else torch.zeros_like(y)
    return torch.stack((gx, gy), dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear",
         padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp `image` (B, C, H, W) by `flow` (B, 2, H, W): out[y, x] = image[y + v, x + u].

    mode="bilinear" for frames (differentiable in image and flow); mode="nearest" for label maps: every output value
    is one of the input's values, and integer (or bool) label maps keep their dtype. The flow runs in the image's
    floating dtype (float32 for label maps). padding_mode: "border" (clamp to the edge) or "zeros" (0 outside)."""
    if mode not in WARP_MODES:
        raise ValueError(f"mode={mode!r} is not one of {WARP_MODES}; use 'bilinear' for frames, 'nearest' for labels")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode={padding_mode!r} is not one of {PADDING_MODES}; use 'border' to repeat the "
                         "edge pixels or 'zeros' to read 0 outside the image")
    _check_pair(image, flow)
    if image.is_floating_point() or image.is_complex():
        if image.is_complex():
            raise ValueError(f"image dtype {image.dtype} is complex; warp real images or label maps")
        grid = flow_to_grid(flow.to(image.dtype))
        return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    if mode != "nearest":
        raise ValueError(f"image dtype {image.dtype} is not floating point: bilinear warping would blend label ids; "
                         "use mode='nearest' for label maps, or convert the image to float")
    # Label maps: sample in float64 (exact for every int32 and for int64 ids below 2**53), then restore the dtype.
    grid = flow_to_grid(flow.to(torch.float64))
    out = F.grid_sample(image.to(torch.float64), grid, mode="nearest", padding_mode=padding_mode, align_corners=True)
    return out.round().to(image.dtype)
