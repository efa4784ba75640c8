"""`landmark-autoencoding` through the one training loop on real face frames (../shared/data/face-video): TP=2 under
DeepSpeed and DP=2 under Accelerate, each resumed from a checkpoint and equal bit for bit to the uninterrupted run
(losses, evaluations, weights: the (seed, epoch, sample)-drawn partners, jitter and TPS warps replay), with a boxes
file cropping one clip and both appearance sources (temporal and TPS-warped)."""

import json

import pytest
import torch
from PIL import Image

from dist_utils import run_ranks
from models.video_utils import SHARED_DATA
from training.resume_utils import assert_same_run, run_then_resume

FACE_FRAMES = SHARED_DATA / "face-video" / "fomm-driving-frames"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FACE_FRAMES.is_dir(), reason=f"real face frames not found at {FACE_FRAMES} (../shared/data "
                                                        "of the checkout is absent)"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The first 10 frames of two real face clips at 128x128; clip 04 with a rough box per frame."""
    root = tmp_path_factory.mktemp("faces")
    for clip in ("04", "08"):
        (root / clip).mkdir()
        for path in sorted((FACE_FRAMES / clip).glob("*.png"))[:10]:
            Image.open(path).convert("RGB").resize((128, 128), Image.BILINEAR).save(root / clip / path.name)
    (root / "04" / "boxes.json").write_text(json.dumps([[30, 20, 100, 110]] * 9 + [None]))
    return root


def flags(data, out, steps, **extra):
    argv = ["--model", "landmark-video-tiny", "--data", str(data), "--steps", str(steps), "--micro-batch-size", "2",
            "--eval-fraction", "0.3", "--gap-min", "3", "--gap-max", "5", "--appearance-source", "both",
            "--lr", "1e-3", "--seed", "7", "--out", str(out), "--no-progress"]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def test_deepspeed_tp2_and_accelerate_dp2_resume_exactly(clips, tmp_path):
    from transformers import AutoModel

    import adlr_hf  # noqa: F401 - registers the family with the Auto classes

    ds, acc = tmp_path / "ds_tp2", tmp_path / "acc_dp2"
    # 2 clips x 6 training frames = 12 samples: 6 steps per epoch at TP=2 (DP=1), 3 at DP=2, so both resumed runs
    # continue into epoch 1 (new partners, jitter and warps drawn from the epoch).
    run_ranks(run_then_resume, [(flags(clips, ds, steps=8, engine="deepspeed", tp=2, save_every=3), 6)])
    run_ranks(run_then_resume, [(flags(clips, acc, steps=5, engine="accelerate", tp=1, save_every=2), 4)])
    for run, tp, dp, engine in ((ds, 2, 1, "deepspeed"), (acc, 1, 2, "accelerate")):
        assert_same_run(run, run.with_name(run.name + "-resumed"))
        info = json.loads((run / "run_info.json").read_text())
        assert (info["tp"], info["dp"], info["engine"], info["unit"]) == (tp, dp, engine, "frames")
        assert (info["train_frames"], info["held_out_frames"], info["boxes"]) == (12, 4, True)
        assert info["appearance_source"] == "both" and info["perceptual"] is None
        assert info["eval_psnr"] > 5 and 0 < info["eval_ssim"] <= 1 and info["eval_appearance_frame_psnr"] > 10
        model = AutoModel.from_pretrained(run / "model").eval()
        frames = torch.rand(1, 3, 64, 64) * 2 - 1
        with torch.no_grad():
            assert model.encode_pose(frames).mu.shape == (1, 8, 2)
