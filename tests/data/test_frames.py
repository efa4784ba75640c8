"""Frame data for SDC-Net (arXiv 1811.00684; NVIDIA/semantic-segmentation branch sdcnet, FrameLoader): real frame
folders, videos written and read back with PyAV, windows and stride, the shared crop and flip, laziness, and the
clear errors for bad clips."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf.data import frames as frames_module
from adlr_hf.data.frames import (
    FrameWindowTransform,
    crop_window,
    find_clips,
    frames_collate,
    load_frame_windows,
    make_frames_dataloader,
    natural_key,
    read_video_frames,
    read_window,
    with_frame_transform,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VIDEO_FRAMES = DATA / "video-frames"
DAVIS = DATA / "vfi-davis-dev"
needs_data = pytest.mark.skipif(not VIDEO_FRAMES.is_dir() or not DAVIS.is_dir(),
                                reason=f"real frames not found under {DATA} (../shared/data is absent)")


def test_natural_sort():
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame2b.png", "a.png"]
    assert sorted(names, key=natural_key) == ["a.png", "Frame1.png", "frame2.png", "frame2b.png", "frame10.png"]


@needs_data
def test_real_frame_folders_as_windows():
    ds = load_frame_windows(VIDEO_FRAMES, window=3, stride=1)
    clips = ds["clip"]
    assert clips.count("adacof-sample-video") == 68 - 2 and clips.count("sam2-bedroom") == 32 - 2
    row = ds[0]
    assert row["kind"] == "frames" and row["frame_index"] == [0, 1, 2]
    assert [Path(f).name for f in row["files"]] == ["000.png", "001.png", "002.png"]
    assert (row["height"], row["width"]) == (507, 960)
    strided = load_frame_windows(VIDEO_FRAMES / "sam2-bedroom", window=4, stride=5)
    assert strided["clip"] == ["sam2-bedroom"] * 6
    assert strided["frame_index"][1] == [5, 6, 7, 8]
    window = read_window(strided[1])
    with Image.open(VIDEO_FRAMES / "sam2-bedroom" / "00006.jpg") as img:
        assert np.array_equal(window[1], np.asarray(img.convert("RGB")))  # RGB, in time order
    assert window.shape == (4, 540, 960, 3) and window.dtype == np.uint8


@needs_data
def test_davis_layout_and_its_errors():
    ds = load_frame_windows(DAVIS / "input", window=2)
    assert sorted(ds["clip"]) == ["dive-in", "dolphins", "kart-turn", "pole-vault", "speed-skating"]
    assert [Path(f).name for f in ds[0]["files"]] == ["frame10.png", "frame11.png"]
    with pytest.raises(ValueError, match=r"clip 'gt/dive-in' .* has only one frame \(frame10i11.png\)"):
        load_frame_windows(DAVIS, window=2)
    with pytest.raises(ValueError, match=r"no clip under .* has window=3 frames \(the longest has 2\); use "
                                         r"window <= 2"):
        load_frame_windows(DAVIS / "input", window=3)


@needs_data
def test_shared_crop_flip_and_reproducibility():
    ds = load_frame_windows(VIDEO_FRAMES / "adacof-sample-video", window=3, stride=30)
    full = read_window(ds[1])
    transform = FrameWindowTransform((64, 96), flip=True, seed=7)
    view = with_frame_transform(ds, transform)
    out = view[1]["frames"]
    assert out.shape == (3, 3, 64, 96) and out.dtype == torch.uint8
    # every frame is cut at the same place (and flipped together, if at all)
    hwc = out.permute(0, 2, 3, 1).numpy()
    found = []
    for flipped in (False, True):
        frames = full[:, :, ::-1] if flipped else full
        for top in range(full.shape[1] - 64 + 1):
            row = frames[0, top:top + 64]
            for left in np.flatnonzero((row[0, :, 0][: full.shape[2] - 96 + 1] == hwc[0, 0, 0, 0])):
                if np.array_equal(row[:, left:left + 96], hwc[0]):
                    found.append((flipped, top, left))
    assert len(found) == 1
    flipped, top, left = found[0]
    frames = full[:, :, ::-1] if flipped else full
    assert np.array_equal(hwc, frames[:, top:top + 64, left:left + 96])
    # same (seed, epoch, window) -> same crop; the epoch changes it
    again = with_frame_transform(ds, FrameWindowTransform((64, 96), flip=True, seed=7))[1]["frames"]
    assert torch.equal(out, again)
    transform.set_epoch(1)
    crops = {view[1]["frames"].float().mean().item() for _ in range(2)}
    assert len(crops) == 1 and crops != {out.float().mean().item()}
    backwards = with_frame_transform(ds, FrameWindowTransform(reverse=True, seed=0))
    rows = [backwards[i] for i in range(len(backwards))]
    reversed_rows = [r for r in rows if r["frame_index"][0] > r["frame_index"][1]]
    assert 0 < len(reversed_rows) < len(rows)  # about half of the windows play backwards
    row = reversed_rows[0]
    expected = torch.from_numpy(read_window(ds[row["window_id"]])[::-1].copy()).permute(0, 3, 1, 2)
    assert torch.equal(row["frames"], expected)
    centre = with_frame_transform(ds, crop_size=64, random_crop=False)[0]["frames"]
    assert torch.equal(centre, torch.from_numpy(read_window(ds[0])[:, 221:285, 448:512]).permute(0, 3, 1, 2))


@needs_data
def test_collate_and_dp_dataloader():
    ds = with_frame_transform(load_frame_windows(VIDEO_FRAMES, window=2, stride=10), crop_size=32)
    loader = make_frames_dataloader(ds, micro_batch_size=3, dp_rank=1, dp_size=2, seed=0)
    batch = next(iter(loader))
    assert batch["frames"].shape == (3, 2, 3, 32, 32) and batch["frames"].dtype == torch.uint8
    assert batch["frame_index"].shape == (3, 2) and len(batch["clip"]) == 3
    uncropped = with_frame_transform(load_frame_windows(VIDEO_FRAMES, window=2, stride=40))
    rows = [uncropped[i] for i in range(len(uncropped))]
    with pytest.raises(ValueError, match="set crop_size so every window has one size"):
        frames_collate(rows)


def test_rows_are_lazy(tmp_path, monkeypatch):
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 10, 3), i * 50, np.uint8)).save(clip / f"frame{i}.png")

    def no_decoding(path):
        raise AssertionError("a frame was decoded while building the dataset")

    monkeypatch.setattr(frames_module, "_read_image", no_decoding)
    ds = load_frame_windows(tmp_path, window=3)
    assert len(ds) == 2
    monkeypatch.undo()
    assert read_window(ds[1])[:, 0, 0, 0].tolist() == [50, 100, 150]


def _write_video(path: Path, frames: np.ndarray, codec: str, rate: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _moving_square(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    frames = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i, :, :, 2] = 40
        frames[i, 12:28, 4 * i:4 * i + 16] = (230, 200, 30)
    return frames


@pytest.mark.parametrize("name, codec", [("clip.mp4", "libx264"), ("clip.avi", "mpeg4")])
def test_video_written_and_read_back(tmp_path, name, codec):
    frames = _moving_square(12)
    _write_video(tmp_path / name, frames, codec)
    (clip,) = find_clips(tmp_path)
    assert (clip.name, clip.kind, clip.num_frames, clip.height, clip.width) == (name, "video", 12, 48, 64)
    ds = load_frame_windows(tmp_path, window=3, stride=4)
    assert ds["frame_index"] == [[0, 1, 2], [4, 5, 6], [8, 9, 10]]
    decoded = read_window(ds[2])
    assert decoded.shape == (3, 48, 64, 3)
    assert np.abs(decoded.astype(float) - frames[8:11]).mean() < 6  # lossy codecs, same pictures
    again = read_video_frames(tmp_path / name, [9, 10])
    assert np.array_equal(again, decoded[1:])
    single = load_frame_windows(tmp_path / name, window=2)  # root may be the video itself
    assert len(single) == 11 and single[0]["source"] == str(tmp_path / name)


def test_bad_clips_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_frame_windows(tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no frames here")
    with pytest.raises(FileNotFoundError, match="no frames or videos under"):
        load_frame_windows(empty)
    mixed = tmp_path / "mixed" / "clip"
    mixed.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(mixed / "frame1.png")
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(mixed / "frame2.png")
    with pytest.raises(ValueError, match=r"clip 'clip' mixes frame sizes: frame1.png is 10x8 but frame2.png is 12x8"):
        load_frame_windows(tmp_path / "mixed")
    single = tmp_path / "single" / "clip"
    single.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(single / "only.png")
    with pytest.raises(ValueError, match="has only one frame"):
        load_frame_windows(tmp_path / "single")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.mp4").write_bytes(b"\x00\x01 this is not a video" * 50)
    with pytest.raises(ValueError, match=r"video file '.*bad.mp4' cannot be read"):
        load_frame_windows(broken)
    notvideo = tmp_path / "notes.txt"
    notvideo.write_text("x")
    with pytest.raises(ValueError, match="is a file but not a video"):
        load_frame_windows(notvideo)
    with pytest.raises(ValueError, match=r"window=1 must be an int(eger)? >= 2"):
        load_frame_windows(tmp_path / "mixed", window=1)
    with pytest.raises(ValueError, match=r"stride=0 must be an int(eger)? >= 1"):
        load_frame_windows(tmp_path / "mixed", stride=0)


def test_crop_errors():
    window = np.zeros((2, 10, 12, 3), np.uint8)
    with pytest.raises(ValueError, match=r"crop 11x12 \(HxW\) is larger than the frames, 10x12"):
        crop_window(window, (11, 12))
    with pytest.raises(ValueError, match="crop_size=0 must be a positive int"):
        FrameWindowTransform(0)
    assert crop_window(window, 4, torch.Generator().manual_seed(0)).shape == (2, 4, 4, 3)
