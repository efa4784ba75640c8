"""Video interpolation in landmark space (Shih et al., "Video Interpolation and Prediction with Unsupervised
Landmarks", arXiv 1909.02749). The paper's temporal code was never released; the landmark model follows
NVIDIA/UnsupervisedLandmarkLearning, and this file is built from the paper's description: landmarks of the key frames
are interpolated in coordinate space and decoded with the appearance of the nearest key frame.

- Coordinates μ ([..., K, 2] in [-1, 1]): `linear` between the two key frames around each query time, or
  `cubic`, a Catmull-Rom spline through every key frame (cubic Hermite segments whose tangents are the central
  differences (μ[i+1] − μ[i−1]) / (t[i+1] − t[i−1]), so key times need not be evenly spaced; a one-sided difference
  at the first and last key, hence two key frames give the straight line).
- Covariances Σ ([..., K, 2, 2], symmetric positive definite) are interpolated in log-Cholesky coordinates:
  Σ = L Lᵀ, the off-diagonal of L and the log of its diagonal are interpolated with the same weights as μ, then L
  is put back together with a positive (exponentiated) diagonal. Any weights, also the cubic's overshooting ones,
  therefore give a symmetric positive definite Σ (interpolating Σ itself with negative weights could leave the cone),
  and a convex path between two covariances is the geodesic of the log-Cholesky metric (Lin, SIAM J. Matrix Anal.
  Appl. 2019).
- At a key time the key frame's own μ and Σ are returned bit for bit.

Frames at the query times come from the decoder (the paper's: the nearest key frame's appearance decoded at the
interpolated landmarks) or, with `synthesis="warp"`, from the two key frames around the query moved to its
landmarks by their displacement field and blended by time (an addition of this port: the key frames' own pixels
instead of the decoder's reconstruction). The field's gain is calibrated on the two key frames themselves: how far
the landmarks' motion is trusted is decided by how well it explains one key frame from the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("linear", "cubic")
SYNTHESES = ("decoder", "warp")  # how a frame is made from its landmarks: the SPADE decoder, or warped key frames
WARP_GAINS = (0.0, 0.5, 1.0, 1.5, 2.0)  # the displacement field's gains a pair of frames is calibrated among


@dataclass
class InterpolatedLandmarks:
    """Landmarks at the query times: `mu` [N, Q, K, 2], `covariance` [N, Q, K, 2, 2], and `nearest_key` [Q], the
    index of the key frame nearest each query time (ties go to the earlier key)."""

    mu: torch.Tensor
    covariance: torch.Tensor
    nearest_key: torch.Tensor


def check_synthesis(synthesis: str) -> str:
    """`synthesis` itself when it is one of SYNTHESES, else one clear error."""
    if synthesis not in SYNTHESES:
        raise ValueError(f"synthesis={synthesis!r} must be one of {SYNTHESES}")
    return synthesis


def check_times(key_times, query_times, what: str = "query") -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 key and query times; keys strictly increasing, queries within the keys' span."""
    keys = torch.as_tensor(key_times, dtype=torch.float64).flatten()
    queries = torch.as_tensor(query_times, dtype=torch.float64).flatten()
    if keys.numel() < 2:
        raise ValueError(f"interpolation needs at least 2 key times, got {keys.tolist()}")
    if not bool((keys[1:] > keys[:-1]).all()):
        raise ValueError(f"key times {keys.tolist()} must be strictly increasing")
    if queries.numel() and (queries.min() < keys[0] or queries.max() > keys[-1]):
        raise ValueError(f"{what} times {queries.tolist()} must lie within the key times [{keys[0].item()}, "
                         f"{keys[-1].item()}]: interpolation does not extrapolate (use the dynamics model to predict)")
    return keys, queries


def interpolation_weights(key_times, query_times, mode: str = "linear") -> torch.Tensor:
    """[Q, T] weights w such that the interpolated value at query q is Σ_i w[q, i] · value[i] (linear or Catmull-Rom
    cubic over the T key times). Rows sum to 1; a query at a key time gets the one-hot row of that key."""
    if mode not in MODES:
        raise ValueError(f"interpolation mode {mode!r} is not one of {MODES}")
    keys, queries = check_times(key_times, query_times)
    count = keys.numel()
    segment, s = key_segments(keys, queries)
    start, end = keys[segment], keys[segment + 1]
    weights = torch.zeros(queries.numel(), count, dtype=torch.float64)
    rows = torch.arange(queries.numel())
    if mode == "linear":
        weights[rows, segment] += 1 - s
        weights[rows, segment + 1] += s
    else:
        # Cubic Hermite basis on the segment; tangents as derivative weights over the keys (per unit of time).
        h00, h10 = 2 * s ** 3 - 3 * s ** 2 + 1, s ** 3 - 2 * s ** 2 + s
        h01, h11 = -2 * s ** 3 + 3 * s ** 2, s ** 3 - s ** 2
        width = end - start
        tangents = _tangent_weights(keys)  # [T, T]: tangent at key i = Σ_j tangents[i, j] · value[j]
        weights[rows, segment] += h00
        weights[rows, segment + 1] += h01
        weights += (h10 * width)[:, None] * tangents[segment] + (h11 * width)[:, None] * tangents[segment + 1]
    # Exactly the key frame at a key time (the basis gives 1 and 0 there up to rounding of s).
    at_key = queries[:, None] == keys[None, :]
    hit = at_key.any(dim=1)
    weights[hit] = at_key[hit].to(torch.float64)
    return weights


