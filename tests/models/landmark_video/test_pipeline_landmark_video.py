"""The `landmark-video` pipeline on a real face clip (../shared/data/face-video): landmarks of one frame (equal to
the landmark model's own), the clip interpolated in landmark space (given frames kept, the rest equal to
`interpolate_frames`), predicted frames from a dynamics model folder carrying its landmark model (equal to
`predict_frames`), and the clear errors (prediction without a dynamics model, a landmark model with another K, bad
options, a clip too short)."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, pipeline

from adlr_hf import LandmarkDynamicsConfig, LandmarkDynamicsModel, get_config
from adlr_hf.models.landmark_video.interpolation_landmarks import interpolate_frames
from adlr_hf.models.landmark_video.task_landmark_dynamics import read_clip
from models.video_utils import SHARED_DATA

CLIP = SHARED_DATA / "face-video" / "fomm-driving-frames" / "08"
pytestmark = pytest.mark.skipif(not CLIP.is_dir(), reason=f"real face frames not found at {CLIP} (../shared/data of "
                                                          "the checkout is absent)")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    landmarks = AutoModel.from_config(get_config("landmark-video-tiny")).eval()
    landmarks.save_pretrained(root / "landmarks")
    dynamics = LandmarkDynamicsModel(LandmarkDynamicsConfig(landmark_config=landmarks.config, hidden_size=16,
                                                            past_frames=3))
    dynamics.save_pretrained(root / "dynamics")
    landmarks.save_pretrained(root / "dynamics" / "landmark_model")
    return root, landmarks, dynamics.eval()


def clip_tensor(frames=None):
    """The real clip as the pipeline reads it: centred squares at the tiny model's 64×64, in [-1, 1]."""
    from adlr_hf.data.frames import find_clips

    clip = read_clip(find_clips(CLIP)[0], 64)
    return clip if frames is None else clip[frames]


def as_tensor(images):
    return torch.stack([torch.from_numpy(np.asarray(i)).permute(2, 0, 1).float() for i in images]) / 127.5 - 1


def test_landmarks_of_one_frame_are_the_landmark_models(folders):
    root, landmarks, _ = folders
    lv = pipeline("landmark-video", model=str(root / "landmarks"))
    out = lv(str(CLIP / "005.png"))
    assert len(out) == 1 and len(out[0]["mu"]) == 8
    with torch.no_grad():
        pose = landmarks.encode_pose(clip_tensor([5]))
    assert torch.allclose(torch.tensor(out[0]["mu"]), pose.mu[0], atol=1e-6)
    assert torch.allclose(torch.tensor(out[0]["pixels"]), (pose.mu[0] + 1) / 2 * 64, atol=1e-4)


def test_interpolating_a_real_clip_keeps_the_given_frames_and_decodes_the_rest(folders):
    root, landmarks, _ = folders
    lv = pipeline("landmark-video", model=str(root / "dynamics"))  # its landmark_model/ sub-folder
    given = [str(CLIP / f"{i:03d}.png") for i in (0, 4, 8)]
    images = lv(given, mode="interpolate", gap=3, interpolation="cubic")
    assert len(images) == 9 and images[0].size == (64, 64)
    frames = clip_tensor([0, 4, 8])
    out = as_tensor(images)
    rounded = ((frames + 1) * 127.5).round() / 127.5 - 1
    assert torch.allclose(out[[0, 4, 8]], rounded, atol=1e-6)
    expected = interpolate_frames(landmarks, frames[None], [0, 4, 8], [1, 2, 3, 5, 6, 7], "cubic")[0]
    expected = ((expected + 1) * 127.5).clamp(0, 255).round() / 127.5 - 1
    assert torch.allclose(out[[1, 2, 3, 5, 6, 7]], expected, atol=1e-6)
    warped = as_tensor(lv(given, mode="interpolate", gap=3, synthesis="warp"))
    expected = interpolate_frames(landmarks, frames[None], [0, 4, 8], [1, 2, 3, 5, 6, 7], "linear", "warp")[0]
    expected = ((expected + 1) * 127.5).clamp(0, 255).round() / 127.5 - 1
    assert torch.allclose(warped[[1, 2, 3, 5, 6, 7]], expected, atol=1e-6)
    assert torch.allclose(warped[[0, 4, 8]], rounded, atol=1e-6)


def test_prediction_from_a_frame_folder_uses_its_last_frames(folders):
    root, landmarks, dynamics = folders
    lv = pipeline("landmark-video", model=str(root / "dynamics"))
    images = lv(str(CLIP), mode="predict", num_future_frames=4)
    assert len(images) == 4 and images[0].size == (64, 64)
    expected = dynamics.predict_frames(landmarks, clip_tensor([29, 30, 31])[None], 4)[0]  # past_frames = 3
    expected = ((expected + 1) * 127.5).clamp(0, 255).round() / 127.5 - 1
    diff = (as_tensor(images) - expected).abs()  # the pipeline's inference mode may flip a rounding here and there
    assert diff.max() <= 1 / 127.5 + 1e-6 and (diff > 1e-6).float().mean() < 1e-3, (diff.max(), diff.mean())
    warped = as_tensor(lv(str(CLIP), mode="predict", num_future_frames=4, synthesis="warp"))
    expected = dynamics.predict_frames(landmarks, clip_tensor([29, 30, 31])[None], 4, "warp")[0]
    diff = (warped - (((expected + 1) * 127.5).clamp(0, 255).round() / 127.5 - 1)).abs()
    assert diff.max() <= 1 / 127.5 + 1e-6 and (diff > 1e-6).float().mean() < 1e-3, (diff.max(), diff.mean())


def test_bad_uses_are_clear_errors(folders, tmp_path):
    root, _, _ = folders
    only_landmarks = pipeline("landmark-video", model=str(root / "landmarks"))
    with pytest.raises(ValueError, match="mode='predict' needs a landmark dynamics model"):
        only_landmarks(str(CLIP), mode="predict")
    with pytest.raises(ValueError, match="mode='warp' must be one of"):
        only_landmarks(str(CLIP), mode="warp")
    with pytest.raises(ValueError, match=r"synthesis='flow' must be one of \('decoder', 'warp'\)"):
        only_landmarks(str(CLIP), mode="interpolate", synthesis="flow")
    with pytest.raises(ValueError, match="gap=0 must be an integer >= 1"):
        only_landmarks(str(CLIP), mode="interpolate", gap=0)
    with pytest.raises(ValueError, match="got 1 frame\\(s\\); pass at least 2 consecutive frames"):
        only_landmarks([str(CLIP / "000.png")], mode="interpolate")
    torch.manual_seed(1)
    AutoModel.from_config(get_config("landmark-video-tiny", num_landmarks=5)).save_pretrained(tmp_path / "k5")
    other = pipeline("landmark-video", model=str(root / "dynamics"), landmark_model=str(tmp_path / "k5"))
    with pytest.raises(ValueError, match="K=8 landmarks but the landmark model has K=5"):
        other(str(CLIP), mode="predict")
