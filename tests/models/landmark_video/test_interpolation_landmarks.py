"""Interpolation in landmark space: the key frames' landmarks come back exactly at key times (linear and cubic),
linear and Catmull-Rom coordinates against independent computations (hand midpoints, a quadratic, scipy's cubic
Hermite spline), covariances that stay symmetric positive definite, decoding with the nearest key frame's
appearance, and the errors for bad times."""

import pytest
import torch
from scipy.interpolate import CubicHermiteSpline

from adlr_hf.models.landmark_video.interpolation_landmarks import (
    interpolate_frames,
    interpolate_landmarks,
    interpolation_weights,
    nearest_keys,
)
from models.landmark_video.landmark_stand_in import StandInLandmarks


def random_landmarks(n=2, t=4, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.rand(n, t, k, 2, generator=g) * 2 - 1
    a = torch.randn(n, t, k, 2, 2, generator=g) * 0.3
    covariance = a @ a.transpose(-1, -2) + 0.01 * torch.eye(2)
    return mu, covariance


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_key_times_return_the_key_landmarks_exactly(mode):
    mu, covariance = random_landmarks()
    keys = [0.0, 3.0, 4.0, 8.0]
    out = interpolate_landmarks(mu, covariance, keys, [0.0, 1.5, 3.0, 4.0, 8.0], mode)
    for q, key in ((0, 0), (2, 1), (3, 2), (4, 3)):
        assert torch.equal(out.mu[:, q], mu[:, key]) and torch.equal(out.covariance[:, q], covariance[:, key])
    assert out.nearest_key.tolist() == [0, 0, 1, 2, 3]


def test_linear_between_two_keys_is_the_hand_computed_path():
    mu = torch.tensor([[[[0.0, -1.0]], [[1.0, 1.0]]]])  # N=1, T=2, K=1
    covariance = torch.stack([torch.diag(torch.tensor([0.04, 0.01])),
                              torch.diag(torch.tensor([0.01, 0.09]))])[None, :, None]
    out = interpolate_landmarks(mu, covariance, [0, 4], [1, 2], "linear")
    assert torch.allclose(out.mu[0, :, 0], torch.tensor([[0.25, -0.5], [0.5, 0.0]]))
    # log-Cholesky midpoint of diagonal covariances: the geometric mean of the variances
    assert torch.allclose(out.covariance[0, 1, 0], torch.diag(torch.tensor([0.02, 0.03])), atol=1e-7)
    # a quarter of the way: variances 0.04^(3/4)·0.01^(1/4) and 0.01^(3/4)·0.09^(1/4)
    expected = torch.diag(torch.tensor([0.04 ** 0.75 * 0.01 ** 0.25, 0.01 ** 0.75 * 0.09 ** 0.25]))
    assert torch.allclose(out.covariance[0, 0, 0], expected, atol=1e-7)


def test_cubic_reproduces_a_quadratic_inside_and_a_line_everywhere():
    keys = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    queries = torch.tensor([1.25, 1.5, 1.75], dtype=torch.float64)
    w = interpolation_weights(keys, queries, "cubic")
    assert torch.allclose(w @ keys ** 2, queries ** 2, atol=1e-12)  # central differences are exact for t²
    everywhere = torch.linspace(0, 3, 13, dtype=torch.float64)
    w = interpolation_weights(keys, everywhere, "cubic")
    assert torch.allclose(w @ (2 * keys - 1), 2 * everywhere - 1, atol=1e-12)
    assert torch.allclose(w.sum(1), torch.ones(13, dtype=torch.float64), atol=1e-12)


def test_cubic_on_uneven_keys_matches_scipy_hermite_spline_with_catmull_rom_tangents():
    keys = torch.tensor([0.0, 2.0, 3.0, 7.0], dtype=torch.float64)
    values = torch.tensor([0.3, -0.4, 0.9, 0.1], dtype=torch.float64)
    tangents = [(values[1] - values[0]) / 2, (values[2] - values[0]) / 3, (values[3] - values[1]) / 5,
                (values[3] - values[2]) / 4]
    spline = CubicHermiteSpline(keys.numpy(), values.numpy(), torch.stack(tangents).numpy())
    queries = torch.linspace(0, 7, 29, dtype=torch.float64)
    ours = interpolation_weights(keys, queries, "cubic") @ values
    assert torch.allclose(ours, torch.from_numpy(spline(queries.numpy())), atol=1e-12)


def test_cubic_overshoot_keeps_covariances_symmetric_positive_definite():
    mu, covariance = random_landmarks(n=3, t=5, k=6, seed=1)
    covariance[:, 2] *= 50  # a spike the spline overshoots around
    out = interpolate_landmarks(mu, covariance, [0, 1, 2, 3, 4], torch.linspace(0, 4, 41), "cubic")
    cov = out.covariance
    assert torch.equal(cov, cov.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(cov.double()) > 0).all()


def test_frames_decode_with_the_nearest_key_frames_appearance():
    torch.manual_seed(0)
    model = StandInLandmarks(num_landmarks=3, image_size=16)
    frames = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    frames[:, 1] = frames[:, 1].flip(-1) * 0.5  # a different pose and colours in the second key frame
    times = [0.0, 0.4, 0.5, 0.6, 1.0]
    out = interpolate_frames(model, frames, [0, 1], times, "linear")
    assert out.shape == (2, 5, 3, 16, 16)
    pose = model.encode_pose(frames.flatten(0, 1))
    mu, cov, heat = (x.view(2, 2, *x.shape[1:]) for x in (pose.mu, pose.covariance, pose.heatmaps))
    appearance = [model.encode_appearance(frames[:, i], mu[:, i], cov[:, i], heat[:, i]) for i in range(2)]
    landmarks = interpolate_landmarks(mu, cov, [0, 1], times, "linear")
    for q, key in enumerate([0, 0, 0, 1, 1]):  # t = 0.5 is a tie: the earlier key's appearance
        expected = model.decode(appearance[key], landmarks.mu[:, q], landmarks.covariance[:, q])
        assert torch.equal(out[:, q], expected)
    assert not torch.allclose(out[:, 2], model.decode(appearance[1], landmarks.mu[:, 2], landmarks.covariance[:, 2]))
    # at the key times: the key frame's own landmarks rendered with its own appearance
    assert torch.equal(out[:, 0], model.decode(appearance[0], mu[:, 0], cov[:, 0]))


def test_nearest_keys_on_uneven_keys():
    assert nearest_keys([0, 2, 10], [0, 1, 1.5, 5.9, 6, 6.1, 10]).tolist() == [0, 0, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("keys, queries, message", [
    ([0, 1], [1.5], "within the key times"),
    ([0, 2, 1], [0.5], "strictly increasing"),
    ([0], [0], "at least 2 key times"),
])
def test_bad_times_raise_one_clear_error(keys, queries, message):
    with pytest.raises(ValueError, match=message):
        interpolation_weights(keys, queries)


def test_bad_mode_and_shapes_raise():
    mu, covariance = random_landmarks(t=2)
    with pytest.raises(ValueError, match="not one of"):
        interpolate_landmarks(mu, covariance, [0, 1], [0.5], "quadratic")
    with pytest.raises(ValueError, match="one time per key"):
        interpolate_landmarks(mu, covariance, [0, 1, 2], [0.5])
    with pytest.raises(ValueError, match="covariance must be"):
        interpolate_landmarks(mu, covariance[..., 0], [0, 1], [0.5])
