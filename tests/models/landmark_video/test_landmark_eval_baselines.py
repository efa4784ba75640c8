"""The other video families as baselines of the landmark evaluations: `--interpolation-model` (a tiny random Super
SloMo, its processor padding the 64² frames to 128) and `--prediction-model` (a tiny random SDC-Net reading one more
frame than the dynamics model) on real face clips (../shared/data/face-video, the first 7 frames at 64×64). Their
rows equal the model's own forward on the same frames scored with the shared PSNR / SSIM, the landmark rows do not
change, the rows reach the card's model-index, and a folder of the wrong kind is one clear error before any
output."""

import json

import pytest
import torch

from models.landmark_video.face_clips import FACES, MISSING, untrained_dynamics_folder, write_face_clips

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=MISSING)


def save_video_model(folder, variant, processor_divisor=None, **overrides):
    """A randomly initialised model of `variant` with its family's video processor, through the registry."""
    from transformers import AutoModel

    from adlr_hf import get_config
    from adlr_hf.registry import family_for

    config = get_config(variant, **overrides)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    extra = {} if processor_divisor is None else {"size_divisor": processor_divisor}
    family_for(config).processor(config, **extra).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("landmark-baselines")
    write_face_clips(root / "clips", ("04", "10"), frames=7)
    untrained_dynamics_folder(root / "dynamics", past_frames=2)
    save_video_model(root / "interp", "cyclic-interp-tiny", processor_divisor=128)  # 64² frames padded to 128²
    save_video_model(root / "sdcnet", "sdcnet2d-tiny", sequence_length=3)
    return root


def clip_pixels(folders):
    """Every face clip as the evaluation reads it: (T, 3, 64, 64) in [0, 255]."""
    from adlr_hf.data.frames import find_clips
    from adlr_hf.models.landmark_video.evaluation_landmark_video import to_pixels
    from adlr_hf.models.landmark_video.task_landmark_dynamics import read_clip

    return [to_pixels(read_clip(clip, 64)) for clip in find_clips(str(folders / "clips"))]


def mean_scores(predicted, target):
    """Mean PSNR / SSIM of frames (N, 3, H, W) in [0, 255] with the shared metrics, predictions saved as 8 bits."""
    from adlr_hf.metrics.psnr.psnr import psnr
    from adlr_hf.metrics.ssim.ssim import ssim

    predicted = predicted.clamp(0, 255).round()
    return float(psnr(predicted, target).double().mean()), float(ssim(predicted, target).double().mean())


