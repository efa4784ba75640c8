"""The landmark-dynamics task through the one training loop on real face clips (../shared/data/face-video, first
frames at 64×64): landmark sequences from a frozen tiny landmark model written here; DeepSpeed DP=2 with an exact
resume across an epoch boundary (losses, evaluations, weights) and Accelerate DP=2; the export carries the landmark
model; and the clear errors before any output (no --init-from, a landmark model with another K, clips too short)."""

import json

import pytest
import torch

from dist_utils import run_ranks
from training.resume_utils import assert_same_run, run_then_resume
from training.train_utils import run_all

from models.landmark_video.face_clips import FACES, MISSING, write_face_clips

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not FACES.is_dir(), reason=MISSING)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The first 14 frames of two real face clips at 64×64."""
    return write_face_clips(tmp_path_factory.mktemp("faces") / "clips", frames=14)


def save_landmark_model(folder, **overrides):
    from transformers import AutoModel

    from adlr_hf import get_config

    torch.manual_seed(0)
    AutoModel.from_config(get_config("landmark-video-tiny", **overrides)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def landmark_model(tmp_path_factory):
    return save_landmark_model(tmp_path_factory.mktemp("landmarks") / "model")


def flags(data, landmarks, out, steps=3, **extra):
    argv = ["--model", "landmark-dynamics-tiny", "--task", "landmark-dynamics", "--init-from", str(landmarks),
            "--data", str(data), "--past-frames", "2", "--future-frames", "2", "--steps", str(steps),
            "--micro-batch-size", "2", "--eval-fraction", "0.3", "--lr", "1e-3", "--seed", "7", "--out", str(out),
            "--no-progress"]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def test_deepspeed_dp2_resumes_exactly_and_accelerate_dp2_trains(clips, landmark_model, tmp_path):
    from transformers import AutoModel

    ds, acc = tmp_path / "ds", tmp_path / "acc"
    # 2 clips × 6 training windows over 2 ranks in batches of 2: epoch 1 starts at step 4, after the resume point.
    run_ranks(run_then_resume, [(flags(clips, landmark_model, ds, steps=5, engine="deepspeed", save_every=2), 2)])
    run_ranks(run_all, [flags(clips, landmark_model, acc, steps=3, engine="accelerate")])
    assert_same_run(ds, ds.with_name("ds-resumed"))
    for run, engine in ((ds, "deepspeed"), (acc, "accelerate")):
        info = json.loads((run / "run_info.json").read_text())
        assert (info["dp"], info["engine"], info["task"]) == (2, engine, "landmark-dynamics")
        assert (info["train_sequences"], info["held_out_sequences"]) == (12, 4)
        assert info["eval_landmark_mse"] > 0 and info["eval_copy_last_landmark_mse"] > 0
    model = AutoModel.from_pretrained(ds / "model")
    assert model.config.num_landmarks == 8 and model.config.landmark_config["num_landmarks"] == 8
    assert (model.config.past_frames, model.config.future_frames) == (2, 2)
    carried = AutoModel.from_pretrained(ds / "model" / "landmark_model")
    original = AutoModel.from_pretrained(landmark_model)
    assert all(torch.equal(a, b) for a, b in zip(carried.state_dict().values(), original.state_dict().values()))


def test_bad_inputs_fail_before_any_output(clips, landmark_model, tmp_path):
    from adlr_hf.train import run
    from adlr_hf.training.args import build_parser

    def fails(argv, message):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            run(build_parser().parse_args(argv))
        assert not (tmp_path / "out").exists()

    base = flags(clips, landmark_model, tmp_path / "out")
    without = base[:base.index("--init-from")] + base[base.index("--init-from") + 2:]
    fails(without, "needs --init-from LANDMARK_MODEL")
    fails(flags(clips, tmp_path / "missing", tmp_path / "out"), "not a saved model folder")
    fails(flags(clips, landmark_model, tmp_path / "out", past_frames=10, future_frames=5),
          "no clip under .* has past_frames \\+ future_frames = 15 frames")
    other_k = save_landmark_model(tmp_path / "k5", num_landmarks=5)
    dynamics = tmp_path / "dynamics"
    from adlr_hf import LandmarkDynamicsConfig, LandmarkDynamicsModel

    LandmarkDynamicsModel(LandmarkDynamicsConfig(num_landmarks=8, hidden_size=8)).save_pretrained(dynamics)
    argv = flags(clips, other_k, tmp_path / "out")
    argv[argv.index("landmark-dynamics-tiny")] = str(dynamics)
    fails(argv, "K=8 landmarks but the landmark model has K=5")
