"""`adlr-hf evaluate --task frame-interpolation`: the reference's evaluation layouts on tiny folders written here
(triplets as input/ + gt/ and as three-frame folders, SlowFlow's first 9 frames, Sintel's windows, a video clip),
the clear errors of a layout whose files are missing, and the scores: per frame equal to the metric modules on the
cropped, 8-bit predictions of the padded inputs, per in-between index, per clip and overall, beside frame
averaging."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf import CyclicInterpForFrameInterpolation, CyclicInterpVideoProcessor, get_config
from adlr_hf.data.interp_layouts import find_interp_samples, read_sample_frames
from adlr_hf.evaluation.frame_interp_eval import evaluate_frame_interpolation_model_dir
from adlr_hf.metrics.ie.ie import interpolation_error
from adlr_hf.metrics.psnr.psnr import psnr
from adlr_hf.metrics.ssim.ssim import ssim


def image(path: Path, seed: int, size=(40, 30)) -> Path:
    """A smooth random RGB image of `size` (W, H)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize(size, Image.BILINEAR).save(path)
    return path


def test_layouts_pick_inputs_targets_and_times(tmp_path):
    for seq, size in (("a", (40, 30)), ("b", (36, 44))):
        image(tmp_path / "split" / "input" / seq / "frame10.png", 1, size)
        image(tmp_path / "split" / "input" / seq / "frame11.png", 2, size)
        image(tmp_path / "split" / "gt" / seq / "frame10i11.png", 3, size)
        for name in ("frame10.png", "frame10i11.png", "frame11.png"):  # natural order: input, truth, input
            image(tmp_path / "folders" / seq / name, 4)
    for i in range(12):
        image(tmp_path / "slowflow" / "clip" / f"{i:05d}.png", i)
    split = find_interp_samples(tmp_path / "split", "triplets")
    assert [s.clip for s in split] == ["a", "b"] and split[0].timesteps == (0.5,)
    assert [Path(f).name for f in split[0].inputs + split[0].targets] == ["frame10.png", "frame11.png",
                                                                         "frame10i11.png"]
    folders = find_interp_samples(tmp_path / "folders", "triplets")
    assert [Path(f).name for f in folders[1].inputs + folders[1].targets] == ["frame10.png", "frame11.png",
                                                                             "frame10i11.png"]
    (slowflow,) = find_interp_samples(tmp_path / "slowflow", "slowflow")  # the first 9 frames: inputs 1 and 9
    assert [Path(f).name for f in slowflow.inputs] == ["00000.png", "00008.png"] and len(slowflow.targets) == 7
    assert slowflow.timesteps == pytest.approx([i / 8 for i in range(1, 8)])
    sintel = find_interp_samples(tmp_path / "slowflow", "sintel", num_interp=4)  # windows of 6 every 5 frames
    assert [[Path(f).name for f in s.inputs] for s in sintel] == [["00000.png", "00005.png"],
                                                                  ["00005.png", "00010.png"]]
    assert read_sample_frames(split[1].inputs).shape == (2, 44, 36, 3)


def test_video_clips_work_as_slowflow_clips(tmp_path):
    import av

    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(9):
            frame = Image.open(image(tmp_path / "src" / f"{i}.png", i, (64, 48)))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (sample,) = find_interp_samples(tmp_path / "clip.mp4", "slowflow")
    assert sample.inputs == ((str(tmp_path / "clip.mp4"), 0), (str(tmp_path / "clip.mp4"), 8))
    assert read_sample_frames(sample.inputs + sample.targets).shape == (9, 48, 64, 3)


def test_missing_files_fail_clearly(tmp_path):
    image(tmp_path / "no_gt" / "input" / "a" / "frame10.png", 1)
    image(tmp_path / "no_gt" / "input" / "a" / "frame11.png", 2)
    with pytest.raises(FileNotFoundError, match="has input/ but no gt/ folder"):
        find_interp_samples(tmp_path / "no_gt", "triplets")
    (tmp_path / "no_gt" / "gt" / "b").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="gt/a.* holds 0 images; it must hold the one ground-truth"):
        find_interp_samples(tmp_path / "no_gt", "triplets")
    image(tmp_path / "three" / "input" / "a" / "frame12.png", 3)
    image(tmp_path / "three" / "input" / "a" / "frame10.png", 1)
    image(tmp_path / "three" / "input" / "a" / "frame11.png", 2)
    image(tmp_path / "three" / "gt" / "a" / "x.png", 4)
    with pytest.raises(ValueError, match="input/a has 3 frames; each input/<sequence>/ holds the two input frames"):
        find_interp_samples(tmp_path / "three", "triplets")
    for i in range(4):
        image(tmp_path / "four" / "seq" / f"{i}.png", i)
    with pytest.raises(ValueError, match="layout triplets: clip 'seq' has 4 frames; each sequence folder holds three"):
        find_interp_samples(tmp_path / "four", "triplets")
    with pytest.raises(ValueError, match="layout slowflow: clip 'seq' has 4 frames; it needs num_interp \\+ 2 = 9"):
        find_interp_samples(tmp_path / "four", "slowflow")
    with pytest.raises(ValueError, match="layout triplets has one frame between its inputs; got num_interp=3"):
        find_interp_samples(tmp_path / "four", "triplets", num_interp=3)
    with pytest.raises(ValueError, match="--layout 'middlebury' is not one of triplets, slowflow, sintel"):
        find_interp_samples(tmp_path / "four", "middlebury")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_interp_samples(tmp_path / "nope", "triplets")
    image(tmp_path / "sizes" / "input" / "a" / "frame10.png", 1, (40, 30))
    image(tmp_path / "sizes" / "input" / "a" / "frame11.png", 2, (40, 30))
    image(tmp_path / "sizes" / "gt" / "a" / "frame10i11.png", 3, (41, 30))
    (sample,) = find_interp_samples(tmp_path / "sizes", "triplets")
    with pytest.raises(ValueError, match="frames of one sample differ in size"):
        read_sample_frames(sample.inputs + sample.targets)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interp_model")
    torch.manual_seed(0)
    model = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny"))
    model.save_pretrained(folder)
    CyclicInterpVideoProcessor.for_config(model.config).save_pretrained(folder)
    return folder


