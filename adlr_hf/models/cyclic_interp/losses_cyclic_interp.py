"""The training losses of Super SloMo in the supervised and the cycle-consistent regime, as the reference computes
them.

Paper: Reda et al., "Unsupervised Video Interpolation Using Cycle Consistency", arXiv 1906.05928 (Super SloMo: Jiang
et al., arXiv 1712.00080). Reference: NVIDIA/unsupervised-video-interpolation, `models/HJSuperSloMo.py` (supervised)
and `models/CycleHJSuperSloMo.py` (cycle consistency and pseudo-supervision).

Every term is a mean over all elements, on mean-subtracted frames on the 0-255 scale (`l1` = mean |a - b|):

    reconstruction  l1(prediction, target)                                                       weight 0.8
    warping         supervised: the 2 time-t warps of the inputs vs the target + the 2 inputs warped onto each other
                    by the pair's flows; cycle: 8 terms (see `cycle_loss`)                        weight 0.4
    smoothness      l1 of horizontal and vertical neighbour differences of F0→1 and F1→0, of every flow net run
                    (1 in the supervised regime, 3 in the cycle)                                 weight 1.0
    perceptual      mean squared difference of VGG16 features[:22] (to conv4_3, before its ReLU) of prediction / 255
                    and target / 255 (mean-subtracted, not ImageNet-normalised); only with a feature network
                    given                                                                          weight 0.005
    pseudo-supervised  l1(P01, T(I0, I1, t)) + l1(P12, T(I1, I2, t)), T a frozen teacher           its own weight
                    (0.8 in the reference when a checkpoint is resumed)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

try:  # one function object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.layers.warp import warp
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries warp.py
    from .warp import warp

RECONSTRUCTION_WEIGHT, WARP_WEIGHT, SMOOTHNESS_WEIGHT, PERCEPTUAL_WEIGHT = 0.8, 0.4, 1.0, 0.005
DEFAULT_TEACHER_WEIGHT = 0.8
WARP_PADDING = "zeros"  # grid_sample's default, which the reference's MyResample2D uses

__all__ = ["DEFAULT_TEACHER_WEIGHT", "InterpolationPass", "cycle_loss", "l1", "perceptual", "smoothness",
           "supervised_loss", "total_loss", "uvi_warp"]


@dataclass
class InterpolationPass:
    """One run of the network on a pair of mean-subtracted frames (B, 3, H, W) at times t (B,): what the losses
    read. `frame0`, `frame1`: the inputs; `flow_01` = F0→1 and `flow_10` = F1→0 (B, 2, H, W) of the flow net;
    `warped0_raw` = g(I0, F̂t→0), `warped1_raw` = g(I1, F̂t→1) with the approximated time-t flows; `output`: the
    synthesised frame."""

    frame0: torch.Tensor
    frame1: torch.Tensor
    flow_01: torch.Tensor
    flow_10: torch.Tensor
    warped0_raw: torch.Tensor
    warped1_raw: torch.Tensor
    output: torch.Tensor


def uvi_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The reference's `MyResample2D`: bilinear backward warp, zeros outside the image, align_corners=True; in float32
    at least (half-precision pixel coordinates are off by whole pixels beyond x = 256)."""
    if image.element_size() < 4:
        return warp(image.float(), flow.float(), padding_mode=WARP_PADDING).to(image.dtype)
    return warp(image, flow, padding_mode=WARP_PADDING)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


def smoothness(flow: torch.Tensor) -> torch.Tensor:
    """l1 of horizontal plus l1 of vertical neighbour differences of a flow (B, 2, H, W)."""
    return l1(flow[..., :-1], flow[..., 1:]) + l1(flow[..., :-1, :], flow[..., 1:, :])


def perceptual(features, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of `features(x / 255)` (a frozen VGG16 features[:22]) of mean-subtracted frames, as the reference."""
    dtype = next(features.parameters()).dtype
    return F.mse_loss(features((prediction / 255.0).to(dtype)), features((target / 255.0).to(dtype))).to(
        prediction.dtype)


def _pair_warps(run: InterpolationPass) -> list[torch.Tensor]:
    """The two inputs warped onto each other by the pair's own flows: g(I0, F1→0) vs I1 and g(I1, F0→1) vs I0."""
    return [l1(uvi_warp(run.frame0, run.flow_10), run.frame1), l1(uvi_warp(run.frame1, run.flow_01), run.frame0)]


def total_loss(terms: dict[str, torch.Tensor], teacher_weight: float = 0.0) -> torch.Tensor:
    """The weighted sum of the terms present (perceptual and pseudo_supervised only when computed)."""
    total = (RECONSTRUCTION_WEIGHT * terms["reconstruction"] + WARP_WEIGHT * terms["warping"]
             + SMOOTHNESS_WEIGHT * terms["smoothness"])
    if "perceptual" in terms:
        total = total + PERCEPTUAL_WEIGHT * terms["perceptual"]
    if "pseudo_supervised" in terms:
        total = total + teacher_weight * terms["pseudo_supervised"]
    return total


def supervised_loss(run: InterpolationPass, target: torch.Tensor, features=None) -> dict[str, torch.Tensor]:
    """The terms of the supervised regime (`HJSuperSloMo.forward`) for one run against the true frame at t
    (mean-subtracted): reconstruction, warping (4 terms), smoothness (F0→1, F1→0), perceptual with `features`."""
    terms = {"reconstruction": l1(run.output, target),
             "warping": l1(run.warped0_raw, target) + l1(run.warped1_raw, target) + sum(_pair_warps(run)),
             "smoothness": smoothness(run.flow_10) + smoothness(run.flow_01)}
    if features is not None:
        terms["perceptual"] = perceptual(features, run.output, target)
    return terms


def cycle_loss(first: InterpolationPass, second: InterpolationPass, cycle: InterpolationPass, middle: torch.Tensor,
               features=None, teacher_outputs=None) -> dict[str, torch.Tensor]:
    """The terms of the cycle regime (`CycleHJSuperSloMo.forward`). `first` = f(I0, I1, t) giving P01, `second` =
    f(I1, I2, t) giving P12, `cycle` = f(P01, P12, 1 - t) giving Î1; `middle` is I1 (mean-subtracted).

    warping: the cycle's time-t warps of P01 and P12 vs I1, P01 and P12 warped onto each other by the cycle's flows,
    and each real pair warped onto itself by its own flows (4 terms): 8 terms. smoothness over the three runs' flows.
    `teacher_outputs` (T(I0, I1, t), T(I1, I2, t), mean-subtracted) adds the pseudo-supervised term."""
    terms = {"reconstruction": l1(cycle.output, middle),
             "warping": (l1(cycle.warped0_raw, middle) + l1(cycle.warped1_raw, middle) + sum(_pair_warps(cycle))
                         + sum(_pair_warps(first)) + sum(_pair_warps(second))),
             "smoothness": sum(smoothness(run.flow_10) + smoothness(run.flow_01) for run in (cycle, first, second))}
    if features is not None:
        terms["perceptual"] = perceptual(features, cycle.output, middle)
    if teacher_outputs is not None:
        terms["pseudo_supervised"] = l1(first.output, teacher_outputs[0]) + l1(second.output, teacher_outputs[1])
    return terms
