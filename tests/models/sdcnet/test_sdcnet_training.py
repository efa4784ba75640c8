"""SDC-Net through the one training loop on real frames (../shared/data/video-frames, downscaled): `adlr-hf train`
in one process, then `adlr-hf evaluate --task next-frame` into the card's model-index; TP=2 under DeepSpeed with an
exact resume (losses, evaluations, weights: the epoch-seeded crops replay), and DP=2 under Accelerate."""

import json

import pytest
import yaml

from dist_utils import run_ranks
from models.video_utils import VIDEO_FRAMES, cli_train, train_flags, write_small_clips
from training.resume_utils import assert_same_run, run_then_resume
from training.train_utils import run_all

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VIDEO_FRAMES.is_dir(), reason=f"real frames not found at {VIDEO_FRAMES} (../shared/data "
                                                          "of the checkout is absent)"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_small_clips(tmp_path_factory.mktemp("frames"))


def flags(data, out, steps: int = 3, **extra) -> list[str]:
    return train_flags("sdcnet-tiny", data, out, steps, crop_size=64, flip=True, **extra)


def test_one_process_train_then_evaluate_into_the_card(clips, tmp_path):
    from transformers import AutoModel, AutoVideoProcessor

    from adlr_hf.cli import main as cli

    run = tmp_path / "run"
    run_ranks(cli_train, flags(clips, run), world_size=1)
    info = json.loads((run / "run_info.json").read_text())
    assert (info["unit"], info["frames"], info["window"], info["crop_size"]) == ("frames", 6, 3, [64, 64])
    assert info["eval_psnr"] > 0 and 0 < info["eval_ssim"] <= 1 and info["eval_copy_last_psnr"] > 0
    assert info["held_out_windows"] == 2 and info["train_windows"] == 2 * 5  # the last 3 of 10 frames held out
    stats = info["input_statistics"]
    model = AutoModel.from_pretrained(run / "model")
    assert model.config.flow_stats_source == "opencv-dis" and model.config.flow_mean == stats["flow_mean"]
    assert type(AutoVideoProcessor.from_pretrained(run / "model")).__name__ == "SDCNetVideoProcessor"
    assert cli(["evaluate", str(run / "model"), "--task", "next-frame", "--data", str(clips), "--update-card",
                "--max-windows-per-clip", "2", "--json", str(tmp_path / "eval.json")]) == 0
    record = json.loads((tmp_path / "eval.json").read_text())
    values = record["metrics"]
    assert values["num_frames"] == 4 and set(values["per_clip"]) == {"adacof-sample-video", "sam2-bedroom"}
    assert values["psnr"] > 5 and values["copy_last_psnr"] > values["psnr"] - 40 and 0 < values["ssim"] <= 1
    card = (run / "model" / "README.md").read_text()
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]
    shown = {m["type"]: m["value"] for m in index["metrics"]}
    assert shown["psnr"] == pytest.approx(values["psnr"]) and "psnr_copy_last_frame" in shown
    assert index["task"]["type"] == "video-to-video"


def test_deepspeed_tp2_resumes_exactly_and_accelerate_dp2_trains(clips, tmp_path):
    ds, acc = tmp_path / "ds_tp2", tmp_path / "acc_dp2"
    # 10 training windows in batches of 2: epoch 1 starts at step 6, so the resumed step 7 draws epoch 1's crops.
    run_ranks(run_then_resume, [(flags(clips, ds, steps=7, engine="deepspeed", tp=2, save_every=3), 6)])
    run_ranks(run_all, [flags(clips, acc, steps=3, engine="accelerate", tp=1)])  # one TP degree per process group
    assert_same_run(ds, ds.with_name("ds_tp2-resumed"))
    for run, tp, dp, engine in ((ds, 2, 1, "deepspeed"), (acc, 1, 2, "accelerate")):
        info = json.loads((run / "run_info.json").read_text())
        assert (info["tp"], info["dp"], info["engine"], info["unit"]) == (tp, dp, engine, "frames")
        assert info["eval_psnr"] > 0
