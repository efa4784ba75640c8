"""Landmarks as 2-D Gaussians: heatmap logits -> (mu, covariance), their Cauchy-like rendering, and the per-part
appearance pooling and projection of the part-factorised landmark model.

Paper: Shih et al., "Video Interpolation and Prediction with Unsupervised Landmarks", arXiv 1909.02749.
Reference: NVIDIA/UnsupervisedLandmarkLearning, `models/submodules.py` (`estimate_gaussian_params`,
`gaussian_params_to_heatmap`) and `models/part_factorized_model.py` (`pool_appearance_maps`,
`project_appearance_onto_part_map`).

Coordinates are (x, y) in [-1, 1]; pixel i of an axis of n pixels sits at -1 + 2i/n (the reference's
`torch.arange(-1, 1, 2 / n)` grids, the same at half and full resolution).
"""

from __future__ import annotations

import torch

__all__ = ["coordinate_grid", "estimate_landmarks", "landmark_displacement", "pool_appearance", "project_appearance",
           "render_landmarks", "sampling_grid"]


def coordinate_grid(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(H·W, 2) pixel coordinates (x, y), row-major, pixel (i, j) at (-1 + 2j/W, -1 + 2i/H)."""
    ys = -1 + 2 * torch.arange(height, dtype=dtype, device=device) / height
    xs = -1 + 2 * torch.arange(width, dtype=dtype, device=device) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=1)


def estimate_landmarks(logits: torch.Tensor, fixed_covariance: float | None = None):
    """Heatmap logits (N, K, h, w) -> (mu (N, K, 2), covariance (N, K, 2, 2), heatmaps (N, K, h, w)).

    heatmaps = softmax over the h·w pixels of each map (the reference's exp then normalise); mu = Σ p·x
    (soft-argmax); covariance = Σ p·x xᵀ - mu muᵀ, or `fixed_covariance`·I when given (the reference's
    `use_identity_covariance`).
    """
    n, k, h, w = logits.shape
    probs = torch.softmax(logits.reshape(n, k, h * w), dim=-1)
    grid = coordinate_grid(h, w, probs.dtype, probs.device)  # (hw, 2)
    mu = probs @ grid  # (N, K, 2)
    if fixed_covariance is not None:
        eye = torch.eye(2, dtype=probs.dtype, device=probs.device)
        covariance = (fixed_covariance * eye).expand(n, k, 2, 2)
    else:
        second = torch.einsum("nkp,pi,pj->nkij", probs, grid, grid)
        covariance = second - mu.unsqueeze(-1) * mu.unsqueeze(-2)
    return mu, covariance, probs.reshape(n, k, h, w)


def render_landmarks(mu: torch.Tensor, covariance: torch.Tensor, height: int, width: int,
                     epsilon: float = 1e-6) -> torch.Tensor:
    """Maps (N, K, H, W) of 1 / (1 + (x - mu)ᵀ Σ⁻¹ (x - mu)) on the pixel grid: 1 at mu, Cauchy-like tails.

    `epsilon`·I is added to Σ before inverting, so that a collapsed (one-pixel) heatmap still renders (the reference
    inverts Σ as it is)."""
    if mu.dim() != 3 or mu.shape[-1] != 2 or covariance.shape != (*mu.shape, 2):
        raise ValueError(f"mu must be (N, K, 2) and covariance (N, K, 2, 2); got {tuple(mu.shape)} and "
                         f"{tuple(covariance.shape)}")
    n, k, _ = mu.shape
    grid = coordinate_grid(height, width, mu.dtype, mu.device)  # (HW, 2)
    eye = torch.eye(2, dtype=mu.dtype, device=mu.device)
    precision = torch.linalg.inv(covariance + epsilon * eye)  # (N, K, 2, 2)
    offset = grid.view(1, 1, -1, 2) - mu.unsqueeze(2)  # (N, K, HW, 2)
    distance = torch.einsum("nkpi,nkij,nkpj->nkp", offset, precision, offset)
    return (1.0 / (1.0 + distance)).view(n, k, height, width)


def pool_appearance(features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
    """Per-part appearance vectors (N, K, C): the mean over pixels of features (N, C, h, w) weighted by each part's
    heatmap (N, K, h, w) (the reference averages the product over H and W)."""
    if features.shape[-2:] != heatmaps.shape[-2:]:
        raise ValueError(f"features {tuple(features.shape)} and heatmaps {tuple(heatmaps.shape)} must share H and W")
    return torch.einsum("nchw,nkhw->nkc", features, heatmaps) / (features.shape[-1] * features.shape[-2])


def project_appearance(vectors: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Appearance map (N, C, H, W) = Σ_k vectors[k] · maps[k] / (1 + Σ_k maps[k]): each part's vector painted on its
    rendered map (N, K, H, W), normalised by one plus the maps' sum (the reference's normalisation)."""
    painted = torch.einsum("nkc,nkhw->nchw", vectors, maps)
    return painted / (1.0 + maps.sum(dim=1, keepdim=True))


def landmark_displacement(offsets: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """A dense displacement field (N, H, W, 2) from per-landmark offsets (N, K, 2): each landmark's offset painted on
    its rendered map (N, K, H, W) with the appearance projection's normalisation, Σ_k offsets[k]·maps[k] / (1 +
    Σ_k maps[k]). The field is damped and smooth: a pixel under a lone landmark (its map is 1 there) moves by half
    the landmark's offset, a pixel among several by a share of their map-weighted mean offset, and a pixel far from
    every landmark (the "1 +") stays still, so the background does not follow the landmarks."""
    return project_appearance(offsets, maps).permute(0, 2, 3, 1)


def sampling_grid(displacement: torch.Tensor) -> torch.Tensor:
    """`F.grid_sample` positions (N, H, W, 2) (align_corners=False) of the pixels displaced by `displacement` (N, H,
    W, 2) in landmark coordinates. The landmark grid puts pixel j at -1 + 2j/n, grid_sample at its centre
    -1 + (2j + 1)/n: the same scale, so a zero displacement samples every pixel exactly."""
    n, height, width, _ = displacement.shape
    grid = coordinate_grid(height, width, displacement.dtype, displacement.device)
    centres = grid + torch.tensor([1 / width, 1 / height], dtype=grid.dtype, device=grid.device)
    return centres.view(1, height, width, 2) + displacement
