"""`adlr-hf propagate` on a Cityscapes root (leftImg8bit/, gtFine/ labelIds, leftImg8bit_sequence/ 30-frame
snippets, the labelled frame being frame 19 of its snippet): the layout is detected, labelIds become the 19 trainIds
(ignored ids 255), a zero-motion reconstruction model reproduces the labelled image and its trainId map, the output
is what `--dataset cityscapes --max-skip 1` trains on with Cityscapes' class names, and a missing sequence frame is
named before anything is written."""

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf import get_config
from adlr_hf.cli import main as cli
from adlr_hf.data.segmentation import CITYSCAPES_CLASSES, read_label
from adlr_hf.data.video_propagation import propagate_dataset
from adlr_hf.models.sdcnet import SDCNet2DRecon

HEIGHT, WIDTH = 40, 56
LABELLED = ("aachen_000000", "bochum_000003")  # <city>_<seq>, labelled frame 000019 of each
# labelIds -> trainIds: road 7 -> 0, car 26 -> 13, bicycle 33 -> 18; unlabeled 0, static 4, license plate -1 (255
# as uint8) are ignored.
LABEL_IDS = np.array([7, 26, 33, 0, 4, 255], dtype=np.uint8)
TRAIN_IDS = np.array([0, 13, 18, 255, 255, 255], dtype=np.uint8)


def _model(folder):
    """A reconstruction model with zero motion everywhere (zero flow head, flow_mean 0)."""
    torch.manual_seed(0)
    model = SDCNet2DRecon(get_config("sdcnet2d-recon", base_width=8, flow_mean=[0.0, 0.0]))
    with torch.no_grad():
        model.final_flow.weight.zero_()
        model.final_flow.bias.zero_()
    model.save_pretrained(folder)
    return folder


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _cityscapes(root, split="train"):
    """Two labelled frames with their 30-frame snippets (frames 000000..000029); returns {stem: (snippet, label ids
    as trainIds)}, snippet[m] being sequence frame m."""
    rng = np.random.default_rng(0)
    out = {}
    for city_seq in LABELLED:
        city = city_seq.split("_")[0]
        coarse = rng.integers(0, 256, (30, HEIGHT // 8, WIDTH // 8, 3)).astype(np.uint8)
        snippet = [np.asarray(Image.fromarray(c).resize((WIDTH, HEIGHT), Image.BILINEAR)) for c in coarse]
        for m, frame in enumerate(snippet):
            _save(root / "leftImg8bit_sequence" / split / city / f"{city_seq}_{m:06d}_leftImg8bit.png", frame)
        stem = f"{city_seq}_000019"
        picks = rng.integers(0, len(LABEL_IDS), (HEIGHT, WIDTH))
        _save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", snippet[19])
        _save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", LABEL_IDS[picks])
        out[stem] = (snippet, TRAIN_IDS[picks])
    return out


def _read(path):
    return np.asarray(Image.open(path))


def test_cityscapes_root_propagates_to_train_id_pairs_that_training_reads(tmp_path):
    from adlr_hf.tasks import get_task
    from adlr_hf.training.args import build_parser

    from models.deeplabv3plus.seg_train_utils import seg_flags

    model, data = _model(tmp_path / "sdc"), tmp_path / "cityscapes"
    clips = _cityscapes(data)
    jp = data / "propagated"  # where --max-skip looks by default
    assert cli(["propagate", str(model), "--data", str(data), "--out", str(jp), "--steps", "2"]) == 0
    propagate_dataset(model, data, tmp_path / "lp", steps=2, mode="lp", layout="cityscapes", split="train")
    for stem, (snippet, train_ids) in clips.items():
        for direction, sign in (("fwd", 1), ("bwd", -1)):
            for k in (1, 2):
                name = f"{stem}_{direction}{k}.png"
                jp_image = _read(jp / "images" / name)
                assert np.abs(jp_image.astype(int) - snippet[19]).max() <= 1  # bilinear at whole pixels
                np.testing.assert_array_equal(_read(jp / "labels" / name), train_ids)
                np.testing.assert_array_equal(_read(tmp_path / "lp" / "images" / name), snippet[19 + sign * k])
                np.testing.assert_array_equal(_read(tmp_path / "lp" / "labels" / name), train_ids)
    assert (jp / "classes.txt").read_text().splitlines() == list(CITYSCAPES_CLASSES)
    assert len(list((jp / "images").iterdir())) == 2 * 2 * 2

    flags = seg_flags(data, tmp_path / "run", max_skip=1)
    args = build_parser().parse_args([*flags, "--dataset", "cityscapes"])
    task, config = get_task("semantic-segmentation"), get_config("deeplabv3plus-tiny")
    task.check_args(args, config)
    run = task.build(args, config, None, tmp_path / "run", True)
    pairs = run.train.pairs
    assert len(run.train) == 2 + 4 and run.extra_info["propagated_images"] == 4
    assert pairs.class_names == CITYSCAPES_CLASSES
    for index in range(len(pairs)):  # the labelled maps (labelIds) and the propagated ones (trainIds) agree
        stem = "_".join(pairs.images[index].rsplit("/", 1)[-1].split("_")[:3])
        np.testing.assert_array_equal(read_label(pairs.labels[index], pairs.lookup_for(index)), clips[stem][1])
    assert sorted(p.rsplit("/", 1)[-1] for p in pairs.images[2:]) == sorted(
        f"{stem}_{d}1.png" for stem in clips for d in ("fwd", "bwd"))


def test_a_missing_sequence_frame_is_named_before_any_output(tmp_path):
    model, data = _model(tmp_path / "sdc"), tmp_path / "cityscapes"
    _cityscapes(data)
    missing = data / "leftImg8bit_sequence" / "train" / "bochum" / "bochum_000003_000020_leftImg8bit.png"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f"{missing.name}.* is missing .*around labelled frame "
                                                "bochum_000003_000019"):
        propagate_dataset(model, data, tmp_path / "out", steps=1)
    assert cli(["propagate", str(model), "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    # --steps beyond the 10 frames after the labelled one: the first absent frame (000030) is named
    with pytest.raises(FileNotFoundError, match="aachen_000000_000030_leftImg8bit.png.* is missing"):
        propagate_dataset(model, data, tmp_path / "out", steps=11, layout="cityscapes")
    with pytest.raises(FileNotFoundError, match="no leftImg8bit/val/ and gtFine/val/ folders"):
        propagate_dataset(model, data, tmp_path / "out", steps=1, split="val")
    with pytest.raises(ValueError, match="--layout 'kitti' is not one of"):
        propagate_dataset(model, data, tmp_path / "out", steps=1, layout="kitti")
    assert not (tmp_path / "out").exists()
