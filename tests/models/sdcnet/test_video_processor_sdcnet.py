"""SDC-Net's video processor: pads like the reference's FrameLoader (numpy "reflect" at the bottom and right to
multiples of 64), keeps values, crops predictions back to PIL images, round-trips through AutoVideoProcessor."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoVideoProcessor

from adlr_hf import SDCNetVideoProcessor, get_config


def frames(count=3, height=50, width=70, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize("height, width", [(50, 70), (20, 130), (64, 64), (1, 70)])
def test_pads_like_numpy_reflect_to_multiples_of_64(height, width):
    clip = frames(height=height, width=width)
    out = SDCNetVideoProcessor()(clip, return_tensors="pt", input_data_format="channels_last")
    pixels = out["pixel_values_videos"]
    padded_h, padded_w = -(-height // 64) * 64, -(-width // 64) * 64
    assert pixels.shape == (1, 3, 3, padded_h, padded_w) and pixels.dtype == torch.float32
    for t, frame in enumerate(clip):  # reflect as often as needed; a single-pixel axis repeats its pixel
        expected = np.pad(frame.astype(np.float32), ((0, padded_h - height), (0, 0), (0, 0)),
                          mode="reflect" if height > 1 else "edge")
        expected = np.pad(expected, ((0, 0), (0, padded_w - width), (0, 0)), mode="reflect")
        np.testing.assert_array_equal(pixels[0, t].permute(1, 2, 0).numpy(), expected)
    assert out["original_sizes"].tolist() == [[height, width]]


def test_accepts_pil_lists_arrays_and_batches_and_post_processes_back():
    processor = SDCNetVideoProcessor.for_config(get_config("sdcnet-tiny"))
    clip = frames()
    as_pil = processor([Image.fromarray(f) for f in clip], return_tensors="pt")["pixel_values_videos"]
    as_array = processor(np.stack(clip), return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(as_pil, as_array)
    batch = processor([clip, frames(seed=1)], return_tensors="pt")
    assert batch["pixel_values_videos"].shape == (2, 3, 3, 64, 128)
    images = processor.post_process_frames(batch["pixel_values_videos"][:, -1] + 0.4, batch["original_sizes"])
    assert len(images) == 2 and images[0][0].size == (70, 50)
    np.testing.assert_array_equal(np.asarray(images[0][0]), clip[-1])  # +0.4 rounds back to the frame
    over = processor.post_process_frames(torch.full((1, 2, 3, 64, 128), 300.0), [[50, 70]])
    assert len(over[0]) == 2 and np.asarray(over[0][1]).max() == 255


def test_save_and_auto_load(tmp_path):
    processor = SDCNetVideoProcessor(size_divisor=32)
    processor.save_pretrained(tmp_path)
    loaded = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is SDCNetVideoProcessor and loaded.size_divisor == 32
    assert loaded(frames(), return_tensors="pt")["pixel_values_videos"].shape[-2:] == (64, 96)


def test_bad_inputs_fail_clearly():
    processor = SDCNetVideoProcessor()
    clip = frames()
    with pytest.raises(ValueError, match="clip 0 mixes frame sizes: frame 0 is 70x50 but frame 1 is 40x30"):
        processor([clip[0], frames(height=30, width=40)[0]])
    with pytest.raises(ValueError, match="clips of one batch have different frame sizes"):
        processor([clip, frames(height=30, width=40)])
    with pytest.raises(ValueError, match="size_divisor=0"):
        SDCNetVideoProcessor(size_divisor=0)
    with pytest.raises(ValueError, match="frames must be"):
        processor.post_process_frames(torch.zeros(3, 64, 64), [[50, 70]])
