"""The relationship-detection task through the one training loop on a slice of the real VRD annotations: PredCls with
the visual module off (no images) and the contrastive losses on; the semantic module starts from the training
triplets' frequency table; `adlr-hf train` then `adlr-hf evaluate --task relationship-detection` into the card's
model-index; DeepSpeed and Accelerate (DP=2) each resume exactly (losses, Recall@K evaluations, weights)."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from dist_utils import run_ranks
from models.video_utils import cli_train
from training.resume_utils import assert_same_run, run_then_resume

VRD = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vrd"
pytestmark = pytest.mark.skipif(not (VRD / "annotations_train.json").is_file(),
                                reason=f"the VRD annotations are not at {VRD} (../shared/data of the checkout)")


def vrd_slice(folder: Path, train: int = 16, test: int = 6) -> Path:
    """The first images with relations of each real split, with the real vocabularies."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        annotations = json.loads((VRD / f"annotations_{split}.json").read_text())
        keys = [k for k, v in annotations.items() if v][:count]
        (folder / f"annotations_{split}.json").write_text(json.dumps({k: annotations[k] for k in keys}))
    for name in ("objects.json", "predicates.json"):
        (folder / name).write_text((VRD / name).read_text())
    return folder


@pytest.fixture(scope="module")
def vrd(tmp_path_factory):
    return vrd_slice(tmp_path_factory.mktemp("vrd"))


def flags(data, out, steps, **extra):
    argv = ["--model", "reldn-vrd-predcls-novisual", "--data", str(data), "--dataset", "vrd", "--mode", "predcls",
            "--steps", str(steps), "--micro-batch-size", "2", "--lr", "1e-3", "--seed", "7", "--out", str(out),
            "--no-progress", "--set", "use_contrastive_losses=true", "--eval-every", "3"]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def test_the_task_builds_the_model_with_the_frequency_table_of_the_training_triplets(vrd, tmp_path):
    from adlr_hf.models.reldn.frequency_reldn import frequency_table
    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    task = get_task("relationship-detection")
    args = build_parser().parse_args(flags(vrd, tmp_path / "run", 1))
    config = get_config("reldn-vrd-predcls-novisual")
    task.check_args(args, config)
    run = task.build(args, config, None, tmp_path, True)
    model = task.build_model(run, None)
    assert len(run.train) == 16 and len(run.eval) == 6 and run.extra_info["eval_split"] == "test"
    assert model.config.predicate_names[9] == "above" and model.config.num_object_classes == 100
    # independent count: the slice's triplets, background = overlapping GT box pairs + 1
    raw = json.loads((vrd / "annotations_train.json").read_text())
    triplets = {(r["subject"]["category"], r["object"]["category"], r["predicate"], json.dumps(r, sort_keys=True))
                for rels in raw.values() for r in rels}
    counts = {}
    for s, o, p, _ in triplets:
        counts[(s, o, p)] = counts.get((s, o, p), 0) + 1
    table = run.frequency_table.view(100, 100, 71)
    for s, o in {(a, b) for a, b, _ in counts}:
        foreground = table[s, o, 1:].double().exp() - 1e-3  # log(count / total + 1e-3) -> count / total
        want = torch.zeros(70, dtype=torch.float64)
        for (a, b, q), c in counts.items():
            if (a, b) == (s, o):
                want[q] = c
        assert torch.allclose(foreground / foreground.sum(), want / want.sum(), atol=1e-5)
    weights = dict(model.named_parameters())
    semantic = next(v for k, v in weights.items() if "semantic" in k or "frequency" in k)
    assert torch.equal(semantic.detach().view(-1, 71), run.frequency_table.view(-1, 71).to(semantic.dtype))
    assert not torch.equal(run.frequency_table, frequency_table([], 100, 70))


