"""The `video-interpolation` task's pieces: the reference's sample offsets (supervised windows, cycle triplets), the
subsampled windows and their held-out split, the target index and augmentation drawn from (seed, epoch, window) and
replayed by the epoch the loop sets (a reversed window has t -> 1 - t), the collators, the training-time metric
against the metric modules, which models it fits, the card rows, and the clear errors of its options (a teacher of
another architecture, regimes without or with a teacher, VGG weights that are missing or not VGG16)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf import get_config
from adlr_hf.data.frames import find_clips
from adlr_hf.data.interp_windows import InterpWindowTransform, interp_collate, load_interp_windows, sample_offsets
from adlr_hf.metrics.psnr.psnr import psnr
from adlr_hf.metrics.ssim.ssim import ssim
from adlr_hf.tasks import get_task
from adlr_hf.tasks.video_data import EpochFrameWindows, held_out_split
from adlr_hf.tasks.video_interpolation import InterpolationMetric


def write_clip(folder: Path, frames: int, height=40, width=48, seed=0) -> Path:
    """Frames whose pixel (0, 0) holds the frame number, so a decoded window tells which frames it read."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(frames):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        pixels[0, 0] = i
        Image.fromarray(pixels).save(folder / f"f{i}.png")
    return folder


def args_for(paths, **overrides):
    values = dict(data=[str(d) for d in paths], model="cyclic-interp-tiny", regime="cycle", teacher=None,
                  teacher_weight=None, num_interp=1, sample_rate=1, vgg_weights=None, crop_size="32", frame_stride=1,
                  reverse=True, flip=False, eval_fraction=0.25, seed=3)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_sample_offsets_follow_the_reference():
    assert sample_offsets(7, 1, cycle=False) == list(range(9))  # VideoInterp: 9 frames, inputs 0 and 8
    assert sample_offsets(1, 2, cycle=False) == [0, 2, 4]
    assert sample_offsets(7, 1, cycle=True) == [0, 8, 16]  # CycleVideoInterp: offset max(1, 1) + 1·7
    assert sample_offsets(1, 0, cycle=True) == [0, 1, 2]  # the README's CC runs: consecutive frames
    with pytest.raises(ValueError, match="sample_rate=0 must be an integer >= 1 for supervised"):
        sample_offsets(1, 0, cycle=False)


def test_windows_keep_the_offsets_and_the_held_out_frames_stay_out(tmp_path):
    write_clip(tmp_path / "a", 20)
    windows = load_interp_windows(tmp_path, sample_offsets(1, 2, cycle=True), stride=2)  # triplets s, s+4, s+8
    rows = windows.to_dict()
    assert rows["frame_index"][:2] == [[0, 4, 8], [2, 6, 10]] and len(rows["files"][0]) == 3
    assert rows["files"][1][1].endswith("f6.png") and len(rows["clip"]) == 6  # starts 0, 2, …, 10
    train, held = held_out_split(windows, find_clips(tmp_path), 0.25, 9)  # the last max(9, 5) frames held out
    assert [rows["frame_index"][r][0] for r in train] == [0, 2] and held == []  # frames 11-19: no window fits

    windows = load_interp_windows(tmp_path, sample_offsets(1, 0, cycle=True))  # consecutive triplets
    train, held = held_out_split(windows, find_clips(tmp_path), 0.25, 3)  # frames 15-19 held out
    frames_of = lambda rows_: {f for r in rows_ for f in windows[r]["frame_index"]}  # noqa: E731
    assert frames_of(held) == set(range(15, 20)) and not frames_of(train) & frames_of(held)


def test_video_files_give_the_same_samples_as_their_frames(tmp_path):
    import av

    from adlr_hf.data.frames import read_video_frames

    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(9):
            image = Image.fromarray(np.full((48, 64, 3), 20 * i, dtype=np.uint8))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    windows = load_interp_windows(tmp_path / "clip.mp4", sample_offsets(3, 1, cycle=False), stride=4)
    assert windows["frame_index"] == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]] and windows["files"] == [[], []]
    data = EpochFrameWindows(windows, InterpWindowTransform(3, False, None, random=False))
    example = data[1]  # frames 4, 6, 8 (the middle index of 3)
    expected = torch.from_numpy(read_video_frames(tmp_path / "clip.mp4", [4, 6, 8])).permute(0, 3, 1, 2)
    assert example["frame_index"] == [4, 6, 8] and torch.equal(example["frames"], expected)


