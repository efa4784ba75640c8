"""The landmark-autoencoding pairs: partners within the gap, boxes cropped with the reference's margin, replay from
(seed, epoch, sample), video files through the platform loader, and clips shorter than the gap refused up front."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf.data.landmark_clips import LandmarkPairs, landmark_collate, load_landmark_clips
from models.video_utils import SHARED_DATA

FACES = SHARED_DATA / "face-video"


def write_clip(folder, frames: int, size=(80, 60), boxes=None):
    """A synthetic clip whose frame i has grey level 10·i (so a frame's index reads back from its pixels)."""
    folder.mkdir(parents=True)
    for i in range(frames):
        Image.fromarray(np.full((size[1], size[0], 3), 10 * i, np.uint8)).save(folder / f"{i:03d}.png")
    if boxes is not None:
        (folder / "boxes.json").write_text(json.dumps(boxes))
    return folder


def frame_index(pixels: torch.Tensor) -> int:
    return int(round(float((pixels.mean() + 1) * 127.5) / 10))


def test_partners_lie_within_the_gap_of_the_same_split(tmp_path):
    write_clip(tmp_path / "a", 20)
    train, held = load_landmark_clips([tmp_path], gap_min=3, gap_max=6, eval_fraction=0.25)
    assert [(p.start, p.stop) for p in train] == [(0, 15)] and [(p.start, p.stop) for p in held] == [(15, 20)]
    pairs = LandmarkPairs(train, 64, 3, 6, seed=1)
    assert len(pairs) == 15
    for epoch in range(3):
        pairs.set_epoch(epoch)
        for i in range(len(pairs)):
            sample = pairs[i]
            assert sample["pixel_values_videos"].shape == (1, 2, 3, 64, 64)
            a, b = frame_index(sample["labels"]), frame_index(sample["pixel_values_videos"][0, 1])
            assert a == i and 3 <= abs(a - b) <= 6 and b < 15
    evaluation = LandmarkPairs(held, 64, 3, 6, random=False)
    assert [(frame_index(s["labels"]), frame_index(s["pixel_values_videos"][0, 1])) for s in evaluation] == \
        [(15, 18), (16, 19), (18, 15), (19, 16)]
    assert torch.equal(evaluation[0]["pixel_values_videos"][0, 0], evaluation[0]["labels"][0])  # no jitter


def test_samples_replay_from_seed_epoch_and_index_and_change_with_the_epoch(tmp_path):
    write_clip(tmp_path / "a", 12)
    train, _ = load_landmark_clips([tmp_path], 3, 40, 0.0)
    pairs = LandmarkPairs(train, 64, 3, 40, source="both", seed=5)
    pairs.set_epoch(2)
    first = pairs[4]
    assert first["pixel_values_videos"].shape == (2, 2, 3, 64, 64)  # temporal and warped pairs
    again = LandmarkPairs(train, 64, 3, 40, source="both", seed=5)
    again.set_epoch(2)
    assert all(torch.equal(first[k], again[4][k]) for k in first)
    pairs.set_epoch(3)
    assert not torch.equal(first["pixel_values_videos"], pairs[4]["pixel_values_videos"])
    batch = landmark_collate([pairs[0], pairs[1]])
    assert batch["pixel_values_videos"].shape == (4, 2, 3, 64, 64) and batch["labels"].shape == (4, 3, 64, 64)


def test_boxes_crop_frame_a_with_a_60_pixel_margin_for_both_frames(tmp_path):
    # a 300x200 clip whose left half is black and right half white; the box of frame 0 lies in the right half
    folder = tmp_path / "c"
    folder.mkdir()
    image = np.zeros((200, 300, 3), np.uint8)
    image[:, 150:] = 255
    for i in range(5):
        Image.fromarray(image).save(folder / f"{i}.png")
    (folder / "boxes.json").write_text(json.dumps([[220, 80, 240, 120]] + [None] * 4))
    train, _ = load_landmark_clips([tmp_path], 3, 4, 0.0)
    sample = LandmarkPairs(train, 64, 3, 4, random=False)[0]
    # the crop is x 160..300 (clipped), y 20..180: all white, for frame A and its partner
    assert float(sample["labels"].min()) > 1 - 1e-5 and float(sample["pixel_values_videos"].min()) > 1 - 1e-5
    # without a box (frame 3) the centred 200x200 square is taken: half black, half white
    centred = LandmarkPairs(train, 64, 3, 4, random=False)[3]["labels"]
    assert float(centred.mean()) == pytest.approx(0.0, abs=0.05)


def test_a_malformed_boxes_file_is_refused_by_name(tmp_path):
    write_clip(tmp_path / "a", 6, boxes=[[0, 0, 10, 10]] * 5)
    with pytest.raises(ValueError, match="one box \\(or null\\) per frame"):
        load_landmark_clips([tmp_path], 3, 5, 0.0)


def test_a_clip_shorter_than_the_gap_is_refused_before_anything_is_read(tmp_path):
    write_clip(tmp_path / "long", 10)
    write_clip(tmp_path / "short", 3)
    with pytest.raises(ValueError, match="'short'.*3 frames, too short for --gap-min 3"):
        load_landmark_clips([tmp_path], 3, 40, 0.0)
    with pytest.raises(ValueError, match="gap-min 5 and --gap-max 4"):
        load_landmark_clips([tmp_path / "long"], 5, 4, 0.0)


@pytest.mark.parametrize("case,argv,needles", [
    ("clip shorter than the gap", ["--data", "{w}/data"],
     ["'short'", "3 frames, too short for --gap-min 3", "lower --gap-min"]),
    ("gap bounds reversed", ["--data", "{w}/data/long", "--gap-min", "2", "--gap-max", "1"],
     ["--gap-min 2 and --gap-max 1"]),
    ("missing VGG19 weights", ["--data", "{w}/data/long", "--vgg19-weights", "{w}/vgg19.pth"],
     ["VGG19 weights", "vgg19.pth", "do not exist", "--vgg19-weights off"]),
])
def test_bad_input_gets_one_error_and_writes_nothing(case, argv, needles, tmp_path_factory, tmp_path, capsys,
                                                     monkeypatch):
    from test_bad_inputs import _check

    world = tmp_path_factory.mktemp("world")
    write_clip(world / "data" / "long", 8)
    write_clip(world / "data" / "short", 3)
    base = ["train", "--model", "landmark-video-tiny", "--task", "landmark-autoencoding", "--steps", "1",
            "--no-progress"]
    _check(case, base + argv, needles, world, tmp_path, capsys, monkeypatch)


@pytest.mark.skipif(not (FACES / "fomm-driving-mp4" / "08.mp4").is_file(), reason="face clips not found in "
                    "../shared/data/face-video")
def test_video_files_give_pairs_through_the_platform_loader():
    train, held = load_landmark_clips([FACES / "fomm-driving-mp4" / "08.mp4"], 3, 40, 0.1)
    assert train[0].clip.kind == "video" and train[0].stop == 135 and held[0].stop == 150
    sample = LandmarkPairs(train, 64, 3, 40, seed=0)[100]
    assert sample["pixel_values_videos"].shape == (1, 2, 3, 64, 64)
    assert -1 <= float(sample["labels"].min()) and float(sample["labels"].max()) <= 1


def test_the_card_says_which_loss_trained_the_model():
    from adlr_hf.models.landmark_video.task_landmark_autoencoding import LandmarkAutoencodingTask

    task = LandmarkAutoencodingTask()
    plain = dict(task.card_rows({"frames": 6, "appearance_source": "both", "gap_min": 3, "gap_max": 40,
                                 "image_size": 128, "boxes": True, "perceptual": None}))
    assert plain["loss"].startswith("L1 + (1 - SSIM)") and plain["crop"] == "128² (boxes ± 60 px)"
    assert any("VGG19" in line for line in task.limitations({"frames": 6, "perceptual": None}))
    vgg = dict(task.card_rows({"frames": 6, "appearance_source": "temporal", "perceptual": "/w/vgg19.pth"}))
    assert vgg["loss"].startswith("VGG19 perceptual") and "`vgg19.pth`" in vgg["loss"]
    assert "LSGAN" not in plain["loss"] + vgg["loss"]
    gan = dict(task.card_rows({"frames": 6, "perceptual": None, "gan": {"weight": 0.5, "discriminators": 2}}))
    assert gan["loss"] == "L1 + (1 - SSIM) (no local VGG19 weights were given) + multi-scale LSGAN (2 discriminators, " \
                          "weight 0.5)"
