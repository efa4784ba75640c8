"""PD-ResNet through the one training loop on real CIFAR-10 JPEGs: TP=2 under DeepSpeed and TP=1 × DP=2 under
Accelerate (2 gloo ranks), then the export loads with the Auto class and the pipeline, `adlr-hf evaluate --task
image-classification` records top-1/top-5 in the card, and `adlr-hf publish` writes a card whose model-index holds
the accuracy and whose systems table holds counted FLOPs per image and images/s."""

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))

from dist_utils import run_ranks  # noqa: E402
from train_utils import CIFAR, cifar_subset, run_all, train_losses  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CIFAR / "train").is_dir(),
                       reason=f"the CIFAR-10 JPEG subset is not at {CIFAR} (../shared/data of the checkout)"),
]


def _flags(data: Path, out: Path, engine: str, tp: int, steps: int = 14) -> list[str]:
    return ["--model", "pd-resnet-tiny", "--data", str(data), "--steps", str(steps), "--micro-batch-size", "20",
            "--lr", "3e-3", "--lr-schedule", "constant", "--weight-decay", "0", "--seed", "7", "--out", str(out),
            "--no-progress", "--engine", engine, "--tp", str(tp), "--eval-split", "test"]


def test_pd_resnet_trains_under_both_engines_then_evaluates_and_publishes(tmp_path):
    from transformers import AutoModelForImageClassification, pipeline

    import adlr_hf  # noqa: F401 - registers the Auto classes
    from adlr_hf.cli import main as cli

    data = cifar_subset(tmp_path / "cifar")
    ds, acc = tmp_path / "ds_tp2", tmp_path / "acc_dp2"
    # One TP degree per process group: two spawns. The TP=2 run also leaves a checkpoint (one shard per TP rank).
    run_ranks(run_all, [_flags(data, ds, "deepspeed", tp=2) + ["--save-every", "14"]])
    run_ranks(run_all, [_flags(data, acc, "accelerate", tp=1)])

    for run, tp, dp, engine in ((ds, 2, 1, "deepspeed"), (acc, 1, 2, "accelerate")):
        losses = train_losses(run)
        assert len(losses) == 14
        assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.05, f"{engine}: loss did not fall: {losses}"
        info = json.loads((run / "run_info.json").read_text())
        assert (info["tp"], info["dp"], info["engine"], info["unit"]) == (tp, dp, engine, "images")
        assert info["images_per_second"] > 0 and 0.0 <= info["eval_accuracy"] <= 1.0
        model = AutoModelForImageClassification.from_pretrained(run / "model")
        assert type(model).__name__ == "PDResNetForImageClassification"
        assert model.config.id2label[3] == "cat"
        image = next((data / "test" / "ship").glob("*.jpg"))
        top = pipeline("image-classification", model=str(run / "model"))(str(image), top_k=3)
        assert len(top) == 3 and {r["label"] for r in top} <= set(model.config.id2label.values())

    # The TP=2 checkpoint (channel-split weights and batch-norm running statistics) exports to the live model's save.
    from safetensors.torch import load_file

    from adlr_hf.training.export import export_checkpoint

    export_checkpoint(ds / "checkpoints" / "step_00000014", tmp_path / "exported", ds / "model")
    exported, saved = load_file(tmp_path / "exported" / "model.safetensors"), load_file(ds / "model" /
                                                                                         "model.safetensors")
    assert exported.keys() == saved.keys() and all(torch.equal(exported[k], saved[k]) for k in saved)
    assert saved["model.layer1.0.bn1.running_mean"].shape == (8,)  # gathered: all channels
    assert (tmp_path / "exported" / "preprocessor_config.json").is_file()

    # Evaluate the TP=2 run's export on the held-out split, record it in the folder's card, then publish the run.
    record_path = tmp_path / "eval.json"
    assert cli(["evaluate", str(ds / "model"), "--task", "image-classification", "--data", str(data),
                "--split", "test", "--batch-size", "32", "--json", str(record_path), "--update-card"]) == 0
    record = json.loads(record_path.read_text())
    metrics = record["metrics"]
    assert metrics["num_examples"] == 100 and 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0
    # The loop's own evaluation saw the same 100 test images with the same model: same top-1.
    assert metrics["top1"] == pytest.approx(json.loads((ds / "run_info.json").read_text())["eval_accuracy"], abs=1e-6)

    out = tmp_path / "published"
    assert cli(["publish", str(ds), str(out)]) == 0
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["pipeline_tag"] == "image-classification" and "arxiv:1811.11718" in meta["tags"]
    results = meta["model-index"][0]["results"]
    values = {m["type"]: m["value"] for r in results for m in r["metrics"]}
    assert values["accuracy"] == pytest.approx(metrics["top1"]) and values["top_5_accuracy"] == pytest.approx(
        metrics["top5"])
    assert results[0]["dataset"]["name"] == "cifar" and results[0]["dataset"]["split"] == "test"
    systems = json.loads((out / "adlr_hf_systems.json").read_text())
    image = systems["image"]
    assert image["flops"]["input_shape"] == [3, 32, 32]
    assert 0 < image["flops"]["inference_flops_per_image"] < image["flops"]["training_flops_per_image"]
    assert systems["training"]["images_per_second"] > 0 and image["inference"]["images_per_second"] > 0
    assert systems["parameters"] == sum(p.numel() for p in model.parameters())
    for text in ("Partial Convolution based Padding", "images/s", "FLOPs per image", "Top-1 accuracy",
                 "NVIDIA/partialconv", "training images"):
        assert text in card, text
    assert "tokens/s" not in card and "perplexity" not in card.lower()
    published = pipeline("image-classification", model=str(out))(str(image_path := next(
        (data / "test" / "cat").glob("*.jpg"))))
    assert published and image_path.exists()
