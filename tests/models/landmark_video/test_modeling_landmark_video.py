"""The landmark model: soft-argmax, covariance, Cauchy rendering, appearance pooling / projection, the three stages
and save / load."""

import pytest
import torch
from transformers import AutoModel

import adlr_hf  # noqa: F401 - registers the family
from adlr_hf.models.landmark_video import LandmarkVideoConfig, LandmarkVideoModel
from adlr_hf.models.landmark_video.landmark_geometry import (
    coordinate_grid,
    estimate_landmarks,
    pool_appearance,
    project_appearance,
    render_landmarks,
)
from adlr_hf.registry import get_config


def tiny(**overrides):
    config = get_config("landmark-video-tiny")
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def test_soft_argmax_of_a_one_hot_heatmap_is_its_pixel_coordinate():
    h, w = 8, 12
    logits = torch.full((1, 2, h, w), -1e4, dtype=torch.float64)
    logits[0, 0, 3, 5] = 0.0  # a one-hot softmax
    logits[0, 1, 7, 0] = 0.0
    mu, covariance, heatmaps = estimate_landmarks(logits)
    # pixel (i, j) sits at (-1 + 2j/W, -1 + 2i/H)
    torch.testing.assert_close(mu[0, 0], torch.tensor([-1 + 2 * 5 / 12, -1 + 2 * 3 / 8], dtype=torch.float64))
    torch.testing.assert_close(mu[0, 1], torch.tensor([-1.0, -1 + 2 * 7 / 8], dtype=torch.float64))
    torch.testing.assert_close(covariance, torch.zeros(1, 2, 2, 2, dtype=torch.float64), atol=1e-12, rtol=0)
    assert heatmaps[0, 0, 3, 5] == 1.0 and heatmaps.sum() == 2.0


def test_covariance_of_a_two_pixel_heatmap_is_the_hand_computed_one():
    logits = torch.full((1, 1, 4, 4), -1e4, dtype=torch.float64)
    logits[0, 0, 0, 0] = logits[0, 0, 2, 2] = 0.0  # half the mass at (-1, -1), half at (0, 0)
    mu, covariance, _ = estimate_landmarks(logits)
    torch.testing.assert_close(mu[0, 0], torch.tensor([-0.5, -0.5], dtype=torch.float64))
    # E[x xᵀ] - mu muᵀ = 0.5·[[1, 1], [1, 1]] - 0.25·[[1, 1], [1, 1]]
    torch.testing.assert_close(covariance[0, 0], torch.full((2, 2), 0.25, dtype=torch.float64))
    fixed = estimate_landmarks(logits, fixed_covariance=0.05)[1]
    torch.testing.assert_close(fixed[0, 0], 0.05 * torch.eye(2, dtype=torch.float64))


def test_rendering_peaks_at_mu_with_the_cauchy_profile():
    grid = coordinate_grid(16, 16, torch.float64)
    mu = grid[5 * 16 + 9].view(1, 1, 2)  # exactly on pixel (5, 9)
    covariance = torch.tensor([[[[0.04, 0.01], [0.01, 0.02]]]], dtype=torch.float64)
    maps = render_landmarks(mu, covariance, 16, 16, epsilon=0.0)
    assert maps.shape == (1, 1, 16, 16)
    assert maps[0, 0, 5, 9] == 1.0 and maps.argmax() == 5 * 16 + 9
    # pixel (7, 12): d = (2·3/16, 2·2/16); Σ⁻¹ = [[0.02, -0.01], [-0.01, 0.04]] / (0.04·0.02 - 0.01²)
    dx, dy = 2 * 3 / 16, 2 * 2 / 16
    det = 0.04 * 0.02 - 0.01 ** 2
    quad = (0.02 * dx * dx - 2 * 0.01 * dx * dy + 0.04 * dy * dy) / det
    torch.testing.assert_close(maps[0, 0, 7, 12], torch.tensor(1 / (1 + quad), dtype=torch.float64))


def test_appearance_pooling_and_projection_follow_the_reference_normalisation():
    torch.manual_seed(0)
    features = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    heatmaps = torch.rand(2, 6, 4, 5, dtype=torch.float64)
    vectors = pool_appearance(features, heatmaps)
    expected = (features.unsqueeze(1) * heatmaps.unsqueeze(2)).mean(dim=(3, 4))  # the reference's mean over H, W
    torch.testing.assert_close(vectors, expected)
    maps = torch.rand(2, 6, 8, 8, dtype=torch.float64)
    projected = project_appearance(vectors, maps)
    n, c, i, j = 1, 2, 3, 4
    by_hand = sum(vectors[n, k, c] * maps[n, k, i, j] for k in range(6)) / (1 + maps[n, :, i, j].sum())
    torch.testing.assert_close(projected[n, c, i, j], by_hand)
    # a single part with a map of 1 everywhere gives half its vector (1 / (1 + 1))
    one = project_appearance(torch.tensor([[[2.0, 4.0]]]), torch.ones(1, 1, 3, 3))
    torch.testing.assert_close(one, torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 3, 3))


