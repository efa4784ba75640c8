"""`adlr-hf propagate`: SDC-Net reconstruction propagation of labelled frames into the "folder" layout. With a model
whose motion is zero the propagated pairs reproduce the labelled image and label (jp) or pair the label with the real
frames (lp); with a constant one-pixel motion the labels move by exactly one pixel per step and keep their values
(nearest sampling); a model that is not a reconstruction model is refused before anything is written."""

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf import get_config
from adlr_hf.cli import main as cli
from adlr_hf.data.segmentation.layouts import find_pairs
from adlr_hf.data.video_propagation import propagate_dataset
from adlr_hf.models.sdcnet import SDCNet2D, SDCNet2DRecon

HEIGHT, WIDTH, FRAMES, T = 40, 56, 5, 2  # not multiples of 64: the frames are padded and cropped back


def _model(folder, motion=(0.0, 0.0)):
    """A reconstruction model whose motion is `motion` everywhere: zero flow head, flow_mean = motion."""
    torch.manual_seed(0)
    model = SDCNet2DRecon(get_config("sdcnet2d-recon", base_width=8, flow_mean=list(motion)))
    with torch.no_grad():
        model.final_flow.weight.zero_()
        model.final_flow.bias.zero_()
    model.save_pretrained(folder)
    return folder


def _data(root, clips=("a", "b")):
    rng = np.random.default_rng(0)
    frames, labels = {}, {}
    for stem in clips:
        sequence = root / "sequences" / f"{stem}_{T:06d}"  # named after the labelled image
        sequence.mkdir(parents=True)
        coarse = rng.integers(0, 256, (FRAMES, HEIGHT // 8, WIDTH // 8, 3)).astype(np.uint8)
        clip = [np.asarray(Image.fromarray(c).resize((WIDTH, HEIGHT), Image.BILINEAR)) for c in coarse]
        for i, frame in enumerate(clip):
            Image.fromarray(frame).save(sequence / f"{stem}_{i:06d}.png")
        label = rng.choice(np.array([0, 3, 7, 255], dtype=np.uint8), (HEIGHT, WIDTH))
        (root / "images").mkdir(exist_ok=True)
        (root / "labels").mkdir(exist_ok=True)
        Image.fromarray(clip[T]).save(root / "images" / f"{stem}_{T:06d}.png")
        Image.fromarray(label).save(root / "labels" / f"{stem}_{T:06d}.png")
        frames[stem], labels[stem] = clip, label
    (root / "classes.txt").write_text("zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\n")
    return frames, labels


def _read(path):
    return np.asarray(Image.open(path))


def test_zero_motion_reproduces_the_labelled_pair_and_lp_pairs_real_frames(tmp_path):
    model = _model(tmp_path / "sdc")
    frames, labels = _data(tmp_path / "data")
    assert cli(["propagate", str(model), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "jp"),
                "--steps", "2"]) == 0
    propagate_dataset(model, tmp_path / "data", tmp_path / "lp", steps=2, mode="lp")
    for stem in ("a", "b"):
        name = f"{stem}_{T:06d}"
        for direction, sign in (("fwd", 1), ("bwd", -1)):
            for k in (1, 2):
                jp_image = _read(tmp_path / "jp" / "images" / f"{name}_{direction}{k}.png")
                assert np.abs(jp_image.astype(int) - frames[stem][T]).max() <= 1  # bilinear at whole pixels
                np.testing.assert_array_equal(_read(tmp_path / "jp" / "labels" / f"{name}_{direction}{k}.png"),
                                              labels[stem])
                np.testing.assert_array_equal(_read(tmp_path / "lp" / "images" / f"{name}_{direction}{k}.png"),
                                              frames[stem][T + sign * k])
                np.testing.assert_array_equal(_read(tmp_path / "lp" / "labels" / f"{name}_{direction}{k}.png"),
                                              labels[stem])
    pairs = find_pairs(tmp_path / "jp", "folder", "train")  # the segmentation loader reads the output as it is
    assert len(pairs.images) == 2 * 2 * 2 and pairs.class_names[7] == "seven"


def test_constant_motion_moves_labels_by_whole_pixels_and_keeps_their_values(tmp_path):
    model = _model(tmp_path / "sdc", motion=(1.0, 0.0))  # u = +1: out[y, x] = in[y, x + 1]
    _, labels = _data(tmp_path / "data", clips=("a",))
    propagate_dataset(model, tmp_path / "data", tmp_path / "out", steps=2)
    label = labels["a"]
    step1 = _read(tmp_path / "out" / "labels" / f"a_{T:06d}_fwd1.png")
    step2 = _read(tmp_path / "out" / "labels" / f"a_{T:06d}_fwd2.png")
    np.testing.assert_array_equal(step1[:, :-1], label[:, 1:])
    np.testing.assert_array_equal(step2[:, :-2], label[:, 2:])
    assert set(np.unique(step2)) <= {0, 3, 7, 255}


def test_a_model_that_is_not_a_reconstruction_model_is_refused_before_any_output(tmp_path):
    _data(tmp_path / "data", clips=("a",))
    SDCNet2D(get_config("sdcnet2d-tiny")).save_pretrained(tmp_path / "predictor")
    with pytest.raises(ValueError, match="not an SDC-Net reconstruction model"):
        propagate_dataset(tmp_path / "predictor", tmp_path / "data", tmp_path / "out", steps=1)
    assert cli(["propagate", str(tmp_path / "predictor"), "--data", str(tmp_path / "data"), "--out",
                str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    model = _model(tmp_path / "sdc")
    with pytest.raises(ValueError, match="--steps 3 .* needs 3 on each side"):
        propagate_dataset(model, tmp_path / "data", tmp_path / "out", steps=3)
    with pytest.raises(ValueError, match="--steps 0 must be an integer >= 1"):
        propagate_dataset(model, tmp_path / "data", tmp_path / "out", steps=0)
    with pytest.raises(ValueError, match="--mode 'xp' is not one of"):
        propagate_dataset(model, tmp_path / "data", tmp_path / "out", mode="xp", steps=1)
    (tmp_path / "data" / "labels" / f"a_{T:06d}.png").unlink()
    with pytest.raises(FileNotFoundError, match="every labelled frame needs its label map"):
        propagate_dataset(model, tmp_path / "data", tmp_path / "out", steps=1)
    with pytest.raises(FileNotFoundError, match="has no images/ folder; expected images/, labels/ and sequences/"):
        propagate_dataset(model, tmp_path / "data" / "images", tmp_path / "out", steps=1)
    assert not (tmp_path / "out").exists()
