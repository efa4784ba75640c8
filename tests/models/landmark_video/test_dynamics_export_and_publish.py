"""A landmark-dynamics run carries the landmark model it runs with: `adlr-hf publish` of the run and of a checkpoint
(`training.export.export_checkpoint`, what `adlr-hf publish RUN/checkpoints/step_N` runs) copy the landmark model
the run saved in RUN/config/landmark_model/, so the published folder or the export alone runs the evaluations and
the `landmark-video` pipeline (no --landmark-model); and the landmark evaluations take the run folder itself
(RUN/model and its landmark_model/). One tiny run (2 steps, a checkpoint at step 2) on real face clips
(../shared/data/face-video)."""

import json

import pytest
import torch

from models.landmark_video.face_clips import FACES, MISSING, tiny_dynamics_run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not FACES.is_dir(), reason=MISSING)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_dynamics_run(tmp_path_factory.mktemp("dynamics-run"))


@pytest.fixture(scope="module")
def published(run, tmp_path_factory):
    from adlr_hf.hub.publish import publish

    return run, publish(run / "run", tmp_path_factory.mktemp("dynamics-publish") / "published",
                        measure_inference=False)


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