def test_stages_shapes_and_forward_agree():
    torch.manual_seed(0)
    model = LandmarkVideoModel(tiny()).eval()
    k = model.config.num_landmarks
    pose, look = torch.rand(2, 3, 64, 80) * 2 - 1, torch.rand(2, 3, 64, 80) * 2 - 1
    with torch.no_grad():
        landmarks = model.encode_pose(pose)
        assert landmarks.mu.shape == (2, k, 2) and landmarks.covariance.shape == (2, k, 2, 2)
        assert landmarks.heatmaps.shape == (2, k, 32, 40)
        assert landmarks.mu.abs().max() <= 1
        torch.testing.assert_close(landmarks.heatmaps.sum(dim=(2, 3)), torch.ones(2, k))
        appearance = model.encode_appearance(look)
        assert appearance.vectors.shape == (2, k, model.config.appearance_channels)
        frames = model.decode(appearance, landmarks.mu, landmarks.covariance)
        assert frames.shape == (2, 3, 64, 80)
        out = model(pose_frames=pose, appearance_frames=look, labels=pose)
        torch.testing.assert_close(out.reconstruction, frames)
        stacked = model(pixel_values_videos=torch.stack((pose, look), dim=1))
        torch.testing.assert_close(stacked.reconstruction, frames)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)


def test_foreground_background_masks_blend_the_decoded_frame():
    torch.manual_seed(0)
    model = LandmarkVideoModel(tiny(use_fg_bg_mask=True)).eval()
    frames = torch.rand(1, 2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        out = model(pixel_values_videos=frames)
    mask = out.foreground_mask
    assert mask.shape == (1, 1, 64, 64) and 0 < mask.min() and mask.max() < 1
    low = LandmarkVideoModel(tiny(use_fg_bg_mask=True, low_res_mask=True)).eval()
    with torch.no_grad():
        assert low(pixel_values_videos=frames).foreground_mask.shape == (1, 1, 64, 64)


def test_training_forward_updates_spectral_norm_and_eval_does_not():
    torch.manual_seed(0)
    model = LandmarkVideoModel(tiny())
    conv = model.decoder.head_0.conv_0
    before = conv.weight_u.clone()
    frames = torch.rand(1, 2, 3, 64, 64) * 2 - 1
    model.eval()
    with torch.no_grad():
        model(pixel_values_videos=frames)
    assert torch.equal(conv.weight_u, before)
    model.train()
    model(pixel_values_videos=frames)
    assert not torch.equal(conv.weight_u, before)
    # after many power iterations the normalised weight's largest singular value is 1
    for _ in range(200):
        conv.normalised_weight()
    normalised = conv.normalised_weight().detach().reshape(conv.weight.shape[0], -1)
    torch.testing.assert_close(torch.linalg.matrix_norm(normalised, ord=2), torch.tensor(1.0), atol=1e-4, rtol=0)


def test_save_and_load_by_auto_class_give_equal_outputs(tmp_path):
    torch.manual_seed(0)
    model = LandmarkVideoModel(tiny()).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is LandmarkVideoModel
    frames = torch.rand(2, 2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values_videos=frames).reconstruction,
                                   model(pixel_values_videos=frames).reconstruction, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 3, 72, 64), (1, 3, 48, 48), (1, 1, 64, 64)])
def test_bad_frame_shapes_get_one_clear_error(shape):
    model = LandmarkVideoModel(tiny())
    with pytest.raises(ValueError, match="pixel_values"):
        model.encode_pose(torch.zeros(shape))


def test_decode_refuses_landmarks_of_another_k():
    model = LandmarkVideoModel(tiny()).eval()
    frames = torch.zeros(1, 3, 64, 64)
    appearance = model.encode_appearance(frames)
    with pytest.raises(ValueError, match="num_landmarks=8"):
        model.decode(appearance, torch.zeros(1, 5, 2), torch.eye(2).expand(1, 5, 2, 2))


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="image_size"):
        LandmarkVideoConfig(image_size=100)
    with pytest.raises(ValueError, match="pose_decoder_channels"):
        LandmarkVideoConfig(pose_decoder_channels=(8, 8))
