"""The semantic-segmentation task through the one training loop on real CamVid images (a small tree cut from
../shared/data/camvid): the poly schedule and SGD defaults, the training-time mIoU against the metric module, bad
input named before any output, `adlr-hf train` + `adlr-hf evaluate` (multi-scale, flip) into the card's model-index,
and DeepSpeed and Accelerate runs with relaxation, class-uniform sampling and rlx_off_epoch that resume exactly."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dist_utils import run_ranks
from models.deeplabv3plus.seg_train_utils import seg_flags, write_small_camvid
from models.video_utils import cli_train

from adlr_hf.data.segmentation import read_label
from training.resume_utils import assert_same_run, run_then_resume


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return write_small_camvid(tmp_path_factory.mktemp("camvid"))


def test_poly_schedule_is_the_task_default():
    from adlr_hf.tasks import get_task
    from adlr_hf.training.schedule import lr_lambda

    assert get_task("semantic-segmentation").lr_schedule == "poly"
    factor = lr_lambda("poly", total_steps=10, warmup_steps=0, lr=1.0, min_lr=0.0, power=0.9)
    assert [factor(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5 ** 0.9, 0.0])
    linear = lr_lambda("linear", 10, 0, 1.0, 0.0)
    assert [lr_lambda("poly", 10, 0, 1.0, 0.0)(s) for s in range(11)] == [linear(s) for s in range(11)]


@pytest.mark.parametrize("flag, expected", [((), 1e-4), (("--weight-decay", "0.003"), 0.003)])
def test_sgd_momentum_and_the_task_weight_decay_unless_given(camvid, tmp_path, flag, expected):
    """The run's optimizer as `adlr_hf.train.run` builds it after `validate`: the reference's SGD (momentum 0.9,
    weight decay 1e-4 on every parameter) by default; --weight-decay overrides the task's value."""
    from transformers import AutoModelForSemanticSegmentation

    from adlr_hf.train import validate
    from adlr_hf.training.args import build_parser

    args = build_parser().parse_args(seg_flags(camvid, tmp_path / "run", engine="accelerate") + list(flag))
    assert args.weight_decay is None or flag
    _, config, _, task = validate(args, world=1)
    assert task.name == "semantic-segmentation" and args.weight_decay == expected
    model = AutoModelForSemanticSegmentation.from_config(config)
    optimizer = task.build_optimizer(model, args)
    assert isinstance(optimizer, torch.optim.SGD) and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["lr"]) == (0.9, expected, 1e-2)
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in model.parameters())


def test_other_tasks_keep_the_global_weight_decay():
    from adlr_hf.tasks import all_tasks
    from adlr_hf.training.args import build_parser

    assert build_parser().parse_args([]).weight_decay is None  # resolved per task by validate
    defaults = {task.name: task.weight_decay for task in all_tasks()}
    assert defaults.pop("semantic-segmentation") == 1e-4
    assert defaults and set(defaults.values()) == {0.01}


def test_card_settings_column_shows_scales_and_flip():
    from adlr_hf.hub.model_index import evaluation_section

    record = {"task": "semantic-segmentation", "data": "data/camvid", "split": "val", "recorded_at": "T",
              "settings": {"dataset": "camvid", "split": "val", "scales": [0.75, 1.0, 1.25], "flip": False,
                           "whole images": True},
              "metrics": {"mean_iou": 0.5, "overall_accuracy": 0.75, "mean_accuracy": 0.625}}
    text = evaluation_section([record])
    rows = [line for line in text.splitlines() if line.startswith("| semantic-segmentation | camvid (val) |")]
    assert len(rows) == 3 and all(row.endswith("| scales=0.75,1.0,1.25, flip=False | T |") for row in rows)
    lm = {**record, "task": "wikitext103", "settings": {"seq_len": 128, "stride": 64, "batch_size": 8, "tp": 1},
          "metrics": {"perplexity": 20.0}}
    assert "| seq_len=128, stride=64 |" in evaluation_section([lm])  # the text settings as before


