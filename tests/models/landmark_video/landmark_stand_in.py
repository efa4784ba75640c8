"""A small landmark model with the interface the temporal pieces build on (`encode_pose`, `encode_appearance`,
`decode`, `warp`), for tests of interpolation, dynamics and evaluation that must not depend on the full landmark
model: soft-argmax landmarks of a 1×1 convolution's heatmaps, per-part mean colours as appearance, Cauchy-rendered
parts coloured by them, and a warp that shifts the whole frame by the landmarks' mean offset."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


def grid(h: int, w: int) -> torch.Tensor:
    """[h·w, 2] pixel centres (x, y) in [-1, 1]."""
    ys = (torch.arange(h) + 0.5) / h * 2 - 1
    xs = (torch.arange(w) + 0.5) / w * 2 - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


class StandInLandmarks(nn.Module):
    def __init__(self, num_landmarks: int = 3, image_size: int = 16):
        super().__init__()
        self.num_landmarks, self.image_size = num_landmarks, image_size
        self.heat = nn.Conv2d(3, num_landmarks, 1)

    def encode_pose(self, pixel_values):
        heatmaps = self.heat(pixel_values)
        n, k, h, w = heatmaps.shape
        p = heatmaps.flatten(2).softmax(-1)  # [N, K, HW]
        g = grid(h, w).to(p)
        mu = p @ g
        d = g[None, None] - mu[:, :, None]
        covariance = torch.einsum("nkp,nkpi,nkpj->nkij", p, d, d) + 1e-3 * torch.eye(2)
        return SimpleNamespace(mu=mu, covariance=covariance, heatmaps=p.view(n, k, h, w))

    def encode_appearance(self, pixel_values, mu, covariance, heatmaps=None):
        p = heatmaps.flatten(2)  # [N, K, HW]
        return p @ pixel_values.flatten(2).transpose(1, 2)  # [N, K, 3] heatmap-weighted mean colour

    def decode(self, appearance, mu, covariance):
        g = grid(self.image_size, self.image_size).to(mu)
        d = g[None, None] - mu[:, :, None]  # [N, K, HW, 2]
        m = torch.einsum("nkpi,nkij,nkpj->nkp", d, torch.linalg.inv(covariance), d)
        maps = 1 / (1 + m)
        image = torch.einsum("nkp,nkc->ncp", maps, appearance) / (1 + maps.sum(1, keepdim=True))
        return image.view(*image.shape[:2], self.image_size, self.image_size).clamp(-1, 1)

    def warp(self, pixel_values, mu, target_mu, target_covariance):
        n, _, h, w = pixel_values.shape
        shift = (mu - target_mu).mean(dim=1)  # [N, 2]: read each pixel this far away
        positions = grid(h, w).to(pixel_values).view(1, h, w, 2) + shift.view(n, 1, 1, 2)
        return F.grid_sample(pixel_values, positions, mode="bilinear", padding_mode="border", align_corners=False)
