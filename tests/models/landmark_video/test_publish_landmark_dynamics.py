"""`adlr-hf publish` of a trained (tiny) landmark-dynamics run carries the landmark model the export saved beside
itself (`landmark_model/`), so the published folder alone runs the `landmark-prediction` evaluation and the
`landmark-video` pipeline's prediction (no --landmark-model)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from models.video_utils import SHARED_DATA

FACES = SHARED_DATA / "face-video" / "fomm-driving-frames"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"real face frames not found at {FACES} (../shared/data of the "
                                                  "checkout is absent)"),
]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Two real clips (first 10 frames at 64×64), a tiny landmark model, 2 training steps of landmark-dynamics in a
    fresh process, and the run published."""
    from transformers import AutoModel

    from adlr_hf import get_config
    from adlr_hf.hub.publish import publish

    root = tmp_path_factory.mktemp("dynamics-publish")
    for clip in ("04", "08"):
        (root / "clips" / clip).mkdir(parents=True)
        for i in range(10):
            Image.open(FACES / clip / f"{i:03d}.png").convert("RGB").resize((64, 64), Image.BILINEAR).save(
                root / "clips" / clip / f"{i:03d}.png")
    torch.manual_seed(0)
    AutoModel.from_config(get_config("landmark-video-tiny")).save_pretrained(root / "landmarks")
    cmd = [sys.executable, "-m", "adlr_hf.train", "--model", "landmark-dynamics-tiny", "--task", "landmark-dynamics",
           "--init-from", str(root / "landmarks"), "--data", str(root / "clips"), "--past-frames", "2",
           "--future-frames", "2", "--steps", "2", "--micro-batch-size", "2", "--eval-fraction", "0.3",
           "--seed", "7", "--out", str(root / "run"), "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = publish(root / "run", root / "published", measure_inference=False)
    return root, out


def test_published_dynamics_carries_its_landmark_model(published):
    from transformers import AutoModel

    root, out = published
    carried = AutoModel.from_pretrained(out / "landmark_model")
    original = AutoModel.from_pretrained(root / "landmarks")
    assert carried.config.model_type == "adlr_landmark_video"
    assert carried.state_dict().keys() == original.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(carried.state_dict().values(), original.state_dict().values()))
    assert not (out / "landmark_model" / "README.md").exists()  # copied as saved, not published on its own


def test_prediction_evaluation_and_pipeline_run_from_the_published_folder(published, tmp_path):
    from transformers import AutoModel, pipeline

    from adlr_hf.cli import main

    root, out = published
    assert main(["evaluate", str(out), "--task", "landmark-prediction", "--data", str(root / "clips"),
                 "--horizon", "3", "--json", str(tmp_path / "pred.json")]) == 0
    record = json.loads((tmp_path / "pred.json").read_text())
    assert record["settings"]["landmark_model"] == str(out / "landmark_model")
    assert record["metrics"]["num_windows"] == 2 * 2 and len(record["metrics"]["per_step"]) == 3
    assert record["metrics"]["psnr"] > 0
    lv = pipeline("landmark-video", model=str(out))
    images = lv(str(root / "clips" / "04"), mode="predict", num_future_frames=2)
    assert len(images) == 2 and images[0].size == (64, 64)
    assert lv.landmark_model().config.model_type == "adlr_landmark_video"
    landmarks = AutoModel.from_pretrained(root / "landmarks")
    assert torch.equal(next(iter(lv.landmark_model().state_dict().values())).cpu(),
                       next(iter(landmarks.state_dict().values())))