def key_segments(key_times, query_times) -> tuple[torch.Tensor, torch.Tensor]:
    """([Q] index i of the segment [keys[i], keys[i+1]] holding each query (the last segment holds the last key),
    [Q] float64 fraction s of the way through it)."""
    keys, queries = check_times(key_times, query_times)
    segment = (torch.searchsorted(keys, queries, right=True) - 1).clamp(0, keys.numel() - 2)
    start, end = keys[segment], keys[segment + 1]
    return segment, (queries - start) / (end - start)


def _tangent_weights(keys: torch.Tensor) -> torch.Tensor:
    """Catmull-Rom tangents as weights over the key values: central differences inside, one-sided at the ends."""
    count = keys.numel()
    out = torch.zeros(count, count, dtype=torch.float64)
    for i in range(count):
        before, after = max(i - 1, 0), min(i + 1, count - 1)
        span = keys[after] - keys[before]
        out[i, after] += 1 / span
        out[i, before] -= 1 / span
    return out


def nearest_keys(key_times, query_times) -> torch.Tensor:
    """[Q] index of the key time nearest each query time (ties go to the earlier key)."""
    keys, queries = check_times(key_times, query_times)
    return (queries[:, None] - keys[None, :]).abs().argmin(dim=1)  # argmin returns the first of equal minima


def to_log_cholesky(covariance: torch.Tensor) -> torch.Tensor:
    """[..., 2, 2] SPD -> [..., 3] (log L00, L10, log L11) of its Cholesky factor L."""
    factor = torch.linalg.cholesky(covariance)
    return torch.stack([factor[..., 0, 0].log(), factor[..., 1, 0], factor[..., 1, 1].log()], dim=-1)


def from_log_cholesky(coords: torch.Tensor) -> torch.Tensor:
    """[..., 3] log-Cholesky coordinates -> [..., 2, 2] symmetric positive definite L Lᵀ."""
    a, b, c = coords[..., 0].exp(), coords[..., 1], coords[..., 2].exp()
    return torch.stack([torch.stack([a * a, a * b], dim=-1), torch.stack([a * b, b * b + c * c], dim=-1)], dim=-2)


def interpolate_landmarks(mu: torch.Tensor, covariance: torch.Tensor, key_times, query_times,
                          mode: str = "linear") -> InterpolatedLandmarks:
    """Landmarks at `query_times` from those of the key frames: `mu` [N, T, K, 2] and `covariance` [N, T, K, 2, 2]
    at the T `key_times` (strictly increasing, any unit, e.g. frame indices). `mode` "linear" uses the two keys
    around each query, "cubic" a Catmull-Rom spline through all of them (see the module docstring)."""
    if mu.dim() != 4 or mu.shape[-1] != 2:
        raise ValueError(f"mu must be [N, T, K, 2] (key frames on dim 1), got {tuple(mu.shape)}")
    if covariance.shape != (*mu.shape, 2):
        raise ValueError(f"covariance must be [N, T, K, 2, 2] matching mu {tuple(mu.shape)}, got "
                         f"{tuple(covariance.shape)}")
    keys, queries = check_times(key_times, query_times)
    if keys.numel() != mu.shape[1]:
        raise ValueError(f"{keys.numel()} key times for {mu.shape[1]} key frames of landmarks; give one time per key")
    weights = interpolation_weights(keys, queries, mode)
    mixed_mu = torch.einsum("qt,ntkc->nqkc", weights.to(mu.dtype), mu)
    log_chol = to_log_cholesky(covariance.double())
    mixed_cov = from_log_cholesky(torch.einsum("qt,ntkc->nqkc", weights, log_chol)).to(covariance.dtype)
    # Key times: the key's own values, bit for bit (the log/exp round trip is exact only up to rounding).
    at_key = queries[:, None] == keys[None, :]
    for q in torch.nonzero(at_key.any(dim=1)).flatten().tolist():
        key = int(at_key[q].to(torch.int64).argmax())
        mixed_mu[:, q] = mu[:, key]
        mixed_cov[:, q] = covariance[:, key]
    return InterpolatedLandmarks(mixed_mu, mixed_cov, nearest_keys(keys, queries))