def test_training_metric_equals_the_metric_module():
    from adlr_hf.metrics.mean_iou import MeanIoU
    from adlr_hf.tasks.semantic_segmentation import SegmentationMetric

    torch.manual_seed(0)
    metric = SegmentationMetric(num_labels=4)
    preds, refs = [], []
    for _ in range(3):
        logits = torch.randn(2, 4, 5, 6)
        labels = torch.randint(0, 4, (2, 5, 6))
        labels[:, 0] = 255
        metric.add_batch(SimpleNamespace(logits=logits), {"labels": labels})
        preds += list(logits.argmax(1).numpy())
        refs += list(labels.numpy())
    expected = MeanIoU().compute(predictions=preds, references=refs, num_labels=4, ignore_index=255)
    out = metric.compute()
    assert out["mean_iou"] == pytest.approx(expected["mean_iou"])
    assert out["pixel_accuracy"] == pytest.approx(expected["overall_accuracy"])


def test_bad_input_is_named_before_any_output(camvid, tmp_path, capsys):
    import re

    from adlr_hf.cli import main as cli

    def fails(argv, pattern):
        assert cli(["train", *argv]) == 2
        assert re.search(pattern, capsys.readouterr().err), pattern

    out = tmp_path / "run"
    fails([a for a in seg_flags(camvid, out) if a not in ("--dataset", "camvid")], "needs --dataset")
    fails(seg_flags(camvid, out, rlx_off_epoch=3), "add --relax-boundary")
    bad = tmp_path / "bad"
    write_small_camvid(bad, train=2, val=1)
    label = bad / "trainannot" / sorted(p.name for p in (bad / "trainannot").iterdir())[1]
    array = np.asarray(Image.open(label)).copy()
    array[0, 0] = 17
    Image.fromarray(array).save(label)
    fails(seg_flags(bad, out), rf"{label}.*values \[17\]")
    array[0, 0] = 0
    Image.fromarray(array[:-1]).save(label)
    fails(seg_flags(bad, out), r"is 120x90 but its label map .* is 120x89")
    Image.fromarray(array).save(label)
    val_label = next((bad / "valannot").iterdir())
    Image.fromarray(np.full((90, 120), 200, np.uint8)).save(val_label)
    fails(seg_flags(bad, out), rf"{val_label}.*values \[200\]")  # validation maps are checked too
    assert not out.exists()