def test_bad_task_arguments_are_refused_before_anything_runs(vrd, tmp_path):
    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    task = get_task("relationship-detection")
    with pytest.raises(ValueError, match="reads images: pass --images"):
        task.check_args(build_parser().parse_args(flags(vrd, tmp_path / "r", 1)), get_config("reldn-vrd"))
    with pytest.raises(FileNotFoundError, match="no train split for --dataset oi"):
        args = build_parser().parse_args(flags(vrd, tmp_path / "r", 1) + ["--dataset", "oi"])
        task.check_args(args, get_config("reldn-vrd-predcls-novisual"))
    with pytest.raises(ValueError, match="is not a split"):
        args = build_parser().parse_args(flags(vrd, tmp_path / "r", 1) + ["--eval-split", "val"])
        task.check_args(args, get_config("reldn-vrd-predcls-novisual"))


@pytest.mark.slow
def test_train_then_evaluate_into_the_card(vrd, tmp_path):
    from adlr_hf.cli import main as cli

    run = tmp_path / "run"
    run_ranks(cli_train, flags(vrd, run, 3), world_size=1)
    info = json.loads((run / "run_info.json").read_text())
    assert (info["dataset"], info["mode"], info["train_images"], info["images"]) == ("vrd", "predcls", 16, 6)
    assert 0 <= info["eval_R@20"] <= info["eval_R@50"] <= info["eval_R@100"] <= 1 and info["eval_R@100"] > 0
    assert cli(["evaluate", str(run / "model"), "--task", "relationship-detection", "--data", str(vrd),
                "--update-card", "--json", str(tmp_path / "eval.json")]) == 0
    values = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert values["num_images"] == 6 and values["R@50"] <= values["R@50_all"]
    # the late fusion's pieces: spatial and semantic only, shares summing to 1
    assert values["contribution_share_visual"] == 0 and values["contribution_share_spatial"] > 0
    assert sum(values[f"contribution_share_{m}"] for m in ("visual", "spatial", "semantic", "subject",
                                                           "object")) == pytest.approx(1)
    card = (run / "model" / "README.md").read_text()
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]
    shown = {m["type"]: m["value"] for m in index["metrics"]}
    assert shown["recall@50"] == pytest.approx(values["R@50"]) and "contribution_share_semantic" in shown


@pytest.mark.slow
def test_deepspeed_and_accelerate_resume_exactly(vrd, tmp_path):
    ds, acc = tmp_path / "ds", tmp_path / "acc"
    # 16 training images in DP=2 batches of 2 per rank: epoch 1 starts at step 5, so the resumed steps 4..6 cross it
    cases = [(flags(vrd, ds, 6, engine="deepspeed", save_every=3), 3),
             (flags(vrd, acc, 6, engine="accelerate", save_every=3), 3)]
    run_ranks(run_then_resume, cases)
    for run, engine in ((ds, "deepspeed"), (acc, "accelerate")):
        assert_same_run(run, run.with_name(run.name + "-resumed"))
        info = json.loads((run / "run_info.json").read_text())
        assert (info["engine"], info["dp"], info["images"]) == (engine, 2, 24)
        assert info["eval_R@100"] > 0


def write_openimages(folder: Path) -> Path:
    """Two splits of a made-up OpenImages VRD csv (normalised boxes, MIDs), 6 and 4 images."""
    import random

    rng = random.Random(0)
    header = "ImageID,LabelName1,LabelName2,XMin1,XMax1,YMin1,YMax1,XMin2,XMax2,YMin2,YMax2,RelationshipLabel\n"
    folder.mkdir(parents=True, exist_ok=True)
    for split, images in (("train", 6), ("validation", 4)):
        rows = []
        for i in range(images):
            boxes = [(rng.uniform(0, .4), rng.uniform(.5, 1), rng.uniform(0, .4), rng.uniform(.5, 1)) for _ in range(4)]
            labels = [f"/m/{rng.choice('abc')}" for _ in range(4)]
            for s, o in ((0, 1), (1, 2), (3, 0), (2, 3)):
                rows.append(",".join([f"{split}{i}", labels[s], labels[o], *map(str, boxes[s]), *map(str, boxes[o]),
                                      rng.choice(["at", "on", "holds"])]) + "\n")
        (folder / f"{split}-annotations-vrd.csv").write_text(header + "".join(rows))
    return folder


