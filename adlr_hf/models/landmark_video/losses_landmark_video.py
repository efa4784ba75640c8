"""The landmark model's reconstruction loss.

Paper: Shih et al., arXiv 1909.02749. Reference: NVIDIA/UnsupervisedLandmarkLearning, `models/losses.py`
(`Vgg19PerceptualLoss`) and `configs/train_args_bbc_pose.yaml` (`vgg_lambda` 5, `reduced_w`).

With VGG19 features (torchvision `vgg19().features[:23]`, from a local weights file) attached:

    loss = vgg_lambda · Σ_i w_i · mean((φ_i(x) - φ_i(y))²),  φ = relu1_2, relu2_2, relu3_2, relu4_2, pixels
    w = (1/32, 1/16, 1/8, 1/4, 1) (`reduced_w`) or all 1

on [-1, 1] frames as the reference feeds them (it never applies ImageNet normalisation). Without VGG19 weights:

    loss = mean |x - y| + ssim_weight · (1 - SSIM(x, y))

with SSIM Gaussian-weighted (σ 1.5, 11 taps, population covariance, K1 0.01, K2 0.03, data range 2), averaged over
the valid (unpadded) window positions and the channels, which equals scikit-image's `structural_similarity(...,
gaussian_weights=True, use_sample_covariance=False)` (it crops the 5-pixel padded border).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["VGG19_TAPS", "differentiable_ssim", "perceptual_loss", "reconstruction_loss"]

VGG19_TAPS = (3, 8, 13, 22)  # indices of relu1_2, relu2_2, relu3_2, relu4_2 in torchvision's vgg19().features
SSIM_SIGMA, SSIM_RADIUS = 1.5, 5
K1, K2 = 0.01, 0.03


def perceptual_loss(features, prediction: torch.Tensor, target: torch.Tensor, weights, scale: float) -> torch.Tensor:
    """scale · Σ w_i MSE at the four VGG19 taps and on the pixels (`features` is `vgg19().features[:23]`)."""
    terms = []
    x, y = prediction, target
    for index, layer in enumerate(features):
        x, y = layer(x), layer(y)
        if index in VGG19_TAPS:
            terms.append(F.mse_loss(x, y))
    if len(terms) != len(VGG19_TAPS):
        raise ValueError(f"the perceptual network must be VGG19 features[:23] (to relu4_2); it has {len(features)} "
                         "layers")
    terms.append(F.mse_loss(prediction, target))
    return scale * sum(w * t for w, t in zip(weights, terms))


def _gaussian_window(dtype, device) -> torch.Tensor:
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return taps / taps.sum()


def differentiable_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Mean SSIM of (N, C, H, W) batches (H, W >= 11), differentiable, as a 0-d tensor."""
    n, c, h, w = x.shape
    taps = _gaussian_window(x.dtype, x.device)
    stack = torch.cat((x, y, x * x, y * y, x * y)).reshape(5 * n * c, 1, h, w)
    blurred = F.conv2d(F.conv2d(stack, taps.view(1, 1, -1, 1)), taps.view(1, 1, 1, -1))
    mu_x, mu_y, xx, yy, xy = blurred.split(n * c)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return ssim_map.mean()


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, config, features=None) -> torch.Tensor:
    """The perceptual loss with `features` (VGG19 features[:23]), else L1 + ssim_weight · (1 - SSIM)."""
    if features is not None:
        first = next(features.parameters(), None)
        if first is not None and first.device != prediction.device:
            features.to(prediction.device)
        return perceptual_loss(features, prediction, target, config.vgg_weights, config.vgg_lambda)
    loss = (prediction - target).abs().mean()
    if config.ssim_weight:
        loss = loss + config.ssim_weight * (1 - differentiable_ssim(prediction, target))
    return loss