def test_multiscale_flip_evaluation_averages_softmax_outputs():
    """A stand-in model whose logits mark the left half of any input as class 1 (else 0): with flip the two halves
    average to 0.5 each; at scale 0.5 the output is resized back to the input size."""
    from adlr_hf.tasks.semantic_segmentation import predict_probabilities

    class LeftHalf(torch.nn.Module):
        def forward(self, pixel_values):
            n, _, h, w = pixel_values.shape
            logits = torch.zeros(n, 2, h, w)
            logits[:, 1, :, : w // 2] = 30.0
            logits[:, 0, :, w // 2:] = 30.0
            return SimpleNamespace(logits=logits)

    x = torch.zeros(1, 3, 8, 12)
    plain = predict_probabilities(LeftHalf(), x)
    assert plain.shape == (1, 2, 8, 12) and plain[0, 1, :, :6].min() > 0.99 and plain[0, 1, :, 6:].max() < 0.01
    flipped = predict_probabilities(LeftHalf(), x, flip=True)
    torch.testing.assert_close(flipped, torch.full_like(flipped, 0.5), atol=1e-6, rtol=0)
    multi = predict_probabilities(LeftHalf(), x, scales=(0.5, 1.0))
    assert multi.shape == (1, 2, 8, 12)
    torch.testing.assert_close(multi.sum(1), torch.ones(1, 8, 12))
    assert multi[0, 1, :, :5].min() > 0.99 and multi[0, 1, :, 7:].max() < 0.01


def _evaluate_dp(rank, data, expected):
    import adlr_hf  # noqa: F401
    from transformers import AutoModelForSemanticSegmentation

    from adlr_hf.data.segmentation import SegmentationDataset, find_pairs
    from adlr_hf.parallel import init_parallel
    from adlr_hf.registry import get_config
    from adlr_hf.tasks.semantic_segmentation import evaluate_segmentation

    init_parallel(1)
    torch.manual_seed(0)
    model = AutoModelForSemanticSegmentation.from_config(get_config("deeplabv3plus-tiny"))
    metrics, per_class = evaluate_segmentation(model, SegmentationDataset(find_pairs(data, "camvid", "val")),
                                               batch_size=1)
    assert metrics == pytest.approx(expected[0]) and per_class == pytest.approx(expected[1])


@pytest.mark.slow
def test_evaluation_over_two_data_parallel_ranks_equals_one_process(camvid):
    from transformers import AutoModelForSemanticSegmentation

    from adlr_hf.data.segmentation import SegmentationDataset, find_pairs
    from adlr_hf.registry import get_config
    from adlr_hf.tasks.semantic_segmentation import evaluate_segmentation

    torch.manual_seed(0)
    model = AutoModelForSemanticSegmentation.from_config(get_config("deeplabv3plus-tiny"))
    expected = evaluate_segmentation(model, SegmentationDataset(find_pairs(camvid, "camvid", "val")), batch_size=3)
    assert expected[0]["num_images"] == 4
    run_ranks(_evaluate_dp, camvid, expected)


def test_the_dataset_class_names_replace_the_model_labels(camvid, tmp_path):
    """A 19-class Cityscapes-named model trained on CamVid: the task sets 11 classes and the dataset's names in
    id2label / label2id, so the saved model, the image-segmentation pipeline and the card name CamVid's classes."""
    import transformers
    from transformers import AutoModelForSemanticSegmentation

    from adlr_hf.data.segmentation import find_pairs
    from adlr_hf.models.deeplabv3plus.configuration_deeplabv3plus import CAMVID_CLASSES, CITYSCAPES_CLASSES
    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    config = get_config("deeplabv3plus-tiny", id2label=dict(enumerate(CITYSCAPES_CLASSES)), image_size=64)
    assert config.num_labels == 19 and config.label2id["bicycle"] == 18  # names given alone get their inverse
    args = build_parser().parse_args(seg_flags(camvid, tmp_path / "run"))
    task = get_task("semantic-segmentation")
    run = task.build(args, config, None, tmp_path / "run", True)
    names = find_pairs(camvid, "camvid", "train").class_names
    assert tuple(names) == CAMVID_CLASSES and len(names) == 11
    assert run.config.num_labels == 11 and run.config.id2label == dict(enumerate(names))
    assert run.config.label2id == {name: i for i, name in enumerate(names)}
    assert ("classes", "11: " + ", ".join(names)) in task.card_rows(run.extra_info)

    torch.manual_seed(0)
    model = AutoModelForSemanticSegmentation.from_config(run.config).eval()
    assert model.classifier.out_channels == 11
    model.save_pretrained(tmp_path / "model")
    run.save_processor(tmp_path / "model")
    saved = transformers.AutoConfig.from_pretrained(tmp_path / "model")
    assert saved.id2label == dict(enumerate(names)) and saved.label2id == run.config.label2id
    image = Image.open(sorted((camvid / "val").iterdir())[0]).convert("RGB")
    pipe = transformers.pipeline("image-segmentation", model=str(tmp_path / "model"))
    with torch.no_grad():
        logits = model(**pipe.image_processor(image, return_tensors="pt")).logits
    size = (image.height, image.width)
    predicted = torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0].argmax(0)
    assert [r["label"] for r in pipe(image)] == [names[int(c)] for c in predicted.unique()]


def test_max_skip_adds_propagated_pairs_and_their_centroids(camvid, tmp_path):
    """Propagated pairs (`adlr-hf propagate`'s layout: class ids with 255 = ignore, stems ending in _fwd<k> /
    _bwd<k>) within ±K join the training set; class-uniform centroids cover them; their labels are read as class
    ids, not CamVid's ids."""
    import shutil

    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    data = tmp_path / "camvid"
    shutil.copytree(camvid, data)
    names = sorted(p.name for p in (data / "train").iterdir())[:2]
    propagated = tmp_path / "propagated"
    for name in names:
        stem = Path(name).stem
        for offset in ("bwd2", "bwd1", "fwd1", "fwd2"):  # the names `adlr-hf propagate` writes
            shutil.copy(data / "train" / name, write_dir(propagated / "images") / f"{stem}_{offset}.png")
            label = np.asarray(Image.open(data / "trainannot" / name)).copy()
            label[label == 11] = 255  # the folder layout stores class ids
            Image.fromarray(label).save(write_dir(propagated / "labels") / f"{stem}_{offset}.png")
    args = build_parser().parse_args(seg_flags(data, tmp_path / "run", max_skip=1, class_uniform=0.5,
                                               propagated=propagated))
    task, config = get_task("semantic-segmentation"), get_config("deeplabv3plus-tiny")
    task.check_args(args, config)
    run = task.build(args, config, None, tmp_path / "run", True)
    assert len(run.train) == 8 + 4 and run.extra_info["propagated_images"] == 4
    assert sorted(Path(p).stem for p in run.train.pairs.images[8:]) == sorted(
        f"{Path(n).stem}_{o}" for n in names for o in ("bwd1", "fwd1"))
    pairs = run.train.pairs
    assert pairs.lookup_for(0)[11] == 255 and pairs.lookup_for(8)[11] == -1 and pairs.lookup_for(8)[255] == 255
    augmented = {i for points in run.train.class_uniform.centroids.values() for i, _ in points if i >= 8}
    assert augmented == {8, 9, 10, 11}
    args = build_parser().parse_args(seg_flags(data, tmp_path / "run", max_skip=3))  # default: --data/propagated
    with pytest.raises(FileNotFoundError, match=f"{data / 'propagated'}/images"):
        task.check_args(args, config)


def test_max_skip_trains_on_what_adlr_hf_propagate_writes(tmp_path):
    """Real CamVid frames in the folder layout with frame sequences, propagated ±2 steps by a zero-motion SDC-Net
    reconstruction model; --max-skip 1 trains on the ±1 pairs, whose labels are the labelled frame's."""
    from adlr_hf.data.video_propagation import propagate_dataset
    from adlr_hf.models.sdcnet import SDCNet2DRecon
    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    from models.deeplabv3plus.seg_data_utils import camvid_root

    source, data = camvid_root(), tmp_path / "data"
    names = sorted(p.name for p in (source / "train").iterdir())[:2]
    for folder in ("images", "labels"):
        write_dir(data / folder)
    (data / "classes.txt").write_text("\n".join(f"c{i}" for i in range(11)) + "\n")
    for name in names:
        stem = Path(name).stem
        image = Image.open(source / "train" / name).resize((96, 72), Image.BICUBIC)
        label = np.asarray(Image.open(source / "trainannot" / name).resize((96, 72), Image.NEAREST)).copy()
        label[label == 11] = 255
        image.save(data / "images" / name)
        Image.fromarray(label).save(data / "labels" / name)
        for frame in ("0000_a.png", "0000_b.png", name, "9999_a.png", "9999_b.png"):  # t-2 .. t+2 by name order
            image.save(write_dir(data / "sequences" / stem) / frame)
    torch.manual_seed(0)
    model = SDCNet2DRecon(get_config("sdcnet2d-recon", base_width=8))
    with torch.no_grad():  # zero motion
        model.final_flow.weight.zero_()
        model.final_flow.bias.zero_()
    model.config.flow_mean = [0.0, 0.0]
    model.save_pretrained(tmp_path / "sdc")
    propagate_dataset(tmp_path / "sdc", data, tmp_path / "propagated", steps=2, device="cpu")
    flags = seg_flags(data, tmp_path / "run", max_skip=1, propagated=tmp_path / "propagated")
    args = build_parser().parse_args([*flags, "--dataset", "folder"])
    task, config = get_task("semantic-segmentation"), get_config("deeplabv3plus-tiny")
    task.check_args(args, config)
    run = task.build(args, config, None, tmp_path / "run", True)
    assert len(run.train) == 2 + 4 and run.extra_info["propagated_images"] == 4
    for index in range(2, 6):
        stem = Path(run.train.pairs.images[index]).stem
        assert stem.endswith(("_fwd1", "_bwd1"))
        own = np.asarray(Image.open(data / "labels" / f"{stem.rsplit('_', 1)[0]}.png"))
        np.testing.assert_array_equal(read_label(run.train.pairs.labels[index], run.train.pairs.lookup_for(index)),
                                      own)


def write_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.slow
def test_train_then_evaluate_multiscale_into_the_card(camvid, tmp_path):
    from transformers import AutoModelForSemanticSegmentation

    from adlr_hf.cli import main as cli
    from adlr_hf.hub import publish

    run = tmp_path / "run"
    run_ranks(cli_train, seg_flags(camvid, run, steps=4, relax_boundary=True), world_size=1)
    info = json.loads((run / "run_info.json").read_text())
    assert (info["unit"], info["images"], info["crop_size"], info["relax_boundary"]) == ("images", 8, [48, 48], True)
    assert info["train_images"] == 8 and info["held_out_images"] == 4 and 0 <= info["eval_mean_iou"] <= 1
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()
           if json.loads(line)["split"] == "train"]
    assert lrs == pytest.approx([1e-2 * (1 - s / 4) for s in range(1, 5)])  # poly (exponent 1) after each step
    model = AutoModelForSemanticSegmentation.from_pretrained(run / "model")
    assert model.config.id2label[0] == "Sky" and model.config.num_labels == 11
    assert cli(["evaluate", str(run / "model"), "--task", "semantic-segmentation", "--data", str(camvid),
                "--dataset", "camvid", "--split", "val", "--scales", "0.5,1.0", "--eval-flip", "--update-card",
                "--json", str(tmp_path / "eval.json")]) == 0
    record = json.loads((tmp_path / "eval.json").read_text())
    values = record["metrics"]
    assert values["num_images"] == 4 and record["settings"]["scales"] == [0.5, 1.0] and record["settings"]["flip"]
    ious = [v for v in record["per_class_iou"].values() if v is not None]
    assert values["mean_iou"] == pytest.approx(sum(ious) / len(ious))
    card = (run / "model" / "README.md").read_text()
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]
    shown = {m["type"]: m["value"] for m in index["metrics"]}
    assert shown["mean_iou"] == pytest.approx(values["mean_iou"]) and index["task"]["type"] == "image-segmentation"
    rows = [line for line in card.splitlines() if line.startswith("| semantic-segmentation |")]
    assert len(rows) == 3 and all("| scales=0.5,1.0, flip=True |" in row for row in rows)  # the settings column
    published = publish(run, tmp_path / "published", measure_inference=False).joinpath("README.md").read_text()
    assert "| classes | 11: Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car, Pedestrian, Bicyclist |" \
        in published  # the card's training section names the dataset's classes


