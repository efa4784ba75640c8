"""The `video-frame-interpolation` pipeline on a real triplet (../shared/data/vfi-davis-dev): two frames in, the
frames at the requested times out (what the pipeline does, by hand: zero-padded inputs, the model, cropped and
rounded); a clip gives the frames between each consecutive pair; and the clear errors for bad input (times outside
(0, 1), frames of different sizes, one frame, clashing options), raised before the model runs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, pipeline

from adlr_hf import CyclicInterpVideoProcessor, get_config

DAVIS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vfi-davis-dev"
SEQUENCE = "dive-in"
pytestmark = pytest.mark.skipif(not (DAVIS / "input" / SEQUENCE).is_dir(),
                                reason=f"real triplets not found at {DAVIS} (../shared/data of the checkout is absent)")


@pytest.fixture(scope="module")
def interpolate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = AutoModel.from_config(get_config("cyclic-interp-tiny"))
    model.save_pretrained(folder)
    CyclicInterpVideoProcessor.for_config(model.config).save_pretrained(folder)
    return pipeline("video-frame-interpolation", model=str(folder))


def triplet():
    return [Image.open(DAVIS / "input" / SEQUENCE / "frame10.png"), Image.open(DAVIS / "gt" / SEQUENCE /
                                                                             "frame10i11.png"),
            Image.open(DAVIS / "input" / SEQUENCE / "frame11.png")]


def by_hand(interpolate, first, last, times):
    arrays = [np.asarray(first.convert("RGB")), np.asarray(last.convert("RGB"))]
    padded = interpolate.video_processor([arrays], return_tensors="pt")["pixel_values_videos"]
    height, width = arrays[0].shape[:2]
    frames = interpolate.model.interpolate(padded, times)[0, :, :, :height, :width]
    return frames.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_two_frames_in_the_frames_at_the_requested_times_out(interpolate):
    first, _, last = triplet()
    (middle,) = interpolate([first, last])
    assert isinstance(middle, Image.Image) and middle.size == first.size == (320, 180)
    np.testing.assert_array_equal(np.asarray(middle), by_hand(interpolate, first, last, [0.5])[0])
    quarters = interpolate([first, last], timesteps=[0.25, 0.75])
    expected = by_hand(interpolate, first, last, [0.25, 0.75])
    assert len(quarters) == 2 and all(np.array_equal(np.asarray(i), e) for i, e in zip(quarters, expected))
    evenly = interpolate([first, last], num_interp=3)  # t = 1/4, 1/2, 3/4
    np.testing.assert_array_equal(np.asarray(evenly[0]), np.asarray(quarters[0]))
    np.testing.assert_array_equal(np.asarray(evenly[1]), np.asarray(middle))
    paths = interpolate([str(DAVIS / "input" / SEQUENCE / "frame10.png"), str(DAVIS / "input" / SEQUENCE /
                                                                              "frame11.png")])
    np.testing.assert_array_equal(np.asarray(paths[0]), np.asarray(middle))
    folder = interpolate(str(DAVIS / "input" / SEQUENCE))  # a folder of two frames
    np.testing.assert_array_equal(np.asarray(folder[0]), np.asarray(middle))


def test_a_clip_gives_the_frames_between_each_consecutive_pair(interpolate):
    frames = triplet()
    out = interpolate(frames, timesteps=[0.5])
    assert len(out) == 2
    np.testing.assert_array_equal(np.asarray(out[0]), by_hand(interpolate, frames[0], frames[1], [0.5])[0])
    np.testing.assert_array_equal(np.asarray(out[1]), by_hand(interpolate, frames[1], frames[2], [0.5])[0])


def test_bad_inputs_fail_before_the_model_runs(interpolate, monkeypatch):
    first, _, last = triplet()

    def never(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(interpolate.model, "interpolate", never)
    cases = [
        (dict(timesteps=[0.5, 1.0]), "timesteps=\\[0.5, 1.0\\] must be numbers strictly between 0 and 1"),
        (dict(timesteps=0), "strictly between 0 and 1"),
        (dict(timesteps=[]), "strictly between 0 and 1"),
        (dict(num_interp=0), "num_interp=0 must be an integer >= 1"),
        (dict(timesteps=[0.5], num_interp=1), "either timesteps .* or num_interp"),
        (dict(speed=2), "unknown options \\['speed'\\]"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            interpolate([first, last], **options)
    with pytest.raises(ValueError, match="got 1 frame\\(s\\); pass at least 2"):
        interpolate([first])
    with pytest.raises(ValueError, match="the frames differ in size: 320x180 and 160x90"):
        interpolate([first, last.resize((160, 90))])
    with pytest.raises(ValueError, match="multiply \\[0, 1\\] frames by 255"):
        interpolate([np.random.rand(40, 60, 3), np.random.rand(40, 60, 3)])
    with pytest.raises(ValueError, match="holds 5 clips"):
        interpolate(str(DAVIS / "input"))
