"""PSNR of predicted frames (SDC-Net's evaluation, arXiv 1811.00684), as skimage.metrics.peak_signal_noise_ratio."""

from .psnr import PSNR, psnr

__all__ = ["PSNR", "psnr"]
