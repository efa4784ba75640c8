"""A landmark-dynamics checkpoint exported (`training.export.export_checkpoint`, what `adlr-hf publish
RUN/checkpoints/step_N` runs) carries the landmark model the run saved in RUN/config/landmark_model/, so the export
alone evaluates and publishes; and the landmark evaluations take the run folder itself (RUN/model and its
landmark_model/). One tiny run (2 steps, a checkpoint at step 2) on real face clips (../shared/data/face-video)."""

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
def run(tmp_path_factory):
    """Two real clips (first 8 frames at 64×64), a tiny landmark model, 2 steps of landmark-dynamics with a
    checkpoint at step 2, in a fresh process."""
    from transformers import AutoModel

    from adlr_hf import get_config

    root = tmp_path_factory.mktemp("dynamics-export")
    for clip in ("04", "08"):
        (root / "clips" / clip).mkdir(parents=True)
        for i in range(8):
            Image.open(FACES / clip / f"{i:03d}.png").convert("RGB").resize((64, 64), Image.BILINEAR).save(
                root / "clips" / clip / f"{i:03d}.png")
    torch.manual_seed(0)
    AutoModel.from_config(get_config("landmark-video-tiny")).save_pretrained(root / "landmarks")
    cmd = [sys.executable, "-m", "adlr_hf.train", "--model", "landmark-dynamics-tiny", "--task", "landmark-dynamics",
           "--init-from", str(root / "landmarks"), "--data", str(root / "clips"), "--past-frames", "2",
           "--future-frames", "2", "--steps", "2", "--save-every", "2", "--micro-batch-size", "2",
           "--eval-fraction", "0.3", "--seed", "7", "--out", str(root / "run"), "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def same_weights(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def evaluate(argv, out):
    from adlr_hf.cli import main

    assert main(["evaluate", *argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_an_exported_checkpoint_carries_the_landmark_model_and_evaluates_alone(run, tmp_path):
    from transformers import AutoModel

    from adlr_hf.training.export import export_checkpoint

    checkpoint = next((run / "run" / "checkpoints").glob("step_*"))
    assert (run / "run" / "config" / "landmark_model" / "config.json").is_file()  # saved when the run started
    (run / "run" / "config" / "notes").mkdir(exist_ok=True)  # a sub-folder that is not a saved model stays behind
    (run / "run" / "config" / "notes" / "todo.txt").write_text("not part of the model")
    out = export_checkpoint(checkpoint, tmp_path / "export")
    assert not (out / "notes").exists()
    assert same_weights(AutoModel.from_pretrained(out / "landmark_model"), AutoModel.from_pretrained(run / "landmarks"))
    assert same_weights(AutoModel.from_pretrained(out), AutoModel.from_pretrained(run / "run" / "model"))
    argv = ["--task", "landmark-prediction", "--data", str(run / "clips"), "--horizon", "2"]
    exported = evaluate([str(out), *argv], tmp_path / "export.json")
    assert exported["settings"]["landmark_model"] == str(out / "landmark_model")
    final = evaluate([str(run / "run" / "model"), *argv], tmp_path / "final.json")
    assert exported["metrics"] == final["metrics"]  # the step-2 checkpoint is the final model


def test_publish_of_a_checkpoint_carries_the_landmark_model(run, tmp_path):
    from transformers import AutoModel

    from adlr_hf.hub.publish import publish

    checkpoint = next((run / "run" / "checkpoints").glob("step_*"))
    out = publish(checkpoint, tmp_path / "published", measure_inference=False)
    assert same_weights(AutoModel.from_pretrained(out / "landmark_model"), AutoModel.from_pretrained(run / "landmarks"))


def test_the_evaluations_take_the_run_folder(run, tmp_path):
    from adlr_hf.models.landmark_video.evaluation_landmark_video import resolve_landmark_folder

    folder = run / "run"
    assert resolve_landmark_folder(folder) == folder / "model" / "landmark_model"
    for task, extra in (("landmark-prediction", ["--horizon", "2"]), ("landmark-interpolation", ["--gaps", "1"])):
        argv = ["--task", task, "--data", str(run / "clips"), *extra]
        through_run = evaluate([str(folder), *argv], tmp_path / f"{task}-run.json")
        through_model = evaluate([str(folder / "model"), *argv], tmp_path / f"{task}-model.json")
        assert through_run["settings"]["landmark_model"] == str(folder / "model" / "landmark_model")
        assert through_run["metrics"] == through_model["metrics"]
