"""`adlr-hf evaluate --task image-classification`: top-1/top-5 through the topk_accuracy metric, classes matched by
name, clear errors before any model is loaded, and the record in the model card's model-index."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from adlr_hf import PDResNetForImageClassification, PDResNetImageProcessor, get_config
from adlr_hf.evaluation import IMAGE_TASK, evaluate_image_model_dir

CLASSES = ["cat", "dog", "frog"]


def _image_folder(root, classes, per_class=3, split="test", seed=0):
    rng = np.random.default_rng(seed)
    for name in classes:
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    config = get_config("pd-resnet-tiny", num_labels=len(CLASSES), id2label=dict(enumerate(CLASSES)),
                        label2id={c: i for i, c in enumerate(CLASSES)})
    PDResNetForImageClassification(config).eval().save_pretrained(folder)
    PDResNetImageProcessor.for_config(config).save_pretrained(folder)
    return folder


def _direct_predictions(model_dir, data, classes):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    hits = 0
    total = 0
    for name in classes:
        for path in sorted((data / "test" / name).iterdir()):
            with torch.no_grad():
                logits = model(**processor(images=Image.open(path).convert("RGB"), return_tensors="pt")).logits
            hits += int(logits.argmax(-1).item() == CLASSES.index(name))
            total += 1
    return hits / total, total


def test_top1_equals_the_models_own_argmax_and_classes_match_by_name(model_dir, tmp_path):
    data = _image_folder(tmp_path / "data", ["dog", "frog"])  # a subset of the model's classes: ids 1 and 2
    result = evaluate_image_model_dir(model_dir, data, split="test", batch_size=4, progress=False)
    assert result["task"] == IMAGE_TASK and result["split"] == "test"
    expected, total = _direct_predictions(model_dir, data, ["dog", "frog"])
    assert result["metrics"] == {"top1": pytest.approx(expected), "top5": 1.0, "num_examples": total}


def test_bad_inputs_fail_before_loading_the_model(model_dir, tmp_path):
    data = _image_folder(tmp_path / "data", ["cat", "horse"])
    with pytest.raises(ValueError, match=r"\['horse'\] are not among the model's labels"):
        evaluate_image_model_dir(model_dir, data)
    with pytest.raises(ValueError, match=r"split 'val' is not in .*its splits are \['test'\]"):
        evaluate_image_model_dir(model_dir, data, split="val")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_image_model_dir(model_dir, tmp_path / "missing")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        evaluate_image_model_dir(bare, data)
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluate_image_model_dir(model_dir, data, batch_size=0)


def test_cli_records_top1_and_top5_in_the_model_index(model_dir, tmp_path):
    import shutil

    from adlr_hf.cli import main as cli

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    data = _image_folder(tmp_path / "my-images", CLASSES)
    out = tmp_path / "eval.json"
    assert cli(["evaluate", str(folder), "--task", "image-classification", "--data", str(data), "--json", str(out),
                "--update-card", "--batch-size", "5"]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    meta = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "image-classification"
    assert result["dataset"] == {"name": "my-images", "type": "my-images", "split": "test"}
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values == {"accuracy": pytest.approx(metrics["top1"]), "top_5_accuracy": 1.0}
    assert cli(["evaluate", str(folder), "--task", "image-classification", "--data", str(tmp_path / "nope")]) == 2