def test_targets_and_augmentation_replay_by_epoch_and_reversal_flips_t(tmp_path):
    write_clip(tmp_path / "a", 12)
    windows = load_interp_windows(tmp_path, sample_offsets(3, 1, cycle=False))  # 5 frames, t in 1/4, 2/4, 3/4
    data = EpochFrameWindows(windows, InterpWindowTransform(3, False, 32, reverse=True, flip=True, seed=5))
    first = [data[i] for i in range(len(data))]
    for i, example in enumerate(first):
        assert torch.equal(example["frames"], data[i]["frames"]) and example["timestep"] == data[i]["timestep"]
        index = example["frame_index"]  # (first, target, last) as read: reversed windows run backwards
        backwards, k = index[0] > index[-1], index[1] - min(index)
        assert max(index) - min(index) == 4 and 1 <= k <= 3
        assert example["timestep"] == pytest.approx((4 - k) / 4 if backwards else k / 4)
        assert example["frames"].shape == (3, 3, 32, 32)
    assert {round(e["timestep"], 2) for e in first} == {0.25, 0.5, 0.75}
    assert any(e["frame_index"][0] > e["frame_index"][-1] for e in first)  # some windows reversed
    data.set_epoch(1)
    assert any(e["timestep"] != data[i]["timestep"] or not torch.equal(e["frames"], data[i]["frames"])
               for i, e in enumerate(first))
    data.set_epoch(0)
    assert all(torch.equal(e["frames"], data[i]["frames"]) for i, e in enumerate(first))  # a resume replays epoch 0
    # evaluation samples: the middle index, centre crop, no reversal
    held = EpochFrameWindows(windows, InterpWindowTransform(3, False, 32, random=False))
    assert all(held[i]["timestep"] == 0.5 and held[i]["frame_index"] == [i, i + 2, i + 4] for i in range(3))


def test_collators_give_pairs_or_triplets_with_the_middle_frame_as_labels(tmp_path):
    write_clip(tmp_path / "a", 6)
    windows = load_interp_windows(tmp_path, sample_offsets(1, 0, cycle=True))
    data = EpochFrameWindows(windows, InterpWindowTransform(1, True, None, random=False))
    examples = [data[0], data[1]]
    pairs, triplets = interp_collate(examples), interp_collate(examples, triplets=True)
    assert pairs["pixel_values_videos"].shape == (2, 2, 3, 40, 48) and pairs["pixel_values_videos"].dtype == torch.uint8
    assert triplets["pixel_values_videos"].shape == (2, 3, 3, 40, 48)
    assert torch.equal(pairs["pixel_values_videos"][:, 1], triplets["pixel_values_videos"][:, 2])
    torch.testing.assert_close(pairs["labels"], triplets["pixel_values_videos"][:, 1].float())
    assert pairs["timesteps"].tolist() == [[0.5], [0.5]]
    assert int(pairs["labels"][1, 0, 0, 0]) == 2  # window 1 is frames 1, 2, 3: its middle is frame 2


def test_metric_is_the_metric_modules_on_8_bit_frames():
    g = torch.Generator().manual_seed(0)
    pair = torch.rand(3, 2, 3, 32, 32, generator=g) * 255
    target = torch.rand(3, 3, 32, 32, generator=g) * 255
    predicted = target + torch.randn(3, 3, 32, 32, generator=g) * 5
    t = torch.tensor([[0.5], [0.25], [0.5]])
    metric = InterpolationMetric()
    for rows in (slice(0, 2), slice(2, 3)):
        metric.add_batch(argparse.Namespace(interpolated_frames=predicted[rows, None]),
                         {"pixel_values_videos": pair[rows], "labels": target[rows], "timesteps": t[rows]})
    result = metric.compute()
    rounded = predicted.clamp(0, 255).round()
    average = ((1 - t.view(-1, 1, 1, 1)) * pair[:, 0] + t.view(-1, 1, 1, 1) * pair[:, 1]).round()
    assert result["psnr"] == pytest.approx(psnr(rounded, target).mean().item(), rel=1e-12)
    assert result["ssim"] == pytest.approx(ssim(rounded, target).mean().item(), rel=1e-12)
    assert result["frame_average_psnr"] == pytest.approx(psnr(average, target).mean().item(), rel=1e-12)


def test_fits_interpolators_only():
    task = get_task("video-interpolation")
    assert task.fits(get_config("cyclic-interp-tiny")) and task.unit == "frames"
    assert not task.fits(get_config("sdcnet-tiny")) and not task.fits(get_config("megatron-gpt-tiny"))
    assert not get_task("next-frame").fits(get_config("cyclic-interp-tiny"))


def test_card_rows_name_the_regime_the_teacher_and_the_perceptual_term():
    task = get_task("video-interpolation")
    training = {"regime": "cycle-ps", "teacher": "/runs/sup/model", "teacher_weight": 0.8, "perceptual": None,
                "num_interp": 1, "sample_rate": 0, "sample_offsets": [0, 1, 2], "crop_size": [64, 64], "frames": 12}
    rows = dict(task.card_rows(training))
    assert rows["training regime"] == "cycle consistency + pseudo-supervision"
    assert rows["teacher"] == "frozen `model`, weight 0.8"
    assert rows["perceptual term (VGG16 features[:22], 0.005)"] == "off (no local VGG16 weights were given)"
    assert any("without the reference's perceptual (VGG16) term" in x for x in task.limitations(training))
    on = dict(task.card_rows({**training, "regime": "cycle", "perceptual": "/w/vgg16.pth"}))
    assert on["perceptual term (VGG16 features[:22], 0.005)"] == "on (`vgg16.pth`)" and "teacher" not in on


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("interp_task")
    write_clip(root / "clips" / "a", 8)
    torch.manual_seed(0)
    from adlr_hf import CyclicInterpForFrameInterpolation, SDCNetForFramePrediction

    CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny")).save_pretrained(root / "interp")
    SDCNetForFramePrediction(get_config("sdcnet2d-tiny")).save_pretrained(root / "sdcnet")
    (root / "no_weights").mkdir()
    (root / "no_weights" / "config.json").write_text((root / "interp" / "config.json").read_text())
    (root / "not_vgg.pth").write_bytes(b"")
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, root / "wrong_vgg.pth")
    return root


