"""`adlr-hf evaluate LANDMARK_MODEL --task landmark-interpolation` on a landmark model folder itself (interpolation
needs only the landmark model): real face clips (../shared/data/face-video, the first 6 frames at 64×64), the same
numbers as through a dynamics folder carrying that landmark model; prediction still needs a dynamics model; a folder
that is neither is one clear error."""

import json

import pytest
from PIL import Image

from models.landmark_video.face_clips import FACES, MISSING, untrained_dynamics_folder, write_face_clips

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=MISSING)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("landmark-eval")
    write_face_clips(root / "clips", ("04", "10"), frames=6)
    untrained_dynamics_folder(root / "dynamics").save_pretrained(root / "landmarks")
    return root


def evaluate(argv, out):
    from adlr_hf.cli import main

    assert main(["evaluate", *argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_interpolation_runs_on_a_landmark_model_folder(folders, tmp_path):
    argv = ["--task", "landmark-interpolation", "--data", str(folders / "clips"), "--gaps", "1", "3"]
    record = evaluate([str(folders / "landmarks"), *argv], tmp_path / "landmarks.json")
    assert record["task"] == "landmark-interpolation"
    assert record["settings"]["landmark_model"] == str(folders / "landmarks")
    metrics = record["metrics"]
    # gap 1: key frames 0, 2, 4 -> frames 1, 3 per clip; gap 3: key frames 0, 4 -> frames 1, 2, 3 per clip
    assert metrics["per_gap"]["gap1"]["num_frames"] == 2 * 2 and metrics["per_gap"]["gap3"]["num_frames"] == 2 * 3
    assert 0 < metrics["ssim"] <= 1 and metrics["frame_average_psnr"] > 15  # consecutive face frames are similar
    through_dynamics = evaluate([str(folders / "dynamics"), *argv], tmp_path / "dynamics.json")
    assert through_dynamics["settings"]["landmark_model"] == str(folders / "dynamics" / "landmark_model")
    assert through_dynamics["metrics"] == metrics  # same landmark model, same frames: the same numbers


def test_the_evaluations_listed_for_each_model(folders):
    from transformers import AutoConfig

    from adlr_hf.tasks import evaluations_for

    assert evaluations_for(AutoConfig.from_pretrained(folders / "landmarks")) == ["landmark-interpolation"]
    assert evaluations_for(AutoConfig.from_pretrained(folders / "dynamics")) == ["landmark-interpolation",
                                                                                  "landmark-prediction"]


def test_prediction_on_a_landmark_model_and_a_folder_that_is_neither_are_clear_errors(folders, tmp_path, capsys):
    from adlr_hf.cli import main

    out = tmp_path / "never.json"
    clips = str(folders / "clips")
    assert main(["evaluate", str(folders / "landmarks"), "--task", "landmark-prediction", "--data", clips,
                 "--horizon", "2", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a 'adlr_landmark_video' model" in err and "Evaluations that fit it: landmark-interpolation" in err
    (tmp_path / "empty").mkdir()  # no config.json: not a landmark model, nor a dynamics model carrying one
    assert main(["evaluate", str(tmp_path / "empty"), "--task", "landmark-interpolation", "--data", clips,
                 "--json", str(out)]) == 2
    assert ("is neither a landmark model nor a dynamics model carrying one in landmark_model/; pass --landmark-model "
            "DIR" in capsys.readouterr().err)
    from hub.hub_utils import write_tiny_gpt_folder

    write_tiny_gpt_folder(tmp_path / "gpt")  # another family's model
    assert main(["evaluate", str(tmp_path / "gpt"), "--task", "landmark-interpolation", "--data", clips,
                 "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--task landmark-interpolation evaluates" in err and "holds a 'adlr_megatron_gpt' model" in err
    assert not out.exists()


def test_update_card_records_the_interpolation_and_its_landmark_picture(folders, tmp_path):
    import shutil

    from huggingface_hub import ModelCard

    from adlr_hf.cli import main
    from adlr_hf.models.landmark_video.figures_landmark_video import PANEL

    folder = tmp_path / "landmarks"
    shutil.copytree(folders / "landmarks", folder)
    assert main(["evaluate", str(folder), "--task", "landmark-interpolation", "--data", str(folders / "clips"),
                 "--gaps", "1", "3", "--json", str(tmp_path / "out.json"), "--update-card"]) == 0
    assert "figures" not in json.loads((tmp_path / "out.json").read_text())  # the PNG is not in the JSON
    assert Image.open(folder / "landmarks.png").size == (3 * PANEL, PANEL)
    card = ModelCard.load(folder / "README.md")
    assert "](landmarks.png)" in card.text and "gaps=1,3" in card.text
    assert {r.metric_type for r in card.data.eval_results} >= {"psnr", "ssim"}
