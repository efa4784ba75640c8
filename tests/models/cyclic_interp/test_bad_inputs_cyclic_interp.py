"""Bad input to the interpolation family's command lines (`train --task video-interpolation`, `evaluate --task
frame-interpolation`, `convert uvi`): each exits non-zero with one message naming the value and the fix, no
traceback, and no new or changed file (the checker of tests/test_bad_inputs.py)."""

import pytest
import torch
from PIL import Image

from test_bad_inputs import _check


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from adlr_hf import CyclicInterpForFrameInterpolation, CyclicInterpVideoProcessor, SDCNetForFramePrediction, \
        get_config

    root = tmp_path_factory.mktemp("interp_bad_inputs")
    for i in range(6):
        (root / "clips" / "a").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 40), (i * 10, 0, 0)).save(root / "clips" / "a" / f"{i}.png")
    torch.manual_seed(0)
    model = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny"))
    model.save_pretrained(root / "interp")
    CyclicInterpVideoProcessor.for_config(model.config).save_pretrained(root / "interp")
    SDCNetForFramePrediction(get_config("sdcnet2d-tiny")).save_pretrained(root / "sdcnet")
    for seq in ("x", "y"):
        (root / "davis" / "input" / seq).mkdir(parents=True)
        for name in ("frame10.png", "frame11.png"):
            Image.new("RGB", (48, 40)).save(root / "davis" / "input" / seq / name)
    (root / "davis" / "gt" / "x").mkdir(parents=True)
    Image.new("RGB", (48, 40)).save(root / "davis" / "gt" / "x" / "frame10i11.png")
    (root / "garbage.pth").write_bytes(b"not a checkpoint")
    return root


DATA = ["--model", "cyclic-interp-tiny", "--data", "{w}/clips", "--crop-size", "32", "--steps", "1", "--no-progress"]
CASES = {
    "teacher of another architecture": (["train", *DATA, "--regime", "cycle-ps", "--teacher", "{w}/sdcnet"],
                                        ["'adlr_sdcnet' model", "must be a 'adlr_cyclic_interp' model"]),
    "pseudo-supervision without a teacher": (["train", *DATA, "--regime", "cycle-ps"], ["--teacher DIR"]),
    "teacher without pseudo-supervision": (["train", *DATA, "--regime", "cycle", "--teacher", "{w}/interp"],
                                           ["--teacher applies to --regime cycle-ps"]),
    "missing VGG16 weights": (["train", *DATA, "--vgg-weights", "{w}/vgg16.pth"], ["vgg16.pth", "do not exist"]),
    "crop that is not a multiple of 32": (["train", *DATA[:4], "--crop-size", "40", "--steps", "1"],
                                          ["--crop-size 40 must be a multiple of 32"]),
    "supervised samples with sample rate 0": (["train", *DATA, "--regime", "supervised", "--sample-rate", "0"],
                                              ["sample_rate=0", ">= 1 for supervised"]),
    "unknown regime": (["train", *DATA, "--regime", "unsupervised"], ["invalid choice: 'unsupervised'"]),
    "layout whose ground truth is missing": (["evaluate", "{w}/interp", "--task", "frame-interpolation", "--data",
                                              "{w}/davis"], ["gt/y", "holds 0 images", "frame10i11"]),
    "layout that does not match the folder": (["evaluate", "{w}/interp", "--task", "frame-interpolation", "--data",
                                               "{w}/clips", "--layout", "slowflow"],
                                              ["layout slowflow: clip 'a' has 6 frames", "num_interp + 2 = 9"]),
    "interpolation evaluation of a predictor": (["evaluate", "{w}/sdcnet", "--task", "frame-interpolation", "--data",
                                                 "{w}/davis"], ["--task frame-interpolation", "adlr_sdcnet"]),
    "uvi checkpoint that is not a checkpoint": (["convert", "uvi", "{w}/garbage.pth", "{t}/out"],
                                                ["garbage.pth", "not a readable PyTorch checkpoint"]),
    "uvi flow scale that is not whole": (["convert", "uvi", "{w}/garbage.pth", "{t}/out", "--flow-scale", "1.5"],
                                         ["--flow-scale 1.5 must be a whole number"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, world, tmp_path, capsys, monkeypatch):
    argv, needles = CASES[case]
    _check(case, argv, needles, world, tmp_path, capsys, monkeypatch)
