"""Frames made by warping instead of decoding (`synthesis="warp"`): the landmarks' displacement field against a
hand-computed one on ramp frames (where bilinear sampling is exact), identity when the landmarks do not move, the
gain calibrated on a pair of frames, frame averaging when the key frames' landmarks agree, copying the last frame
when a roll-out stays put, and the clear errors."""

import pytest
import torch

from adlr_hf import LandmarkDynamicsConfig, LandmarkDynamicsModel, get_config
from adlr_hf.models.landmark_video import LandmarkVideoModel
from adlr_hf.models.landmark_video.interpolation_landmarks import (
    calibrate_warp_gain,
    interpolate_frames,
    interpolate_landmarks,
    warp_with_gain,
)
from adlr_hf.models.landmark_video.landmark_geometry import landmark_displacement, render_landmarks

SIZE, K = 64, 8  # landmark-video-tiny


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LandmarkVideoModel(get_config("landmark-video-tiny")).double().eval()


def random_landmarks(n=1, seed=0, spread=0.5):
    g = torch.Generator().manual_seed(seed)
    mu = (torch.rand(n, K, 2, generator=g, dtype=torch.float64) * 2 - 1) * spread
    scale = 0.005 + 0.02 * torch.rand(n, K, 1, 1, generator=g, dtype=torch.float64)
    return mu, scale * torch.eye(2, dtype=torch.float64)


def ramp_frames(n=1):
    """Channel 0 = the pixel's x in [-1, 1] (pixel j at -1 + 2j/W), channel 1 = its y, channel 2 = their sum."""
    coords = -1 + 2 * torch.arange(SIZE, dtype=torch.float64) / SIZE
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([x, y, x + y]).expand(n, 3, SIZE, SIZE).clone()


def test_displacement_is_the_offsets_painted_with_the_projection_normalisation():
    mu = torch.tensor([[[0.0, 0.0], [0.5, -0.25]]], dtype=torch.float64)
    cov = torch.tensor([[[[0.02, 0.0], [0.0, 0.02]], [[0.05, 0.01], [0.01, 0.03]]]], dtype=torch.float64)
    offsets = torch.tensor([[[0.1, -0.2], [0.3, 0.05]]], dtype=torch.float64)
    field = landmark_displacement(offsets, render_landmarks(mu, cov, 8, 8))
    assert field.shape == (1, 8, 8, 2)
    i, j = 3, 5  # the pixel at (x, y) = (-1 + 10/8, -1 + 6/8)
    point = torch.tensor([-1 + 2 * j / 8, -1 + 2 * i / 8], dtype=torch.float64)
    r = [1 / (1 + (point - m) @ torch.linalg.inv(c + 1e-6 * torch.eye(2, dtype=torch.float64)) @ (point - m))
         for m, c in zip(mu[0], cov[0])]
    expected = (r[0] * offsets[0, 0] + r[1] * offsets[0, 1]) / (1 + r[0] + r[1])
    torch.testing.assert_close(field[0, i, j], expected, rtol=1e-12, atol=1e-12)
    # alone, a landmark moves the pixel under it (r = 1) by half its offset: 1 / (1 + 1)
    alone = landmark_displacement(offsets[:, :1], render_landmarks(mu[:, :1], cov[:, :1], 8, 8))
    torch.testing.assert_close(alone[0, 4, 4], offsets[0, 0] / 2, rtol=1e-12, atol=1e-12)


def test_warp_reads_each_pixel_at_its_displacement_on_ramp_frames(model):
    mu, _ = random_landmarks(seed=1)
    target_mu, target_cov = random_landmarks(seed=2)
    target_mu = mu + 0.06 * (target_mu / 0.5)  # offsets up to 0.06 (two pixels)
    frames = ramp_frames()
    out = model.warp(frames, mu, target_mu, target_cov)
    field = landmark_displacement(mu - target_mu, render_landmarks(target_mu, target_cov, SIZE, SIZE))[0]
    inner = slice(3, SIZE - 3)  # positions stay inside the frame: bilinear sampling of a ramp is exact
    torch.testing.assert_close(out[0, 0, inner, inner], frames[0, 0, inner, inner] + field[inner, inner, 0],
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(out[0, 1, inner, inner], frames[0, 1, inner, inner] + field[inner, inner, 1],
                               rtol=0, atol=1e-12)
    assert field.abs().max() > 0.01  # a real motion was checked


def test_warp_to_the_same_landmarks_returns_the_frames(model):
    frames = torch.rand(2, 3, SIZE, SIZE, dtype=torch.float64) * 2 - 1
    mu, cov = random_landmarks(n=2, seed=3)
    torch.testing.assert_close(model.warp(frames, mu, mu, cov), frames, rtol=0, atol=1e-12)


def test_warp_refuses_landmarks_of_another_shape(model):
    frames = torch.zeros(1, 3, SIZE, SIZE, dtype=torch.float64)
    mu, cov = random_landmarks()
    with pytest.raises(ValueError, match=r"warp takes mu and target_mu \(N, 8, 2\)"):
        model.warp(frames, mu[:, :5], mu[:, :5], cov[:, :5])
    with pytest.raises(ValueError, match="must be multiples of 16"):
        model.warp(torch.zeros(1, 3, 40, 40), mu, mu, cov)


def key_clip(seed=4):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 3, 8, 8, generator=g, dtype=torch.float64)
    return torch.nn.functional.interpolate(coarse[0], size=(SIZE, SIZE), mode="bilinear")[None] * 2 - 1


