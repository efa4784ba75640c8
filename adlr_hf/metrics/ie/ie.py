"""Interpolation error (IE): the RMS difference between a predicted frame and the ground truth, as an `evaluate`
module and as a batched torch function.

The frame-interpolation error of the Middlebury benchmark (Baker et al., "A Database and Evaluation Methodology for
Optical Flow", IJCV 2011), used for the video families (SDC-Net, arXiv 1811.00684, NVIDIA/semantic-segmentation
branch `sdcnet`; the interpolation family, NVIDIA/unsupervised-video-interpolation `eval.py`). Per image:

    color="rms" (default): IE = sqrt(mean over pixels and channels of (prediction - reference)^2)
                           (= sqrt(skimage.metrics.mean_squared_error))
    color="l2":            IE = sqrt(mean over pixels of ||prediction - reference||_2^2 over channels)
                           (Baker et al.'s rule for colour images: the L2 norm of the RGB difference; sqrt(C) * rms)
    color="mean_l2":       IE = mean over pixels of ||prediction - reference||_2 over channels
                           (what NVIDIA/unsupervised-video-interpolation `eval.py` computes, on uint8-cast frames)

in float64, in the images' own units (0..255 frames give IE in grey levels). The module averages over images.

    interpolation_error(pred, ref)                  # torch/numpy batches (B, C, H, W) or (C, H, W) -> (B,) float64
    m = evaluate.load(".../adlr_hf/metrics/ie")     # images as (H, W, C) arrays
    m.compute(predictions=[img_a], references=[img_b])                     # {'ie': ..., 'num_images': 1}
"""

import evaluate
import torch

from .image_pairs import as_batches, frame_pair_metric

__all__ = ["COLOR_RULES", "InterpolationError", "interpolation_error"]

_CITATION = """\
@article{baker2011database,
  title={A Database and Evaluation Methodology for Optical Flow},
  author={Baker, Simon and Scharstein, Daniel and Lewis, J. P. and Roth, Stefan and Black, Michael J. and
          Szeliski, Richard},
  journal={International Journal of Computer Vision},
  volume={92}, number={1}, pages={1--31}, year={2011}
}
"""

_DESCRIPTION = """\
Interpolation error (Middlebury): per image the root-mean-square difference between prediction and ground truth (over
pixels and channels by default), averaged over images.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: images as (H, W, C) arrays (grayscale as (H, W, 1)).
    references: the ground-truth images, same shapes.
    color (str, default "rms"): "rms" over pixels and channels, "l2" (RMS over pixels of the per-pixel colour L2
        norm, Baker et al.), or "mean_l2" (mean over pixels of the colour L2 norm, the UVI evaluation script).
    per_image (bool, default False): also return the list of per-image values.
Returns:
    ie (float): mean of the per-image errors, in the images' units.
    num_images (int): number of image pairs.
Examples:
    >>> m = InterpolationError()
    >>> m.compute(predictions=[[[[3.0], [4.0]]]], references=[[[[0.0], [0.0]]]])["ie"]  # sqrt((9 + 16) / 2)
    3.5355...
"""

COLOR_RULES = ("rms", "l2", "mean_l2")


def interpolation_error(predictions, references, color: str = "rms") -> torch.Tensor:
    """Per-image interpolation error, a float64 tensor (B,), of channel-first batches (B, C, H, W) (or one
    (C, H, W) or (H, W) image); `color` as in the module docstring."""
    if color not in COLOR_RULES:
        raise ValueError(f"color={color!r} is not one of {COLOR_RULES}: 'rms' over pixels and channels, 'l2' the "
                         "RMS of per-pixel colour norms (Baker et al.), 'mean_l2' their mean (UVI eval.py)")
    pred, ref = as_batches(predictions, references)
    squared = (pred - ref.to(pred.device)).square()
    if color == "rms":
        return squared.mean(dim=(1, 2, 3)).sqrt()
    per_pixel = squared.sum(dim=1)
    if color == "l2":
        return per_pixel.mean(dim=(1, 2)).sqrt()
    return per_pixel.sqrt().mean(dim=(1, 2))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class InterpolationError(frame_pair_metric()):
    key = "ie"
    score = staticmethod(interpolation_error)
    description, citation, inputs_description = _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION
    reference_urls = [
        "https://vision.middlebury.edu/flow/",
        "https://github.com/NVIDIA/unsupervised-video-interpolation/blob/master/eval.py",
    ]