def test_openimages_evaluation_equals_the_metric_modules_on_the_models_own_predictions(tmp_path):
    from adlr_hf.data.relationships import relationship_collate
    from adlr_hf.metrics.openimages_vrd import openimages_vrd_score
    from adlr_hf.metrics.relationship_recall import relationship_recall
    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.models.reldn.task_relationship_detection import evaluate_relationship_model
    from adlr_hf.training.args import build_parser

    data = write_openimages(tmp_path / "oi")
    task = get_task("relationship-detection")
    args = build_parser().parse_args(flags(data, tmp_path / "run", 1) + ["--dataset", "oi"])
    config = get_config("reldn-vrd-predcls-novisual")
    task.check_args(args, config)
    run = task.build(args, config, None, tmp_path, True)
    assert run.extra_info["eval_split"] == "validation" and config.num_predicates == 3
    model = task.build_model(run, None)
    got = evaluate_relationship_model(model, run.eval, batch_size=3, progress=False, openimages=True)
    preds, refs = [], []
    with torch.no_grad():
        for i in range(len(run.eval)):
            sample = run.eval[i]
            batch = relationship_collate([sample])
            out = model(**{k: v for k, v in batch.items() if k != "relations"})
            pairs = out.pair_index[0][out.pair_mask[0]]
            boxes, labels, rel = sample["boxes"], sample["box_labels"], sample["relations"]
            preds.append({"subject_boxes": boxes[pairs[:, 0]].tolist(), "object_boxes": boxes[pairs[:, 1]].tolist(),
                          "subject_labels": labels[pairs[:, 0]].tolist(), "object_labels": labels[pairs[:, 1]].tolist(),
                          "subject_scores": [1.0] * len(pairs), "object_scores": [1.0] * len(pairs),
                          "predicate_scores": out.predicate_logits[0][out.pair_mask[0]].softmax(-1)[:, 1:].tolist()})
            refs.append({"subject_boxes": boxes[rel[:, 0]].tolist(), "object_boxes": boxes[rel[:, 1]].tolist(),
                         "subject_labels": labels[rel[:, 0]].tolist(), "object_labels": labels[rel[:, 1]].tolist(),
                         "predicate_labels": rel[:, 2].tolist()})
    want = openimages_vrd_score(preds, refs, num_predicates=3)
    assert got["oi_score"] == pytest.approx(want["score"], abs=1e-6) and want["score"] > 0
    assert got["wmAP_rel"] == pytest.approx(want["wmAP_rel"], abs=1e-6)
    assert got["AP_phr"] == pytest.approx(want["AP_phr"], abs=1e-6)
    recall = relationship_recall(preds, refs, predicates_per_pair=(1, 3))
    assert got["R@50"] == pytest.approx(recall["R@50_top1"], abs=1e-9)
    assert got["R@20_all"] == pytest.approx(recall["R@20_top3"], abs=1e-9)
    assert got["phrase_R@20"] == pytest.approx(recall["phrase_R@20_top1"], abs=1e-9)


def test_images_reach_the_visual_model_through_the_task_in_every_mode(tmp_path):
    """A VRD-format folder of drawn scenes (a box above another): with --images, the task's batches carry the
    pixels, and the tiny visual model trains a step on them in predcls, sgcls and sgdet."""
    import numpy as np
    from PIL import Image

    from adlr_hf.data.relationships import relationship_collate
    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    data, images = tmp_path / "scenes", tmp_path / "images"
    annotations = {}
    for split in ("train", "test"):
        (images / split).mkdir(parents=True)
        split_annotations = {}
        for i in range(3):
            canvas = np.zeros((48, 64, 3), dtype=np.uint8)
            top, bottom = [4 + i, 20 + i, 10, 30], [26, 44, 8 + i, 40]  # [ymin, ymax, xmin, xmax]
            canvas[top[0]:top[1] + 1, top[2]:top[3] + 1] = (255, 0, 0)
            canvas[bottom[0]:bottom[1] + 1, bottom[2]:bottom[3] + 1] = (0, 0, 255)
            Image.fromarray(canvas).save(images / split / f"{i}.png")
            split_annotations[f"{i}.png"] = [rel(0, top, 0, 1, bottom), rel(1, bottom, 1, 0, top)]
        annotations[split] = split_annotations
    write_vrd_splits(data, annotations, objects=("red", "blue"), predicates=("above", "below"))
    task = get_task("relationship-detection")
    for mode in ("predcls", "sgcls", "sgdet"):
        args = build_parser().parse_args(["--model", "reldn-tiny-visual", "--data", str(data), "--images", str(images),
                                          "--mode", mode, "--out", str(tmp_path / mode)])
        config = get_config("reldn-tiny-visual")
        task.check_args(args, config)
        run = task.build(args, config, None, tmp_path, True)
        assert config.mode == mode and (config.num_object_classes, config.num_predicates) == (2, 2)
        batch = relationship_collate([run.train[0], run.train[1]])
        assert [tuple(p.shape) for p in batch["pixel_values"]] == [(3, 48, 64)] * 2
        assert batch["image_sizes"] == [(48, 64)] * 2
        model = task.build_model(run, None)
        loss = model(**batch).loss
        loss.backward()
        assert torch.isfinite(loss)
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)


