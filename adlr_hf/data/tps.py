"""Thin-plate-spline (TPS) warps of frames, for the appearance branch of unsupervised landmark training.

Reference: NVIDIA/UnsupervisedLandmarkLearning, `dataloaders/transforms.py` (`TPSWarp`, after Jakab et al.): a
10 x 10 grid of control points (10 px margin) is moved by a random rotation (±π/8), per-axis scale (1.05-1.15),
translation of the rotation centre (±10 px) and a per-point perturbation (±2 px), and the frame is warped with the
TPS through those point pairs (OpenCV's shape transformer there, replicated borders).

Here the spline is solved in float64 torch and the frame is resampled with `grid_sample` (bilinear, border padding).
The warp is backward: the content of the source frame at `source[i]` appears at `target[i]` of the warped frame.
Control points are (x, y) in pixels (x along the width), pixel centres at integer positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["TPSParams", "tps_warp", "random_tps_targets", "tps_grid"]

# The reference's ranges (configs/defaults.yaml and train_args_bbc_pose.yaml).
ROTATION = (-math.pi / 8, math.pi / 8)
SCALE = (1.05, 1.15)
TRANSLATION = (-10.0, 10.0)
PERTURBATION = (-2.0, 2.0)
GRID_POINTS, GRID_MARGIN = 10, 10


def _kernel(r2: torch.Tensor) -> torch.Tensor:
    """The TPS radial basis U = r² log r² (0 at r = 0)."""
    return torch.where(r2 > 0, r2 * torch.log(r2.clamp_min(1e-30)), torch.zeros_like(r2))


class TPSParams:
    """The spline f with f(target[i]) = source[i]: f(p) = a0 + A p + Σ w_i U(|p - target_i|²), solved exactly."""

    def __init__(self, source: torch.Tensor, target: torch.Tensor):
        source, target = source.double(), target.double()
        if source.shape != target.shape or source.dim() != 2 or source.shape[1] != 2 or source.shape[0] < 3:
            raise ValueError(f"control points must be two (n, 2) arrays with n >= 3; got {tuple(source.shape)} and "
                             f"{tuple(target.shape)}")
        n = target.shape[0]
        system = torch.zeros(n + 3, n + 3, dtype=torch.float64)
        system[:n, :n] = _kernel(torch.cdist(target, target) ** 2)
        system[:n, n] = 1
        system[:n, n + 1:] = target
        system[n, :n] = 1
        system[n + 1:, :n] = target.t()
        rhs = torch.zeros(n + 3, 2, dtype=torch.float64)
        rhs[:n] = source
        self.target = target
        self.coefficients = torch.linalg.solve(system, rhs)  # (n + 3, 2): w_1..w_n, a0, A (rows for x, y)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """f at (m, 2) points."""
        points = points.double()
        n = self.target.shape[0]
        basis = _kernel(torch.cdist(points, self.target) ** 2)
        affine = torch.cat((torch.ones(points.shape[0], 1, dtype=torch.float64), points), dim=1)
        return basis @ self.coefficients[:n] + affine @ self.coefficients[n:]


def tps_grid(height: int, width: int, margin: float = GRID_MARGIN, points: int = GRID_POINTS) -> torch.Tensor:
    """The reference's regular control grid: `points` x `points` over [margin, size - margin], (points², 2) as
    (x, y)."""
    xs = torch.linspace(margin, width - margin, points, dtype=torch.float64)
    ys = torch.linspace(margin, height - margin, points, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=1)


def _uniform(generator, low, high) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def random_tps_targets(grid: torch.Tensor, generator: torch.Generator, rotation=ROTATION, scale=SCALE,
                       translation=TRANSLATION, perturbation=PERTURBATION) -> torch.Tensor:
    """The reference's random targets of a control grid: (grid - c) M + noise + c with M = [[sx cos, -sin], [sin,
    sy cos]] (applied on the right), c the grid's half extent moved by a random translation."""
    angle = _uniform(generator, *rotation)
    sx, sy = _uniform(generator, *scale), _uniform(generator, *scale)
    tx, ty = _uniform(generator, *translation), _uniform(generator, *translation)
    matrix = torch.tensor([[sx * math.cos(angle), -math.sin(angle)], [math.sin(angle), sy * math.cos(angle)]],
                          dtype=torch.float64)
    noise = perturbation[0] + (perturbation[1] - perturbation[0]) * torch.rand(grid.shape, generator=generator,
                                                                               dtype=torch.float64)
    centre = torch.stack((grid[:, 0].max() / 2 + tx, grid[:, 1].max() / 2 + ty))
    return (grid - centre) @ matrix + noise + centre


def tps_warp(frames: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Frames (..., C, H, W) warped so that what was at `source[i]` lands at `target[i]` (pixels, (x, y)); bilinear,
    borders replicated. Identical source and target give the frames back."""
    *lead, channels, height, width = frames.shape
    spline = TPSParams(source, target)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    sampled = spline(torch.stack((xs.reshape(-1), ys.reshape(-1)), dim=1))  # where each output pixel reads
    # pixel centres -> grid_sample's [-1, 1] with align_corners=True
    norm = torch.stack((2 * sampled[:, 0] / max(width - 1, 1) - 1, 2 * sampled[:, 1] / max(height - 1, 1) - 1), 1)
    batch = frames.reshape(-1, channels, height, width)
    grid = norm.to(batch.dtype if batch.is_floating_point() else torch.float32).view(1, height, width, 2)
    out = F.grid_sample(batch.float() if not batch.is_floating_point() else batch,
                        grid.expand(batch.shape[0], -1, -1, -1), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.to(frames.dtype).reshape(*lead, channels, height, width) if frames.is_floating_point() else \
        out.reshape(*lead, channels, height, width)
