"""Gaussian-weighted SSIM of predicted frames (SDC-Net's evaluation, arXiv 1811.00684), as
skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)."""

from .ssim import SSIM, ssim

__all__ = ["SSIM", "ssim"]
