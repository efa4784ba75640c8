"""The `video-frame-prediction` pipeline on real frames (../shared/data/video-frames): a frame folder, a list of
frames, a video file; roll-outs; and the clear errors for bad input (one frame, mixed sizes, several clips, an
unreadable video, sizes RAFT cannot take, a flow source that is not installed, a reconstruction model)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, pipeline

from adlr_hf import SDCNetVideoProcessor, get_config

VIDEO_FRAMES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "video-frames"
BEDROOM = VIDEO_FRAMES / "sam2-bedroom"
pytestmark = pytest.mark.skipif(not BEDROOM.is_dir(), reason=f"real frames not found at {BEDROOM} (../shared/data "
                                                               "of the checkout is absent)")


def save_model(folder: Path, name: str, **overrides) -> Path:
    torch.manual_seed(0)
    model = AutoModel.from_config(get_config(name, **overrides))
    model.save_pretrained(folder)
    SDCNetVideoProcessor.for_config(model.config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    """The first 5 bedroom frames at 1/4 size (240×135): real content, fast to predict."""
    folder = tmp_path_factory.mktemp("clip") / "bedroom-small"
    folder.mkdir()
    for path in sorted(BEDROOM.glob("*.jpg"))[:5]:
        Image.open(path).resize((240, 135), Image.BILINEAR).save(folder / f"{path.stem}.png")
    return folder


@pytest.fixture(scope="module")
def full_model(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("full"), "sdcnet-tiny")


def test_pipeline_predicts_from_a_folder_a_frame_list_and_a_video(full_model, small_clip, tmp_path):
    import av

    predict = pipeline("video-frame-prediction", model=str(full_model))
    from_folder = predict(str(small_clip), num_future_frames=2)
    assert len(from_folder) == 2 and all(isinstance(i, Image.Image) and i.size == (240, 135) for i in from_folder)
    # what the pipeline does, by hand: the last 2 frames, padded, rolled out, cropped, rounded
    paths = sorted(small_clip.glob("*.png"))
    clip = [np.asarray(Image.open(p).convert("RGB")) for p in paths[-2:]]
    inputs = predict.video_processor([clip], return_tensors="pt")
    rolled = predict.model.rollout(inputs["pixel_values_videos"], 2)
    expected = rolled[0, :, :, :135, :240].clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for image, frame in zip(from_folder, expected):
        np.testing.assert_array_equal(np.asarray(image), frame)
    from_list = predict([Image.open(p) for p in paths])  # a plain list is one clip, not a batch
    np.testing.assert_array_equal(np.asarray(from_list[0]), np.asarray(from_folder[0]))
    from_paths = predict([str(p) for p in paths[-2:]])
    np.testing.assert_array_equal(np.asarray(from_paths[0]), np.asarray(from_folder[0]))
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 240, 136, "yuv420p"
        for path in paths:
            image = Image.open(path).convert("RGB").resize((240, 136))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    from_video = predict(str(video))
    assert len(from_video) == 1 and from_video[0].size == (240, 136)


def test_pipeline_on_a_full_size_real_clip(tmp_path):
    predict = pipeline("video-frame-prediction", model=str(save_model(tmp_path / "m", "sdcnet2d-tiny")))
    (image,) = predict(str(BEDROOM))
    assert image.size == (960, 540)
    last = np.asarray(Image.open(sorted(BEDROOM.glob("*.jpg"))[-1]).convert("RGB")).astype(float)
    assert np.abs(np.asarray(image).astype(float) - last).mean() < 60  # a warp of the last frame, not noise


def test_bad_inputs_fail_before_any_output(full_model, small_clip, tmp_path, monkeypatch):
    predict = pipeline("video-frame-prediction", model=str(full_model))
    paths = sorted(small_clip.glob("*.png"))
    with pytest.raises(ValueError, match="got 1 frame\\(s\\); the model predicts from the last 2"):
        predict([str(paths[0])])
    one = tmp_path / "one"
    one.mkdir()
    Image.open(paths[0]).save(one / "0.png")
    with pytest.raises(ValueError, match="has only one frame"):
        predict(str(one))
    with pytest.raises(ValueError, match="the frames differ in size: 240x135 and 100x80"):
        predict([Image.open(paths[0]), Image.open(paths[1]).resize((100, 80))])
    with pytest.raises(ValueError, match="holds 2 clips"):
        predict(str(VIDEO_FRAMES))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(ValueError, match="broken.mp4.*cannot be read"):
        predict(str(broken))
    with pytest.raises(ValueError, match="num_future_frames=0"):
        predict(str(small_clip), num_future_frames=0)
    with pytest.raises(ValueError, match="multiply \\[0, 1\\] frames by 255"):
        predict([np.random.rand(40, 60, 3), np.random.rand(40, 60, 3)])
    recon = pipeline("video-frame-prediction", model=str(save_model(tmp_path / "recon", "sdcnet2d-recon",
                                                                    base_width=8)))
    with pytest.raises(ValueError, match="cannot predict unseen frames"):
        recon(str(small_clip))
    # RAFT: frames padded to 64x64 are below its correlation pyramid's minimum
    from torchvision.models.optical_flow import raft_small

    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)
    raft = pipeline("video-frame-prediction", model=str(save_model(
        tmp_path / "raft", "sdcnet-tiny", flow_source="raft-small", flow_weights=str(weights))))
    frames = [np.asarray(Image.open(p).convert("RGB"))[:60, :60] for p in paths[:2]]
    with pytest.raises(ValueError, match="raft-small needs H and W of at least 128"):
        raft(frames)
    # a flow source that is not installed
    monkeypatch.setitem(sys.modules, "cv2", None)
    fresh = pipeline("video-frame-prediction", model=str(full_model))
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        fresh(str(small_clip))
