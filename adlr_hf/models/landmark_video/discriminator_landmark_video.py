"""The landmark model's optional adversarial part: a multi-scale PatchGAN discriminator and the least-squares GAN loss.

Paper: Shih et al., arXiv 1909.02749 (landmark model after arXiv 2001.09518).
Reference: NVIDIA/UnsupervisedLandmarkLearning, `models/discriminator.py` (pix2pixHD's `MultiscaleDiscriminator`
with `NLayerDiscriminator`, no intermediate features, no conditioning), `models/losses.py` (`GANLoss` with LSGAN),
`train.py` (`apply_GAN_criterion`).

Each scale is a PatchGAN: 4x4 convs with padding 2, the first `layers` of stride 2 (the first without norm), one of
stride 1, then a 4x4 conv to one channel of patch scores; channels ndf, 2·ndf, ... capped at 512; instance norm
without affine parameters and LeakyReLU(0.2) between convs. Scale s sees the frame average-pooled s times
(3x3, stride 2, padding 1, padding not counted). LSGAN: the mean squared distance of every scale's scores to 1 (real)
or 0 (fake), summed over the scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DiscriminatorConv2d", "MultiscaleDiscriminator", "PatchDiscriminator", "lsgan_loss",
           "patch_output_size"]

KERNEL, PADDING = 4, 2  # pix2pixHD: kw 4, padw ceil((kw - 1) / 2)
MAX_FILTERS = 512
LEAKY_SLOPE = 0.2
INSTANCE_NORM_EPS = 1e-5  # nn.InstanceNorm2d's default


class DiscriminatorConv2d(nn.Conv2d):
    """A 4x4 conv of the discriminator: its own class so the model initialises it as the reference does (Xavier
    uniform weights, biases 0.1) rather than with PyTorch's default."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__(in_channels, out_channels, KERNEL, stride=stride, padding=PADDING)


def patch_output_size(size: int, layers: int) -> int:
    """The side of a PatchGAN's score map for an input side `size` (each 4x4 conv with padding 2 maps n to
    floor((n + 4 - 4) / stride) + 1: `layers` convs of stride 2, then two of stride 1)."""
    for _ in range(layers):
        size = size // 2 + 1
    return size + 2


class PatchDiscriminator(nn.Module):
    """One scale: `layers` stride-2 convs, a stride-1 conv (each but the first followed by instance norm), LeakyReLU
    after each, and a stride-1 conv to one channel of patch scores (no sigmoid: least squares)."""

    def __init__(self, in_channels: int, filters: int, layers: int):
        super().__init__()
        widths = [min(filters * 2 ** i, MAX_FILTERS) for i in range(layers + 1)]
        convs = [DiscriminatorConv2d(in_channels, widths[0], 2)]
        convs += [DiscriminatorConv2d(widths[i - 1], widths[i], 2) for i in range(1, layers)]
        convs += [DiscriminatorConv2d(widths[layers - 1], widths[layers], 1),
                  DiscriminatorConv2d(widths[layers], 1, 1)]
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.convs) - 1
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if index == last:
                break
            if index > 0:  # the first conv has no norm (pix2pixHD)
                x = F.instance_norm(x, eps=INSTANCE_NORM_EPS)
            x = F.leaky_relu(x, LEAKY_SLOPE)
        return x


class MultiscaleDiscriminator(nn.Module):
    """`scales` PatchGANs; `scales[s]` judges the frame average-pooled s times. Returns one score map per scale,
    finest first."""

    def __init__(self, in_channels: int = 3, filters: int = 64, layers: int = 3, scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, filters, layers) for _ in range(scales))

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        scores = []
        for index, scale in enumerate(self.scales):
            if index:
                frames = F.avg_pool2d(frames, 3, stride=2, padding=1, count_include_pad=False)
            scores.append(scale(frames))
        return scores


def lsgan_loss(scores: list[torch.Tensor], real: bool) -> torch.Tensor:
    """Σ over scales of mean((score - target)²), target 1 for real, 0 for fake (the reference's `GANLoss`)."""
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(s, torch.full_like(s, target)) for s in scores)