@pytest.mark.slow
def test_deepspeed_and_accelerate_resume_exactly(camvid, tmp_path):
    """8 training images in batches of 2 over DP=2: 2 steps an epoch, so the resumed run (from step 2) replays
    epoch 1's class-uniform plan and crops and epoch 2's reduced-border relaxation target (rlx_off_epoch 1)."""
    extra = dict(relax_boundary=True, class_uniform=0.5, rlx_off_epoch=1, save_every=2, eval_every=2)
    ds, acc = tmp_path / "ds", tmp_path / "acc"
    run_ranks(run_then_resume, [(seg_flags(camvid, ds, steps=6, engine="deepspeed", **extra), 2),
                                (seg_flags(camvid, acc, steps=6, engine="accelerate", **extra), 2)])
    for run, engine in ((ds, "deepspeed"), (acc, "accelerate")):
        assert_same_run(run, run.with_name(run.name + "-resumed"))
        info = json.loads((run / "run_info.json").read_text())
        assert (info["dp"], info["engine"], info["class_uniform"]) == (2, engine, 0.5)
        assert info["eval_mean_iou"] >= 0
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records if r["split"] == "eval"] == [2, 4, 6]
        lrs = [r["lr"] for r in records if r["split"] == "train"]
        assert lrs == pytest.approx([1e-2 * (1 - s / 6) for s in range(1, 7)])  # the task's default: poly