def evaluate(argv, out):
    from adlr_hf.cli import main

    assert main(["evaluate", *argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_interpolation_model_rows_equal_its_forward_on_the_same_frames(folders, tmp_path):
    from transformers import AutoModel

    argv = [str(folders / "dynamics"), "--task", "landmark-interpolation", "--data", str(folders / "clips"),
            "--gaps", "2"]  # key frames 0, 3, 6: two pairs, two times each
    plain = evaluate(argv, tmp_path / "plain.json")
    record = evaluate([*argv, "--interpolation-model", str(folders / "interp")], tmp_path / "with.json")
    model = AutoModel.from_pretrained(folders / "interp").eval()
    clips = clip_pixels(folders)
    for gap in (2,):
        predicted, target = [], []
        for pixels in clips:
            keys = list(range(0, len(pixels), gap + 1))
            pairs = torch.stack((pixels[keys[:-1]], pixels[keys[1:]]), 1)
            padded = torch.nn.functional.pad(pairs, (0, 64, 0, 64))  # zeros to the processor's 128
            times = [i / (gap + 1) for i in range(1, gap + 1)]
            with torch.no_grad():
                out = model(pixel_values_videos=padded, timesteps=times).interpolated_frames
            predicted.append(out[..., :64, :64].flatten(0, 1))
            target.append(torch.cat([pixels[k + 1:k + gap + 1] for k in keys[:-1]]))
        psnr, ssim = mean_scores(torch.cat(predicted), torch.cat(target))
        row = record["metrics"]["per_gap"][f"gap{gap}"]
        assert row["interpolation_model_psnr"] == pytest.approx(psnr, rel=1e-6)
        assert row["interpolation_model_ssim"] == pytest.approx(ssim, rel=1e-6)
        for key in ("psnr", "ssim", "frame_average_psnr", "frame_average_ssim", "num_frames"):
            assert row[key] == plain["metrics"]["per_gap"][f"gap{gap}"][key]  # the landmark rows do not move
    assert record["metrics"]["interpolation_model_psnr"] == record["metrics"]["per_gap"]["gap2"][
        "interpolation_model_psnr"]
    assert record["settings"]["interpolation_model"]["size_divisor"] == 128
    assert "interpolation_model_psnr" not in plain["metrics"]
    from adlr_hf.hub.model_index import eval_results_for

    names = {result.metric_name for result in eval_results_for(record)}
    assert {"PSNR, interpolation-model baseline", "SSIM, interpolation-model baseline"} <= names


def test_prediction_model_rows_equal_its_step_by_step_forward(folders, tmp_path):
    from transformers import AutoModel

    argv = [str(folders / "dynamics"), "--task", "landmark-prediction", "--data", str(folders / "clips"),
            "--horizon", "2", "--prediction-model", str(folders / "sdcnet")]
    record = evaluate(argv, tmp_path / "with.json")
    # SDC-Net reads 3 frames, the dynamics model 2: windows of 3 context frames + 2 predicted, starting every 2
    # frames (0 and 2 in a 7-frame clip)
    assert record["settings"]["context_frames"] == 3 and record["metrics"]["num_windows"] == 4
    model = AutoModel.from_pretrained(folders / "sdcnet").eval()
    clips = clip_pixels(folders)
    steps, targets, last = [[], []], [[], []], []
    with torch.no_grad():  # the roll-out by hand, the windows of a clip together: each prediction fed back
        for pixels in clips:
            window = torch.stack((pixels[0:3], pixels[2:5]))
            last.append(window[:, -1])
            for step in range(2):
                frame = model(pixel_values_videos=window).predicted_frame.clamp(0, 255)
                steps[step].append(frame)
                targets[step].append(torch.stack((pixels[3 + step], pixels[5 + step])))
                window = torch.cat((window[:, 1:], frame[:, None]), 1)
    metrics = record["metrics"]
    for step in range(2):
        target = torch.cat(targets[step])
        psnr, ssim = mean_scores(torch.cat(steps[step]), target)
        row = metrics["per_step"][f"step{step + 1}"]
        assert row["prediction_model_psnr"] == pytest.approx(psnr, rel=1e-6)
        assert row["prediction_model_ssim"] == pytest.approx(ssim, rel=1e-6)
        copy = mean_scores(torch.cat(last), target)
        assert (row["copy_last_psnr"], row["copy_last_ssim"]) == pytest.approx(copy, rel=1e-6)
    from adlr_hf.hub.model_index import eval_results_for

    names = {result.metric_name for result in eval_results_for(record)}
    assert {"PSNR, prediction-model baseline", "SSIM, prediction-model baseline"} <= names


def test_a_baseline_folder_of_the_wrong_kind_is_one_clear_error_before_any_output(folders, tmp_path, capsys):
    from adlr_hf.cli import main

    out = tmp_path / "never.json"
    clips = str(folders / "clips")
    (tmp_path / "empty").mkdir()
    cases = [
        ("landmark-interpolation", "--interpolation-model", folders / "sdcnet",
         "holds a 'adlr_sdcnet' model, not a frame-interpolation model"),
        ("landmark-interpolation", "--interpolation-model", folders / "dynamics" / "landmark_model",
         "holds a 'adlr_landmark_video' model, not a frame-interpolation model"),
        ("landmark-prediction", "--prediction-model", folders / "interp",
         "holds a 'adlr_cyclic_interp' model, not a next-frame prediction model"),
        ("landmark-prediction", "--prediction-model", tmp_path / "empty", "has no config.json"),
    ]
    for task, option, folder, message in cases:
        extra = ["--horizon", "2"] if task == "landmark-prediction" else ["--gaps", "1"]
        assert main(["evaluate", str(folders / "dynamics"), "--task", task, "--data", clips, *extra, option,
                     str(folder), "--json", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{option} {str(folder)!r}" in err and message in err and "pass a " in err
    assert not out.exists()
    save_video_model(tmp_path / "recon", "sdcnet2d-tiny", reconstruction=True)
    assert main(["evaluate", str(folders / "dynamics"), "--task", "landmark-prediction", "--data", clips,
                 "--horizon", "2", "--prediction-model", str(tmp_path / "recon"), "--json", str(out)]) == 2
    assert "is a reconstruction model" in capsys.readouterr().err and not out.exists()