def test_options_fail_clearly(folders):
    task, config = get_task("video-interpolation"), get_config("cyclic-interp-tiny")
    clips = folders / "clips"
    task.check_args(args_for([clips]), config)
    task.check_args(args_for([clips], regime="cycle-ps", teacher=str(folders / "interp")), config)
    task.check_args(args_for([clips], regime="cycle-ps", model=str(folders / "interp")), config)  # --model is it
    cases = [
        (dict(data=None), ValueError, "needs --data"),
        (dict(data=[str(folders / "nope")]), FileNotFoundError, "does not exist"),
        (dict(crop_size="48"), ValueError, "multiple of 32 .* e.g. 32"),
        (dict(num_interp=0), ValueError, "num_interp=0"),
        (dict(regime="supervised", sample_rate=0), ValueError, "sample_rate=0 must be an integer >= 1"),
        (dict(frame_stride=0), ValueError, "--frame-stride 0"),
        (dict(regime="cycle", teacher=str(folders / "interp")), ValueError, "--teacher applies to --regime cycle-ps"),
        (dict(regime="supervised", teacher_weight=0.5), ValueError, "--teacher-weight applies to --regime cycle-ps"),
        (dict(regime="cycle-ps"), ValueError, "needs a teacher: pass --teacher DIR"),
        (dict(regime="cycle-ps", teacher=str(folders / "sdcnet")), ValueError,
         "holds a 'adlr_sdcnet' model; the pseudo-supervision teacher must be a 'adlr_cyclic_interp' model"),
        (dict(regime="cycle-ps", teacher=str(folders / "clips")), FileNotFoundError, "not a saved model folder"),
        (dict(regime="cycle-ps", teacher=str(folders / "no_weights")), FileNotFoundError, "has no weights"),
        (dict(regime="cycle-ps", teacher=str(folders / "interp"), teacher_weight=-1.0), ValueError,
         "--teacher-weight -1.0 must be >= 0"),
        (dict(vgg_weights=str(folders / "nope.pth")), FileNotFoundError, "VGG16 weights .*nope.pth.* do not exist"),
        (dict(vgg_weights=str(folders / "not_vgg.pth")), ValueError, "not a readable PyTorch weights file"),
        (dict(vgg_weights=str(folders / "wrong_vgg.pth")), ValueError, "is not a VGG16 state dict: missing"),
    ]
    for overrides, error, message in cases:
        with pytest.raises(error, match=message):
            task.check_args(args_for([clips], **overrides), config)
    with pytest.raises(ValueError, match="--crop-size 64x64 \\(HxW\\) is larger than clip 'a'"):
        task.build(args_for([clips], crop_size="64"), config, None, folders / "run", True)
    with pytest.raises(ValueError, match="full frames must be multiples of 32"):
        task.build(args_for([clips], crop_size="0"), config, None, folders / "run", True)


def test_build_records_the_regime_and_attaches_the_teacher_outside_the_model(folders):
    task, config = get_task("video-interpolation"), get_config("cyclic-interp-tiny")
    run = task.build(args_for([folders / "clips"], regime="cycle-ps", teacher=str(folders / "interp"),
                              teacher_weight=0.5, num_interp=3, sample_rate=0, eval_fraction=0.4), config, None,
                     folders / "run", True)
    info = run.extra_info
    assert (info["regime"], info["teacher_weight"], info["perceptual"], info["sample_offsets"]) == \
        ("cycle-ps", 0.5, None, [0, 1, 2])
    assert json.loads(json.dumps(info))["teacher"] == str((folders / "interp").resolve())
    assert run.config.num_interp == 3 and info["train_windows"] == 2 and info["held_out_windows"] == 2
    batch = run.collate([run.train[0], run.train[1]])
    assert batch["pixel_values_videos"].shape == (2, 3, 3, 32, 32)  # triplets for the cycle
    assert run.eval_collate([run.eval[0]])["pixel_values_videos"].shape == (1, 2, 3, 32, 32)
    torch.manual_seed(0)
    model = task.build_model(run, None)
    assert model.teacher is not None and model._teacher_weight == 0.5
    assert not any(m is model.teacher for m in model.modules())
