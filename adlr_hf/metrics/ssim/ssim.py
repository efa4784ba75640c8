"""Structural similarity (SSIM, Gaussian-weighted) of predicted frames, as an `evaluate` module and as a batched torch
function.

Reference: SDC-Net (Reda et al., arXiv 1811.00684), NVIDIA/semantic-segmentation branch `sdcnet`, `sdcnet/main.py`
reports `skimage.measure.compare_ssim(multichannel=True, gaussian_weights=True)` per predicted frame (now
`skimage.metrics.structural_similarity(channel_axis=-1, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=...)`, Wang et al. 2004). This is that computation, in torch and float64:

    mu = G * x (Gaussian filter, sigma 1.5, truncated at 3.5 sigma: 11 taps, borders mirrored as scipy's "reflect")
    var_x = G * x^2 - mu_x^2,  cov = G * (x y) - mu_x mu_y   (population covariance)
    S = (2 mu_x mu_y + C1)(2 cov + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2)),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = data_range

averaged over the map with a 5-pixel border cropped, per channel, then over channels. Equal to scikit-image for
float64 and integer images; scikit-image computes float32 images in float32, so on those the two differ by its
rounding. Images must be at least 11x11.

    ssim(pred, ref, data_range=255.0)                 # torch/numpy batches (B, C, H, W) or (C, H, W) -> (B,) float64
    m = evaluate.load(".../adlr_hf/metrics/ssim")    # images as (H, W, C) arrays
    m.compute(predictions=[img_a], references=[img_b], data_range=255)   # {'ssim': ..., 'num_images': 1}
"""

import math

import evaluate
import numpy as np
import torch
import torch.nn.functional as F

from .image_pairs import SDCNET_CITATION, SDCNET_REFERENCES, as_batches, frame_pair_metric

__all__ = ["SSIM", "ssim"]

_CITATION = """\
@article{wang2004ssim,
  title={Image quality assessment: from error visibility to structural similarity},
  author={Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.},
  journal={IEEE Transactions on Image Processing},
  volume={13}, number={4}, pages={600--612}, year={2004}
}
""" + SDCNET_CITATION

_DESCRIPTION = """\
Gaussian-weighted SSIM (sigma 1.5, population covariance, K1 0.01, K2 0.03) per image, mean over channels, averaged
over images (SDC-Net's evaluation; skimage.metrics.structural_similarity with gaussian_weights=True).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: images as (H, W, C) arrays (grayscale as (H, W, 1)), at least 11x11.
    references: the ground-truth images, same shapes.
    data_range (float, default 255): the value range of the images (255 for 0..255 frames, 1.0 for 0..1).
    per_image (bool, default False): also return the list of per-image values.
Returns:
    ssim (float): mean of the per-image SSIMs (1.0 for identical images).
    num_images (int): number of image pairs.
Examples:
    >>> m = SSIM()
    >>> img = np.arange(12 * 12 * 3, dtype=float).reshape(12, 12, 3)
    >>> m.compute(predictions=[img], references=[img], data_range=431)["ssim"]
    1.0
"""

K1, K2 = 0.01, 0.03
TRUNCATE = 3.5


def _check_data_range(data_range) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.integer, np.floating)) or \
            not math.isfinite(float(data_range)) or data_range <= 0:
        raise ValueError(f"data_range={data_range!r} must be a positive number (255 for 0..255 images, 1.0 for 0..1)")
    return float(data_range)


def _gaussian_taps(sigma: float, dtype, device) -> torch.Tensor:
    """scipy.ndimage's normalised 1-D Gaussian: radius int(3.5 sigma + 0.5)."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 / sigma ** 2 * x * x)
    return taps / taps.sum()


def _mirror_index(size: int, radius: int, device) -> torch.Tensor:
    """Indices of a line padded by `radius` with scipy's "reflect" rule (d c b a | a b c d | d c b a), any size."""
    i = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(i >= size, 2 * size - 1 - i, i)


def _gaussian_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (N, 1, H, W) maps with mirrored borders (scipy.ndimage.gaussian_filter)."""
    radius = (taps.numel() - 1) // 2
    height, width = x.shape[-2:]
    x = x.index_select(2, _mirror_index(height, radius, x.device))
    x = F.conv2d(x, taps.view(1, 1, -1, 1))
    x = x.index_select(3, _mirror_index(width, radius, x.device))
    return F.conv2d(x, taps.view(1, 1, 1, -1))


def ssim(predictions, references, data_range: float = 255.0, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM, a float64 tensor (B,), of channel-first batches (B, C, H, W) (or one (C, H, W) or (H, W)
    image) in the value range `data_range`; H and W at least 2 * int(3.5 sigma + 0.5) + 1 (11 for sigma 1.5)."""
    data_range = _check_data_range(data_range)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma={sigma!r} must be a positive number (1.5 is the reference's)")
    pred, ref = as_batches(predictions, references)
    ref = ref.to(pred.device)
    batch, channels, height, width = pred.shape
    taps = _gaussian_taps(float(sigma), torch.float64, pred.device)
    win = taps.numel()
    if height < win or width < win:
        raise ValueError(f"images of {height}x{width} (HxW) are smaller than the {win}x{win} Gaussian window; "
                         f"crop or resize to at least {win}x{win}")
    x = pred.reshape(batch * channels, 1, height, width)
    y = ref.reshape(batch * channels, 1, height, width)
    n = x.shape[0]
    moments = _gaussian_filter(torch.cat((x, y, x * x, y * y, x * y)), taps)
    mu_x, mu_y, xx, yy, xy = moments.split(n)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    pad = (win - 1) // 2
    s = s[:, :, pad:height - pad, pad:width - pad]
    return s.reshape(batch, channels, -1).mean(dim=2).mean(dim=1)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SSIM(frame_pair_metric()):
    key = "ssim"
    score = staticmethod(ssim)
    description, citation, inputs_description = _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION
    reference_urls = SDCNET_REFERENCES

