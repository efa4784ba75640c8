"""The landmark evaluations: the regression protocol against scikit-learn and hand-computed BBC scores, the key-frame
plan, frame-averaging and copy-last baselines and the warped frames against scikit-image on the same frames, and
`adlr-hf evaluate --task landmark-interpolation | landmark-prediction` on real face clips
(../shared/data/face-video) with a tiny landmark model, including the one clear error for a clip shorter than the
gap."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from sklearn.linear_model import Ridge

from adlr_hf.models.landmark_video.evaluation_landmark_video import (
    bbc_keypoint_scores,
    evaluate_interpolation,
    evaluate_prediction,
    fit_keypoint_regression,
    interpolation_plan,
    regress_keypoints,
    to_pixels,
)
from adlr_hf.models.landmark_video.interpolation_landmarks import interpolate_frames
from models.landmark_video.landmark_stand_in import StandInLandmarks
from models.video_utils import SHARED_DATA

FACES = SHARED_DATA / "face-video" / "fomm-driving-frames"


def test_regression_without_intercept_matches_sklearn_and_recovers_an_exact_map():
    g = torch.Generator().manual_seed(0)
    landmarks = torch.rand(20, 4, 2, generator=g, dtype=torch.float64) * 2 - 1
    true = torch.randn(8, 6, generator=g, dtype=torch.float64)
    keypoints = (landmarks.flatten(1) @ true).view(20, 3, 2)
    weights = fit_keypoint_regression(landmarks, keypoints)
    assert torch.allclose(weights, true, atol=1e-10)
    noisy = keypoints + 0.05 * torch.randn(keypoints.shape, generator=g, dtype=torch.float64)
    ours = regress_keypoints(fit_keypoint_regression(landmarks, noisy), landmarks)
    reference = Ridge(alpha=0.0, fit_intercept=False).fit(landmarks.flatten(1).numpy(), noisy.flatten(1).numpy())
    assert np.allclose(ours.flatten(1).numpy(), reference.predict(landmarks.flatten(1).numpy()), atol=1e-8)


def test_bbc_scores_halve_the_coordinates_and_normalise_by_the_box():
    target = torch.tensor([[[100.0, 100.0], [50.0, 60.0]]])
    predicted = torch.tensor([[[110.0, 100.0], [50.0, 74.0]]])  # 10 and 14 px away: 5 and 7 once halved
    scores = bbc_keypoint_scores(predicted, target, torch.tensor([200.0]))
    assert scores["keypoint_accuracy_6px"] == 0.5
    assert scores["keypoint_error_box"] == pytest.approx((10 + 14) / 2 / 200)


def test_key_frames_every_gap_plus_one_and_the_frames_between():
    keys, queries = interpolation_plan(20, 3)
    assert keys == [0, 4, 8, 12, 16] and queries == [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15]
    assert interpolation_plan(9, 7) == ([0, 8], [1, 2, 3, 4, 5, 6, 7])


def smooth_clip(frames=12, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(frames, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear") * 2 - 1


def skimage_psnr(images, target):
    images = to_pixels(images).clamp(0, 255).round().numpy()
    return np.mean([peak_signal_noise_ratio(t, p, data_range=255) for p, t in zip(images, to_pixels(target).numpy())])


def test_baselines_match_scikit_image_on_the_same_frames():
    torch.manual_seed(0)
    model = StandInLandmarks(num_landmarks=3, image_size=16).eval()
    clip = smooth_clip()
    metrics = evaluate_interpolation(model, {"a": clip}, gaps=(1, 3))
    t = 0.5
    average = (1 - t) * clip[[0, 2, 4, 6, 8]] + t * clip[[2, 4, 6, 8, 10]]
    assert metrics["per_gap"]["gap1"]["frame_average_psnr"] == pytest.approx(
        skimage_psnr(average, clip[[1, 3, 5, 7, 9]]), abs=1e-4)
    assert metrics["headline_gap"] == 3 and metrics["per_gap"]["gap3"]["num_frames"] == 6
    assert metrics["psnr"] == metrics["per_gap"]["gap3"]["psnr"] and 0 < metrics["ssim"] <= 1
    keys, queries = interpolation_plan(len(clip), 1)
    warped = interpolate_frames(model, clip[keys][None], keys, queries, "linear", "warp")[0]
    assert metrics["per_gap"]["gap1"]["landmark_warp_psnr"] == pytest.approx(skimage_psnr(warped, clip[queries]),
                                                                             abs=1e-4)

    from adlr_hf.models.landmark_video.configuration_landmark_dynamics import LandmarkDynamicsConfig
    from adlr_hf.models.landmark_video.modeling_landmark_dynamics import LandmarkDynamicsModel

    model.config = LandmarkDynamicsConfig(num_landmarks=3)  # the stand-in's K, for the dynamics model's check
    dynamics = LandmarkDynamicsModel(LandmarkDynamicsConfig(num_landmarks=3, hidden_size=8, past_frames=2)).eval()
    metrics = evaluate_prediction(dynamics, model, {"a": clip}, horizon=4)  # windows start at 0, 4 (span 6)
    assert metrics["num_windows"] == 2 and set(metrics["per_step"]) == {"step1", "step2", "step3", "step4"}
    expected = skimage_psnr(clip[[1, 5]], clip[[1 + 3, 5 + 3]])  # copy the last past frame, 3 steps ahead
    assert metrics["per_step"]["step3"]["copy_last_psnr"] == pytest.approx(expected, abs=1e-4)
    windows = torch.stack([clip[0:6], clip[4:10]])
    warped = dynamics.predict_frames(model, windows[:, :2], 4, "warp")[:, 2]
    assert metrics["per_step"]["step3"]["landmark_warp_psnr"] == pytest.approx(skimage_psnr(warped, windows[:, 4]),
                                                                               abs=1e-4)


@pytest.fixture(scope="module")
def real_setup(tmp_path_factory):
    """Two real face clips (the first 12 frames at 64×64), a tiny landmark model, and a dynamics model export
    carrying it."""
    from transformers import AutoModel

    from adlr_hf import LandmarkDynamicsConfig, LandmarkDynamicsModel, get_config

    if not FACES.is_dir():
        pytest.skip(f"real face frames not found at {FACES} (../shared/data of the checkout is absent)")
    root = tmp_path_factory.mktemp("eval")
    for clip in ("04", "10"):
        (root / "clips" / clip).mkdir(parents=True)
        for i in range(12):
            Image.open(FACES / clip / f"{i:03d}.png").convert("RGB").resize((64, 64), Image.BILINEAR).save(
                root / "clips" / clip / f"{i:03d}.png")
    torch.manual_seed(0)
    landmarks = AutoModel.from_config(get_config("landmark-video-tiny"))
    dynamics = LandmarkDynamicsModel(LandmarkDynamicsConfig(landmark_config=landmarks.config, hidden_size=16,
                                                            past_frames=2))
    dynamics.save_pretrained(root / "dynamics")
    landmarks.save_pretrained(root / "dynamics" / "landmark_model")
    return root


def evaluate(argv, out):
    from adlr_hf.cli import main

    assert main(["evaluate", *argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_interpolation_and_prediction_evaluate_on_real_clips(real_setup, tmp_path):
    points = {"04": {str(i): [[20 + i, 30.0], [40.0, 10 + 2 * i]] for i in range(12)},
              "10": {str(i): [[22.0, 31.0 - i], [41.0, 12.0]] for i in range(0, 12, 2)}}
    (tmp_path / "keypoints.json").write_text(json.dumps(points))
    record = evaluate([str(real_setup / "dynamics"), "--task", "landmark-interpolation", "--data",
                       str(real_setup / "clips"), "--gaps", "3", "7", "--keypoints", str(tmp_path / "keypoints.json")],
                      tmp_path / "interp.json")
    metrics = record["metrics"]
    keypoints = metrics["keypoints"]  # 18 annotated frames: the first 9 fit the regression, the other 9 test it
    assert (keypoints["num_fit_frames"], keypoints["num_test_frames"]) == (9, 9)
    assert 0 <= keypoints["keypoint_accuracy_6px"] <= 1 and keypoints["keypoint_error_box"] >= 0
    assert record["settings"]["gaps"] == [3, 7] and metrics["headline_gap"] == 7
    assert metrics["per_gap"]["gap3"]["num_frames"] == 2 * 6 and metrics["per_gap"]["gap7"]["num_frames"] == 2 * 7
    assert 0 < metrics["ssim"] <= 1 and metrics["frame_average_psnr"] > 15  # consecutive face frames are similar
    assert metrics["landmark_warp_psnr"] > 15  # the key frames' own pixels, moved a little
    record = evaluate([str(real_setup / "dynamics"), "--task", "landmark-prediction", "--data",
                       str(real_setup / "clips"), "--horizon", "5"], tmp_path / "pred.json")
    metrics = record["metrics"]
    assert metrics["num_windows"] == 2 * 2 and len(metrics["per_step"]) == 5  # windows start at 0, 5 (span 7)
    assert metrics["copy_last_psnr"] > 15 and metrics["psnr"] > 0 and metrics["landmark_warp_psnr"] > 15


def test_a_clip_shorter_than_the_gap_is_one_clear_error(real_setup, tmp_path, capsys):
    from adlr_hf.cli import main

    out = tmp_path / "never.json"
    assert main(["evaluate", str(real_setup / "dynamics"), "--task", "landmark-interpolation", "--data",
                 str(real_setup / "clips"), "--gaps", "11", "--json", str(out)]) == 2
    assert ("interpolation with gap 11 needs clips of at least 13 frames; shorter: 04 (12 frames), 10 (12 frames)"
            in capsys.readouterr().err)
    assert main(["evaluate", str(real_setup / "dynamics"), "--task", "landmark-prediction", "--data",
                 str(real_setup / "clips"), "--horizon", "11", "--json", str(out)]) == 2
    assert "prediction of 11 frames after 2 needs clips of at least 13 frames" in capsys.readouterr().err
    assert not out.exists()