def rel(s_cat, s_box, p, o_cat, o_box):
    return {"predicate": p, "subject": {"category": s_cat, "bbox": s_box}, "object": {"category": o_cat, "bbox": o_box}}


def write_vrd_splits(folder: Path, annotations: dict, objects, predicates) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, split_annotations in annotations.items():
        (folder / f"annotations_{split}.json").write_text(json.dumps(split_annotations))
    (folder / "objects.json").write_text(json.dumps(list(objects)))
    (folder / "predicates.json").write_text(json.dumps(list(predicates)))
    return folder


def test_raw_visual_genome_without_split_lists_trains_on_every_image_and_holds_none_out(tmp_path):
    from adlr_hf.registry import get_config
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    entity = lambda oid, x, name: {"object_id": oid, "x": x, "y": 2, "w": 8, "h": 9, "name": name}  # noqa: E731
    images = [{"image_id": i, "relationships": [{"predicate": "near", "subject": entity(1, 0, "cup"),
                                                 "object": entity(2, 5, "plate")}]} for i in range(3)]
    (tmp_path / "relationships.json").write_text(json.dumps(images))
    (tmp_path / "objects.json").write_text(json.dumps(["cup", "plate"]))
    (tmp_path / "predicates.json").write_text(json.dumps(["near"]))
    task = get_task("relationship-detection")
    args = build_parser().parse_args(flags(tmp_path, tmp_path / "run", 1) + ["--dataset", "vg"])
    config = get_config("reldn-vrd-predcls-novisual")
    task.check_args(args, config)
    run = task.build(args, config, None, tmp_path, True)
    assert len(run.train) == 3 and run.eval is None and run.metric is None
    assert run.train[0]["image_size"] == (11, 13)  # no image_data.json: the boxes' extent
    (tmp_path / "test.txt").write_text("2\n")
    with pytest.raises(FileNotFoundError, match="no train split for --dataset vg"):
        task.check_args(args, config)


def test_contribution_summary_by_hand():
    from types import SimpleNamespace

    from adlr_hf.models.reldn.task_relationship_detection import ContributionSummary

    # one image, two pair slots (the second is padding). Columns: no relation, p0, p1, p2.
    spatial = torch.tensor([[[0.0, 1.0, 4.0, 1.0], [9.0, 9.0, 9.0, 9.0]]])
    semantic = torch.tensor([[[0.0, 2.0, 0.5, 0.5], [9.0, 0.0, 0.0, 9.0]]])
    outputs = SimpleNamespace(contributions={"spatial": spatial, "semantic": semantic},
                              predicate_logits=spatial + semantic, pair_mask=torch.tensor([[True, False]]))
    summary = ContributionSummary()
    summary.add(outputs)
    out = summary.summary()
    # fused foreground logits (3, 4.5, 1.5): p1 chosen. spatial: 4 - mean(1, 4, 1) = 2; semantic: 0.5 - 1 = -0.5
    assert out["contribution_mean_abs_spatial"] == pytest.approx(2.0)
    assert out["contribution_mean_abs_semantic"] == pytest.approx(0.5)
    assert out["contribution_share_spatial"] == pytest.approx(0.8) and out["contribution_share_visual"] == 0
