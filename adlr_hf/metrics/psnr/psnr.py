"""Peak signal-to-noise ratio of predicted frames, as an `evaluate` module and as a batched torch function.

Reference: SDC-Net (Reda et al., arXiv 1811.00684), NVIDIA/semantic-segmentation branch `sdcnet`, `sdcnet/main.py`
reports `skimage.measure.compare_psnr` per predicted frame, averaged over frames (now
`skimage.metrics.peak_signal_noise_ratio`). Per image, over all pixels and channels:

    PSNR = 10 * log10(data_range**2 / MSE),   MSE = mean((prediction - reference)**2)

computed in float64, so it equals scikit-image to float64 rounding. Identical images give +inf (as scikit-image).
The module reports the mean of the per-image values (the reference's average) and their count.

Two ways in, one implementation:
    psnr(pred, ref, data_range=255.0)                 # torch/numpy batches (B, C, H, W) or (C, H, W) -> (B,) float64
    m = evaluate.load(".../adlr_hf/metrics/psnr")    # images as (H, W, C) arrays
    m.compute(predictions=[img_a], references=[img_b], data_range=255)   # {'psnr': ..., 'num_images': 1}

`evaluate` stores each image as nested lists (about a second per 960x540 frame); for long evaluations call `psnr`
on tensor batches directly (the training loop does).
"""

import math

import evaluate
import numpy as np
import torch

from .image_pairs import SDCNET_CITATION, SDCNET_REFERENCES, as_batches, frame_pair_metric

__all__ = ["PSNR", "psnr"]

_CITATION = SDCNET_CITATION

_DESCRIPTION = """\
PSNR = 10 log10(data_range^2 / MSE) per image over all pixels and channels, averaged over images (SDC-Net's
evaluation, skimage.metrics.peak_signal_noise_ratio).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: images as (H, W, C) arrays (grayscale as (H, W, 1)).
    references: the ground-truth images, same shapes.
    data_range (float, default 255): the value range of the images (255 for 0..255 frames, 1.0 for 0..1).
    per_image (bool, default False): also return the list of per-image values.
Returns:
    psnr (float): mean of the per-image PSNRs in dB (+inf if every pair is identical).
    num_images (int): number of image pairs.
Examples:
    >>> m = PSNR()
    >>> m.compute(predictions=[[[[0.0], [2.0]]]], references=[[[[0.0], [0.0]]]], data_range=255)["psnr"]  # MSE 2
    45.1205...
"""


def _check_data_range(data_range) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.integer, np.floating)) or \
            not math.isfinite(float(data_range)) or data_range <= 0:
        raise ValueError(f"data_range={data_range!r} must be a positive number (255 for 0..255 images, 1.0 for 0..1)")
    return float(data_range)


def psnr(predictions, references, data_range: float = 255.0) -> torch.Tensor:
    """Per-image PSNR in dB, a float64 tensor (B,), of channel-first batches (B, C, H, W) (or one (C, H, W) or
    (H, W) image) in the value range `data_range`."""
    data_range = _check_data_range(data_range)
    pred, ref = as_batches(predictions, references)
    mse = (pred - ref.to(pred.device)).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range ** 2 / mse)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PSNR(frame_pair_metric()):
    key = "psnr"
    score = staticmethod(psnr)
    description, citation, inputs_description = _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION
    reference_urls = SDCNET_REFERENCES

