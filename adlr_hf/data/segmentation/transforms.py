"""Joint training augmentation of an image and its label map, as the reference's Cityscapes recipe
(NVIDIA/semantic-segmentation@sdcnet `transforms/joint_transforms.py`, arXiv 1812.01593): random scale in
[0.5, 2.0], a crop (padded with black / ignore when the scaled image is smaller; placed to contain a class-uniform
centroid when one is given), horizontal flip, then colour jitter and Gaussian blur on the image only.

Geometry runs through torchvision `transforms.v2.functional` on `tv_tensors.Image` and `tv_tensors.Mask`, so the
image is resized bicubically and the label map with nearest neighbours by the same call. Every random draw comes
from a generator seeded by (seed, epoch, index): the same sample of the same epoch gets the same augmentation in any
worker and after a resume; `set_epoch` on the dataset changes the draws.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .layouts import IGNORE_INDEX

BLUR_SIGMA = (0.15, 1.3)  # the reference's RandomGaussianBlur: sigma = 0.15 + U(0, 1) * 1.15


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A torch generator seeded by (seed, epoch, index) through numpy's SeedSequence (well mixed, order-free)."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """Uniform in [low, high] inclusive."""
    return int(torch.randint(low, high + 1, (), generator=g))


class JointTransform:
    """Scale, crop, flip (image and label together), colour jitter and blur (image only); see the module docstring.
    `crop_size` (h, w) or None (no crop); `color_jitter` the brightness / contrast / saturation / hue strength (the
    reference's 0.25; hue capped at 0.5); `blur` on or off."""

    def __init__(self, crop_size=(512, 512), scale=(0.5, 2.0), flip: bool = True, color_jitter: float = 0.25,
                 blur: bool = True, ignore_index: int = IGNORE_INDEX):
        if crop_size is not None and (len(crop_size) != 2 or min(crop_size) < 1):
            raise ValueError(f"crop_size {crop_size!r} must be (h, w) with positive sides, or None")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale {scale!r} must be (low, high) with 0 < low <= high")
        if color_jitter < 0:
            raise ValueError(f"color_jitter {color_jitter} must be >= 0")
        self.crop_size = tuple(int(v) for v in crop_size) if crop_size is not None else None
        self.scale, self.flip, self.color_jitter, self.blur = tuple(scale), bool(flip), float(color_jitter), bool(blur)
        self.ignore_index = ignore_index

    def __call__(self, image: torch.Tensor, label: torch.Tensor, generator: torch.Generator,
                 centroid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`image` uint8 (3, H, W), `label` int64 (H, W), `centroid` (y, x) in the unscaled image or None."""
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(label)
        factor = _uniform(generator, *self.scale)
        h, w = image.shape[-2:]
        size = [max(1, int(h * factor)), max(1, int(w * factor))]
        image = TF.resize(image, size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
        mask = TF.resize(mask, size)  # a Mask resizes with nearest neighbours
        if self.crop_size is not None:
            image, mask = self._crop(image, mask, generator, centroid, factor)
        if self.flip and float(torch.rand((), generator=generator)) < 0.5:
            image, mask = TF.horizontal_flip(image), TF.horizontal_flip(mask)
        image = self._jitter(image, generator)
        if self.blur:
            sigma = _uniform(generator, *BLUR_SIGMA)
            kernel = 2 * int(np.ceil(3 * sigma)) + 1
            image = TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)

    def _crop(self, image, mask, generator, centroid, factor):
        th, tw = self.crop_size
        h, w = image.shape[-2:]
        pad_h, pad_w = max(0, th - h), max(0, tw - w)
        if pad_h or pad_w:  # centred padding: black image, ignored label
            padding = [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2]
            image = TF.pad(image, padding, fill=0)
            mask = TF.pad(mask, padding, fill=self.ignore_index)
            h, w = image.shape[-2:]
        if centroid is not None:  # a crop that contains the (scaled) centroid and lies inside the image
            cy = int(centroid[0] * factor) + (pad_h // 2)
            cx = int(centroid[1] * factor) + (pad_w // 2)
            top = min(h - th, max(0, _randint(generator, cy - th + 1, cy)))
            left = min(w - tw, max(0, _randint(generator, cx - tw + 1, cx)))
        else:
            top, left = _randint(generator, 0, h - th), _randint(generator, 0, w - tw)
        return TF.crop(image, top, left, th, tw), TF.crop(mask, top, left, th, tw)

    def _jitter(self, image, generator):
        s = self.color_jitter
        if s == 0:
            return image
        ops = [lambda x: TF.adjust_brightness(x, _uniform(generator, max(0, 1 - s), 1 + s)),
               lambda x: TF.adjust_contrast(x, _uniform(generator, max(0, 1 - s), 1 + s)),
               lambda x: TF.adjust_saturation(x, _uniform(generator, max(0, 1 - s), 1 + s)),
               lambda x: TF.adjust_hue(x, _uniform(generator, -min(s, 0.5), min(s, 0.5)))]
        for i in torch.randperm(4, generator=generator).tolist():
            image = ops[i](image)
        return image