def test_warp_synthesis_blends_both_key_frames_moved_to_the_interpolated_landmarks(model):
    frames = key_clip()  # [1, 3 keys, 3, H, W]
    keys, times = [0, 4, 8], [1, 2, 3, 6]
    out = interpolate_frames(model, frames, keys, times, "linear", "warp")
    assert out.shape == (1, 4, 3, SIZE, SIZE)
    pose = model.encode_pose(frames[0])
    mu, cov = pose.mu[:, None], pose.covariance[:, None]  # [keys, 1, ...]: key k's landmarks as a batch of one
    lm = interpolate_landmarks(pose.mu[None], pose.covariance[None], keys, times, "linear")
    gains = [calibrate_warp_gain(model, frames[:, k], frames[:, k + 1], mu[k], cov[k], mu[k + 1], cov[k + 1])
             for k in (0, 1)]
    for q, (before, s) in enumerate([(0, 0.25), (0, 0.5), (0, 0.75), (1, 0.5)]):
        moved = [warp_with_gain(model, frames[:, k], mu[k], lm.mu[:, q], lm.covariance[:, q], gains[before])
                 for k in (before, before + 1)]
        torch.testing.assert_close(out[:, q], (1 - s) * moved[0] + s * moved[1], rtol=0, atol=1e-12)
    decoded = interpolate_frames(model, frames, keys, times, "linear")
    assert not torch.allclose(out, decoded, atol=1e-3)


def test_key_frames_with_the_same_landmarks_give_frame_averaging(model, monkeypatch):
    frames = key_clip(seed=5)
    pose = model.encode_pose(frames[0, :1])
    still = type(pose)(mu=pose.mu.expand(3, K, 2), covariance=pose.covariance.expand(3, K, 2, 2),
                       heatmaps=pose.heatmaps.expand(3, *pose.heatmaps.shape[1:]), features=None)
    monkeypatch.setattr(model, "encode_pose", lambda pixel_values: still)
    out = interpolate_frames(model, frames, [0, 4, 8], [1, 3, 6], "cubic", "warp")
    for q, (before, s) in enumerate([(0, 0.25), (0, 0.75), (1, 0.5)]):
        torch.testing.assert_close(out[0, q], (1 - s) * frames[0, before] + s * frames[0, before + 1],
                                   rtol=0, atol=1e-12)


def test_a_roll_out_that_stays_put_copies_the_last_frame_and_one_that_moves_warps_it(model):
    torch.manual_seed(0)
    dynamics = LandmarkDynamicsModel(LandmarkDynamicsConfig(landmark_config=model.config, hidden_size=16,
                                                            past_frames=2)).double().eval()
    frames = key_clip(seed=6)[:, :2]  # two past frames
    out = dynamics.predict_frames(model, frames, steps=3, synthesis="warp")
    pose = model.encode_pose(frames[0])
    rolled = dynamics(pose.mu[None], pose.covariance[None], future_steps=3)
    gain = calibrate_warp_gain(model, frames[:, 0], frames[:, 1], pose.mu[:1], pose.covariance[:1], pose.mu[1:],
                               pose.covariance[1:])
    for s in range(3):
        expected = warp_with_gain(model, frames[:, -1], pose.mu[-1:], rolled.predicted_landmarks[:, s],
                                  rolled.predicted_covariances[:, s], gain)
        torch.testing.assert_close(out[:, s], expected, rtol=0, atol=1e-9)
    with torch.no_grad():  # the LSTM predicts a residual: a zero head predicts no motion
        for parameter in dynamics.parameters():
            parameter.zero_()
    still = dynamics.predict_frames(model, frames, steps=3, synthesis="warp")
    torch.testing.assert_close(still, frames[:, -1:].expand(1, 3, 3, SIZE, SIZE), rtol=0, atol=1e-12)


def test_the_gain_is_the_one_that_explains_the_two_frames_by_each_other(model):
    frames = key_clip(seed=7)[0, :1]
    mu, _ = random_landmarks(seed=8)
    target_mu, target_cov = random_landmarks(seed=9)
    target_mu = mu + 0.05 * (target_mu / 0.5)
    _, cov = random_landmarks(seed=10)
    gains = torch.tensor([1.5], dtype=torch.float64)
    moved = warp_with_gain(model, frames, mu, target_mu, target_cov, gains)  # the second frame: warped by 1.5
    assert calibrate_warp_gain(model, frames, moved, mu, cov, target_mu, target_cov).tolist() == [1.5]
    # the same pixels under moving landmarks: the motion explains nothing, gain 0 (frame averaging)
    assert calibrate_warp_gain(model, frames, frames, mu, cov, target_mu, target_cov).tolist() == [0.0]
    # a batch is calibrated per sample
    both = calibrate_warp_gain(model, frames.expand(2, -1, -1, -1), torch.cat([moved, frames]), mu.expand(2, -1, -1),
                               cov.expand(2, -1, -1, -1), target_mu.expand(2, -1, -1), target_cov.expand(2, -1, -1, -1))
    assert both.tolist() == [1.5, 0.0]
    torch.testing.assert_close(warp_with_gain(model, frames, mu, target_mu, target_cov, torch.zeros(1)), frames,
                               rtol=0, atol=1e-12)


def test_an_unknown_synthesis_is_one_clear_error(model):
    frames = key_clip()
    with pytest.raises(ValueError, match=r"synthesis='flow' must be one of \('decoder', 'warp'\)"):
        interpolate_frames(model, frames, [0, 4, 8], [1], "linear", "flow")
    dynamics = LandmarkDynamicsModel(LandmarkDynamicsConfig(landmark_config=model.config, hidden_size=16))
    with pytest.raises(ValueError, match=r"synthesis='flow' must be one of"):
        dynamics.double().predict_frames(model, frames, steps=1, synthesis="flow")
