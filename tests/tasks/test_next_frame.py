"""The `next-frame` task's pieces: crop parsing, the held-out split (no held-out frame is trained on), the epoch-
seeded augmentation the training loop advances, the collator, the training-time metric against the metric modules,
which models it fits, and the clear errors of its options."""

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf import get_config
from adlr_hf.data.frames import FrameWindowTransform, find_clips, load_frame_windows
from adlr_hf.metrics.psnr.psnr import psnr
from adlr_hf.metrics.ssim.ssim import ssim
from adlr_hf.tasks import get_task
from adlr_hf.tasks.next_frame import NextFrameMetric, next_frame_collate
from adlr_hf.tasks.video_data import EpochFrameWindows, held_out_split, parse_crop


def write_clip(folder: Path, frames: int, height=72, width=96, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(frames):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"f{i}.png")
    return folder


def args_for(paths, **overrides):
    values = dict(data=[str(d) for d in paths], crop_size="64", window=None, frame_stride=1, reverse=True, flip=False,
                  eval_fraction=0.25, seed=3)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_parse_crop():
    assert parse_crop("256") == (256, 256) and parse_crop("64x128") == (64, 128) and parse_crop(0) is None
    for bad in ("-64", "64x", "big", "64x64x64"):
        with pytest.raises(ValueError, match="must be N"):
            parse_crop(bad)


def test_held_out_frames_are_never_in_a_training_window(tmp_path):
    write_clip(tmp_path / "a", 12)
    write_clip(tmp_path / "b", 5, seed=1)  # too short to split: trains only
    windows = load_frame_windows(tmp_path, window=3)
    train, held = held_out_split(windows, find_clips(tmp_path), 0.25, 3)
    rows = windows.to_dict()
    held_frames = {(rows["clip"][r], f) for r in held for f in rows["frame_index"][r]}
    train_frames = {(rows["clip"][r], f) for r in train for f in rows["frame_index"][r]}
    assert held_frames == {("a", f) for f in range(9, 12)}  # max(window, ceil(0.25 * 12)) = 3 frames
    assert not held_frames & train_frames
    assert {f for c, f in train_frames if c == "a"} == set(range(9)) and len([r for r in train if
                                                                             rows["clip"][r] == "b"]) == 3


def test_augmentation_follows_the_epoch_the_loop_sets(tmp_path):
    write_clip(tmp_path / "a", 6, height=128, width=160)
    windows = load_frame_windows(tmp_path, window=3)
    data = EpochFrameWindows(windows, FrameWindowTransform(64, random_crop=True, flip=True, seed=5))
    first = [data[i]["frames"] for i in range(len(data))]
    assert all(torch.equal(a, data[i]["frames"]) for i, a in enumerate(first))  # same epoch: same crops
    data.set_epoch(1)
    assert any(not torch.equal(a, data[i]["frames"]) for i, a in enumerate(first))
    data.set_epoch(0)
    assert all(torch.equal(a, data[i]["frames"]) for i, a in enumerate(first))  # a resume replays epoch 0
    batch = next_frame_collate([data[0], data[1]])
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 64, 64) and batch["pixel_values_videos"].dtype == torch.uint8
    assert batch["labels"].shape == (2, 3, 64, 64) and batch["labels"].dtype == torch.float32
    torch.testing.assert_close(batch["labels"][0], first[0][-1].float())


def test_the_training_loop_advances_the_augmentation_epoch(tmp_path):
    from types import SimpleNamespace

    from adlr_hf.data.sampling import make_dp_dataloader
    from adlr_hf.training.trainer import Trainer

    write_clip(tmp_path / "a", 6, height=64, width=64)
    data = EpochFrameWindows(load_frame_windows(tmp_path, window=3), FrameWindowTransform(64))
    seen = []
    data.set_epoch = lambda epoch: seen.append(epoch)
    loader = make_dp_dataloader(data, 2, 0, 1, 0, next_frame_collate, start_step=2)  # 2 batches per epoch
    batches = Trainer._batches(SimpleNamespace(train_loader=loader))
    for _ in range(4):
        next(batches)
    assert seen == [1, 2]  # resumed in epoch 1, then epoch 2


def test_metric_is_the_metric_modules_on_8_bit_predictions():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 32, 32, generator=g) * 255
    predicted = target + torch.randn(3, 3, 32, 32, generator=g) * 5
    last = torch.rand(3, 1, 3, 32, 32, generator=g) * 255
    metric = NextFrameMetric()
    metric.add_batch(argparse.Namespace(predicted_frame=predicted[:2]), {"labels": target[:2],
                                                                          "pixel_values_videos": last[:2]})
    metric.add_batch(argparse.Namespace(predicted_frame=predicted[2:]), {"labels": target[2:],
                                                                           "pixel_values_videos": last[2:]})
    result = metric.compute()
    rounded = predicted.clamp(0, 255).round()
    assert result["psnr"] == pytest.approx(psnr(rounded, target).mean().item(), rel=1e-12)
    assert result["ssim"] == pytest.approx(ssim(rounded, target).mean().item(), rel=1e-12)
    assert result["copy_last_psnr"] == pytest.approx(psnr(last[:, -1], target).mean().item(), rel=1e-12)
    metric.reset()
    assert metric.compute() == {}


def test_fits_video_predictors_only():
    task = get_task("next-frame")
    assert task.fits(get_config("sdcnet-tiny")) and task.fits(get_config("sdcnet2d-recon"))
    assert not task.fits(get_config("megatron-gpt-tiny")) and not task.fits(get_config("pd-resnet-tiny"))
    assert task.unit == "frames"


def test_options_fail_clearly(tmp_path):
    write_clip(tmp_path / "a", 6)
    task, config = get_task("next-frame"), get_config("sdcnet-tiny")
    task.check_args(args_for([tmp_path]), config)
    cases = [(dict(data=None), ValueError, "needs --data"),
             (dict(data=[str(tmp_path / "nope")]), FileNotFoundError, "does not exist"),
             (dict(crop_size="100"), ValueError, "multiple of 64 .* e.g. 64"),
             (dict(window=1), ValueError, "--window 1"),
             (dict(frame_stride=0), ValueError, "--frame-stride 0"),
             (dict(eval_fraction=1.0), ValueError, "--eval-fraction")]
    for overrides, error, message in cases:
        with pytest.raises(error, match=message):
            task.check_args(args_for([tmp_path], **overrides), config)
    with pytest.raises(ValueError, match="flow_source 'precomputed' serves inference"):
        task.check_args(args_for([tmp_path]), get_config("sdcnet-tiny", flow_source="precomputed"))
    with pytest.raises(ValueError, match="raft-small needs trained weights"):
        task.check_args(args_for([tmp_path]), get_config("sdcnet-tiny", flow_source="raft-small"))
    from torchvision.models.optical_flow import raft_small

    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)
    raft = get_config("sdcnet-tiny", flow_source="raft-small", flow_weights=str(weights))
    with pytest.raises(ValueError, match="raft-small needs H and W of at least 128"):
        task.check_args(args_for([tmp_path]), raft)  # 64x64 training crops
    build = argparse.Namespace(**vars(args_for([tmp_path], crop_size="0")))
    with pytest.raises(ValueError, match="96x72 \\(WxH\\): full frames must be multiples of 64; pass --crop-size"):
        task.build(build, config, None, tmp_path / "run", True)
    with pytest.raises(ValueError, match="--crop-size 128x128 \\(HxW\\) is larger than clip 'a'"):
        task.build(args_for([tmp_path], crop_size="128"), config, None, tmp_path / "run", True)
