"""The training loss of SDC-Net's released models, exactly as the reference computes it.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684 (its loss
adds perceptual and style terms; the released code trains with the three terms below).
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py` (`SDCNet2D.forward`):

    color           = mean |pred / rgb_max - target / rgb_max|
    color_gradient  = mean | |∂x pred| - |∂x target| | + mean | |∂y pred| - |∂y target| |  (frames in 0..rgb_max)
    flow_smoothness = mean |∂x motion| + mean |∂y motion|                                   (motion in pixels)
    loss            = 0.7 · color + 0.2 · color_gradient + 0.1 · flow_smoothness

with ∂x / ∂y forward differences along width / height, every mean over all elements of the batch. As in the
reference, only the colour term is divided by rgb_max: the gradient term is in grey levels and dominates the sum.
"""

from __future__ import annotations

import torch

COLOR_WEIGHT, GRADIENT_WEIGHT, SMOOTHNESS_WEIGHT = 0.7, 0.2, 0.1

__all__ = ["sdcnet_loss"]


def _dx(t: torch.Tensor) -> torch.Tensor:
    return t[..., 1:] - t[..., :-1]


def _dy(t: torch.Tensor) -> torch.Tensor:
    return t[..., 1:, :] - t[..., :-1, :]


def sdcnet_loss(predicted: torch.Tensor, target: torch.Tensor, motion: torch.Tensor,
                rgb_max: float = 255.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total, {"color", "color_gradient", "flow_smoothness"}) for predicted and target frames (B, 3, H, W) in
    [0, rgb_max] and the predicted motion (B, 2, H, W) in pixels; computed in float32 (or wider)."""
    dtype = torch.promote_types(predicted.dtype, torch.float32)
    predicted, target, motion = predicted.to(dtype), target.to(dtype), motion.to(dtype)
    color = (predicted / rgb_max - target / rgb_max).abs().mean()
    gradient = ((_dx(predicted).abs() - _dx(target).abs()).abs().mean()
                + (_dy(predicted).abs() - _dy(target).abs()).abs().mean())
    smoothness = _dx(motion).abs().mean() + _dy(motion).abs().mean()
    total = COLOR_WEIGHT * color + GRADIENT_WEIGHT * gradient + SMOOTHNESS_WEIGHT * smoothness
    return total, {"color": color, "color_gradient": gradient, "flow_smoothness": smoothness}