@torch.no_grad()
def interpolate_frames(model, key_frames: torch.Tensor, key_times, query_times, mode: str = "linear",
                       synthesis: str = "decoder") -> torch.Tensor:
    """Frames at `query_times` between `key_frames` [N, T, 3, H, W] (in [-1, 1]) at `key_times`: the key frames'
    landmarks (`encode_pose`) are interpolated (`interpolate_landmarks`), and each query frame is made by
    `synthesis`:

    - "decoder" (the paper's): decoded (`decode`) with the appearance (`encode_appearance`) of its nearest key frame;
    - "warp": the two key frames around it, each moved to the query's landmarks by the landmarks' displacement field
      (`model.warp`) scaled by the gain that best explains the two key frames by each other
      (`calibrate_warp_gain`, once per pair), blended (1 − s)·before + s·after at the fraction s of the way between
      them: frame averaging whose two frames first follow their landmarks (no landmark motion, or gain 0, gives
      frame averaging exactly).

    Returns [N, Q, 3, H, W] in [-1, 1]."""
    check_synthesis(synthesis)
    if key_frames.dim() != 5:
        raise ValueError(f"key_frames must be [N, T, 3, H, W], got {tuple(key_frames.shape)}")
    n, t = key_frames.shape[:2]
    pose = model.encode_pose(key_frames.flatten(0, 1))
    mu = pose.mu.view(n, t, *pose.mu.shape[1:])
    covariance = pose.covariance.view(n, t, *pose.covariance.shape[1:])
    landmarks = interpolate_landmarks(mu, covariance, key_times, query_times, mode)
    if synthesis == "warp":
        return _warp_between_keys(model, key_frames, mu, covariance, landmarks,
                                  *key_segments(key_times, query_times))
    out = [None] * landmarks.mu.shape[1]
    for key in landmarks.nearest_key.unique().tolist():
        heatmaps = None if pose.heatmaps is None else pose.heatmaps.view(n, t, *pose.heatmaps.shape[1:])[:, key]
        appearance = model.encode_appearance(key_frames[:, key], mu[:, key], covariance[:, key], heatmaps)
        for q in torch.nonzero(landmarks.nearest_key == key).flatten().tolist():
            out[q] = model.decode(appearance, landmarks.mu[:, q], landmarks.covariance[:, q])
    return torch.stack(out, dim=1)


def _warp_between_keys(model, key_frames, mu, covariance, landmarks: InterpolatedLandmarks, segment,
                       fraction) -> torch.Tensor:
    """[N, Q, 3, H, W]: per query, the keys around it warped to its landmarks with their pair's calibrated gain and
    blended by `fraction`."""
    gains, out = {}, []
    for q, (before, s) in enumerate(zip(segment.tolist(), fraction.tolist())):
        after = before + 1
        if before not in gains:
            gains[before] = calibrate_warp_gain(model, key_frames[:, before], key_frames[:, after], mu[:, before],
                                                covariance[:, before], mu[:, after], covariance[:, after])
        target_mu, target_cov = landmarks.mu[:, q], landmarks.covariance[:, q]
        moved = [warp_with_gain(model, key_frames[:, key], mu[:, key], target_mu, target_cov, gains[before])
                 for key in (before, after)]
        out.append((1 - s) * moved[0] + s * moved[1])
    return torch.stack(out, dim=1).to(key_frames.dtype)


def warp_with_gain(model, frames, mu, target_mu, target_covariance, gain: torch.Tensor) -> torch.Tensor:
    """`model.warp` with the displacement field scaled by `gain` [N] (each landmark's offset mu − target_mu times
    its frame's gain; 0 leaves the frames as they are)."""
    g = gain.to(mu).view(-1, 1, 1)
    return model.warp(frames, target_mu + g * (mu - target_mu), target_mu, target_covariance)


@torch.no_grad()
def calibrate_warp_gain(model, first, second, first_mu, first_covariance, second_mu,
                        second_covariance) -> torch.Tensor:
    """[N] gain of the landmarks' displacement field, one of WARP_GAINS, that best explains two frames [N, 3, H, W]
    of a clip by each other: the g minimising mean |warp_g(first → second's landmarks) − second| + mean
    |warp_g(second → first's landmarks) − first|. Ties go to the smaller gain. Gain 0 (no motion) wins where the
    landmarks' motion does not explain the frames, so a pair is never warped worse than it is averaged (as
    measured on the pair itself); 2 undoes the field's damping under a lone landmark."""
    errors = []
    for g in WARP_GAINS:
        gain = torch.full((len(first),), g)
        there = warp_with_gain(model, first, first_mu, second_mu, second_covariance, gain)
        back = warp_with_gain(model, second, second_mu, first_mu, first_covariance, gain)
        errors.append((there - second).abs().flatten(1).mean(1) + (back - first).abs().flatten(1).mean(1))
    return torch.tensor(WARP_GAINS, dtype=torch.float64)[torch.stack(errors, 1).argmin(1).cpu()]
