"""Flow normalisation statistics: the reference's values and their recomputation for another flow source.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py`: input flows are normalised as
(f - mean) / (3 * std) with mean (-0.944, -1.231) and std (13.77, 7.47) for (u, v), measured on FlowNet2 flows of its
training data; the predicted flow is de-normalised the same way. Another flow source (OpenCV, RAFT) or other data has
other statistics: recompute them with `flow_statistics` and store them in the model's config.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["FLOW_MEAN", "FLOW_STD", "REFERENCE_FLOW_STATS", "FlowStats", "denormalize_flow", "flow_statistics",
           "normalize_flow"]

FLOW_MEAN = (-0.944, -1.231)
FLOW_STD = (13.77, 7.47)
# Middlebury marks unknown flow with values of 1e9 and more; they are left out of the statistics.
UNKNOWN_FLOW = 1e9


@dataclass(frozen=True)
class FlowStats:
    """Per-channel (u, v) mean and standard deviation of flows, and how many pixels they were measured on."""
    mean: tuple[float, float] = FLOW_MEAN
    std: tuple[float, float] = FLOW_STD
    count: int = 0

    def __post_init__(self):
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
                raise ValueError(f"FlowStats.{name}={value!r} must be two finite numbers (u, v)")
        if not all(s > 0 for s in self.std):
            raise ValueError(f"FlowStats.std={self.std!r} must be positive (a constant flow field has no spread: "
                             "measure the statistics on more varied flows)")

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "count": self.count}

    @classmethod
    def from_dict(cls, data: dict) -> "FlowStats":
        return cls(tuple(data["mean"]), tuple(data["std"]), int(data.get("count", 0)))


REFERENCE_FLOW_STATS = FlowStats(FLOW_MEAN, FLOW_STD)


def _channel_view(flow: torch.Tensor, stats: FlowStats) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(flow, torch.Tensor) or flow.dim() not in (3, 4) or flow.shape[-3] != 2:
        raise ValueError(f"flow must be a (B, 2, H, W) or (2, H, W) tensor; got "
                         f"{tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__}")
    mean = torch.tensor(stats.mean, dtype=flow.dtype, device=flow.device).view(2, 1, 1)
    std = torch.tensor(stats.std, dtype=flow.dtype, device=flow.device).view(2, 1, 1)
    return mean, std


def normalize_flow(flow: torch.Tensor, stats: FlowStats = REFERENCE_FLOW_STATS) -> torch.Tensor:
    """(flow - mean) / (3 * std) per channel, for a (B, 2, H, W) or (2, H, W) flow."""
    mean, std = _channel_view(flow, stats)
    return (flow - mean) / (3 * std)


def denormalize_flow(flow: torch.Tensor, stats: FlowStats = REFERENCE_FLOW_STATS) -> torch.Tensor:
    """Inverse of `normalize_flow`: flow * 3 * std + mean."""
    mean, std = _channel_view(flow, stats)
    return flow * (3 * std) + mean


def _as_channels(flow, index: int) -> np.ndarray:
    """(2, N) float64 values of one flow: a (2, H, W) / (B, 2, H, W) tensor or a (H, W, 2) array (as read_flo)."""
    if isinstance(flow, torch.Tensor):
        if flow.dim() not in (3, 4) or flow.shape[-3] != 2:
            raise ValueError(f"flow {index} must be a (2, H, W) or (B, 2, H, W) tensor; got shape {tuple(flow.shape)}")
        t = flow.detach().to("cpu", torch.float64)
        return (t if t.dim() == 3 else t.transpose(0, 1)).reshape(2, -1).numpy()
    array = np.asarray(flow, dtype=np.float64)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"flow {index} must be an (H, W, 2) array (as read_flo returns) or a (2, H, W) tensor; got "
                         f"shape {array.shape}")
    return array.reshape(-1, 2).T


def flow_statistics(flows: Iterable) -> FlowStats:
    """Per-channel mean and (population) standard deviation over every pixel of `flows`, an iterable of (2, H, W) or
    (B, 2, H, W) tensors or (H, W, 2) arrays, streamed (float64, Chan's pairwise update). Non-finite values and
    Middlebury's unknown-flow marks (|value| >= 1e9) are skipped."""
    count = np.zeros(2)
    mean = np.zeros(2)
    m2 = np.zeros(2)
    seen = 0
    for index, flow in enumerate(flows):
        seen += 1
        values = _as_channels(flow, index)
        for c in range(2):
            v = values[c][np.isfinite(values[c]) & (np.abs(values[c]) < UNKNOWN_FLOW)]
            if v.size == 0:
                continue
            n_b, mean_b = v.size, v.mean()
            m2_b = np.square(v - mean_b).sum()
            total = count[c] + n_b
            delta = mean_b - mean[c]
            mean[c] += delta * n_b / total
            m2[c] += m2_b + delta * delta * count[c] * n_b / total
            count[c] = total
    if seen == 0:
        raise ValueError("no flows were given; pass an iterable of flow fields")
    if count.min() < 2:
        raise ValueError(f"only {int(count.min())} valid flow value(s) in a channel; statistics need at least 2")
    std = np.sqrt(m2 / count)
    return FlowStats((float(mean[0]), float(mean[1])), (float(std[0]), float(std[1])), int(count.min()))
