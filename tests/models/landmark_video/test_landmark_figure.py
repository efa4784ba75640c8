"""The card's landmark picture: a real frame with its landmarks drawn, the rendered maps in the landmarks' colours,
and the frame decoded from its own landmarks."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel

import adlr_hf  # noqa: F401 - registers the family
from adlr_hf.models.landmark_video.figures_landmark_video import (
    PANEL,
    landmark_colours,
    landmark_figure,
    rendered_maps_image,
)
from adlr_hf.registry import get_config

FRAMES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "face-video" / "fomm-driving-frames"


def test_a_rendered_map_has_its_landmark_colour_at_its_mean():
    mu = torch.tensor([[0.25, -0.5]])  # (x, y) -> pixel column 40, row 16 of a 64 x 64 grid (-1 + 2j/64)
    image = rendered_maps_image(mu, torch.eye(2)[None] * 1e-3, (64, 64))
    torch.testing.assert_close(image[:, 16, 40], landmark_colours(1)[0] * 2 - 1)
    assert float(image[:, 16, 40].sum()) > float(image[:, 0, 0].sum())  # the Cauchy profile falls off
    assert landmark_colours(8).unique(dim=0).shape[0] == 8  # one colour per landmark


def test_landmark_figure_of_a_real_frame(tmp_path):
    path = FRAMES / "04" / "000.png"
    if not path.is_file():
        pytest.skip(f"{path} is missing: the real face frames live in ../shared/data/face-video (see its SOURCE.md)")
    from adlr_hf.models.landmark_video.task_landmark_dynamics import square_frames

    torch.manual_seed(0)
    model = AutoModel.from_config(get_config("landmark-video-tiny")).eval()
    pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB")))
    frame = square_frames(pixels[None], model.config.image_size)[0]
    sheet = Image.open(io.BytesIO(landmark_figure(model, frame))).convert("RGB")
    assert sheet.size == (3 * PANEL, PANEL)
    with torch.no_grad():
        pose = model.encode_pose(frame[None])
        decoded = model.decode(model.encode_appearance(frame[None]), pose.mu, pose.covariance)[0]
    # The last landmark's dot is drawn last: its centre has its colour.
    k = model.config.num_landmarks
    x, y = ((pose.mu[0, -1] + 1) / 2 * PANEL).round().long().clamp(0, PANEL - 1).tolist()
    expected = tuple(int(round(255 * c)) for c in landmark_colours(k)[-1].tolist())
    assert sheet.getpixel((x, y)) == expected
    # The third panel is the decoded frame, upscaled with nearest neighbours.
    scale = PANEL // model.config.image_size
    third = torch.tensor(list(sheet.crop((2 * PANEL, 0, 3 * PANEL, PANEL)).getdata()), dtype=torch.float32)
    third = third.view(PANEL, PANEL, 3)[::scale, ::scale].permute(2, 0, 1)
    torch.testing.assert_close(third, ((decoded.clamp(-1, 1) + 1) * 127.5).round(), atol=1, rtol=0)