def test_scores_are_the_metric_modules_per_frame_index_clip_and_overall(model_dir, tmp_path):
    for i in range(12):
        image(tmp_path / "set" / "clip1" / f"{i:03d}.png", i, (40, 30))
        image(tmp_path / "set" / "clip2" / f"{i:03d}.png", 20 + i, (36, 44))
    result = evaluate_frame_interpolation_model_dir(model_dir, tmp_path / "set", layout="sintel", num_interp=2,
                                                    progress=False)
    metrics = result["metrics"]
    assert result["settings"]["num_interp"] == 2 and result["settings"]["layout"] == "sintel"
    assert (metrics["num_samples"], metrics["num_frames"], metrics["num_clips"]) == (6, 12, 2)  # windows 0, 3, 6
    # one frame by hand: clip2's second window (frames 3 and 6), its second in-between frame (frame 5, t = 2/3)
    from transformers import AutoModel, AutoVideoProcessor

    model, processor = AutoModel.from_pretrained(model_dir).eval(), AutoVideoProcessor.from_pretrained(model_dir)
    arrays = [np.array(Image.open(tmp_path / "set" / "clip2" / f"{i:03d}.png")) for i in (3, 5, 6)]
    padded = processor([[arrays[0], arrays[2]]], return_tensors="pt")["pixel_values_videos"]
    assert padded.shape[-2:] == (64, 64) and torch.all(padded[..., 44:, :] == 0)  # zero padding to 64
    with torch.no_grad():
        predicted = model(padded, timesteps=[2 / 3]).interpolated_frames[0, :, :, :44, :36]
    predicted = predicted.clamp(0, 255).round()
    truth = torch.from_numpy(arrays[1]).permute(2, 0, 1)[None].float()
    inputs = [torch.from_numpy(a).permute(2, 0, 1)[None].float() for a in (arrays[0], arrays[2])]
    average = (inputs[0] / 3 + 2 * inputs[1] / 3).round()
    record = next(r for r in metrics["frames"] if r["clip"] == "clip2" and r["index"] == 2 and r["sample"] == 4)
    assert record["t"] == pytest.approx(2 / 3)
    assert record["psnr"] == pytest.approx(psnr(predicted, truth).item(), rel=1e-6)
    assert record["ssim"] == pytest.approx(ssim(predicted, truth).item(), rel=1e-6)
    assert record["ie"] == pytest.approx(interpolation_error(predicted, truth, color="mean_l2").item(), rel=1e-6)
    assert record["frame_average_psnr"] == pytest.approx(psnr(average, truth).item(), rel=1e-9)
    # the summaries are the means of the per-frame records
    frames = metrics["frames"]
    for key in ("psnr", "ssim", "ie", "frame_average_psnr"):
        assert metrics[key] == pytest.approx(np.mean([r[key] for r in frames]))
        assert metrics["per_clip"]["clip1"][key] == pytest.approx(np.mean([r[key] for r in frames
                                                                           if r["clip"] == "clip1"]))
        assert metrics["per_index"]["2"][key] == pytest.approx(np.mean([r[key] for r in frames if r["index"] == 2]))
    assert metrics["per_index"]["1"]["t"] == pytest.approx(1 / 3) and metrics["per_clip"]["clip2"]["num_frames"] == 6
    json.dumps(result)  # the record the card and --json take


def test_cli_evaluates_into_the_card_and_refuses_bad_layouts(model_dir, tmp_path, capsys):
    from adlr_hf.cli import main as cli

    for seq in ("x", "y"):
        image(tmp_path / "davis" / "input" / seq / "frame10.png", 1)
        image(tmp_path / "davis" / "input" / seq / "frame11.png", 2)
        image(tmp_path / "davis" / "gt" / seq / "frame10i11.png", 3)
    assert cli(["evaluate", str(model_dir), "--task", "frame-interpolation", "--data", str(tmp_path / "davis"),
                "--json", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["metrics"]["num_frames"] == 2
    assert cli(["evaluate", str(model_dir), "--task", "frame-interpolation", "--data", str(tmp_path / "davis"),
                "--layout", "slowflow"]) == 2
    assert "holds input/ and gt/ folders, the triplets layout (Middlebury / DAVIS); pass --layout triplets" in \
        capsys.readouterr().err
