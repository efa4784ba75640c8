"""PSNR, SSIM and interpolation error for the video families (SDC-Net, arXiv 1811.00684, reports skimage's PSNR and
Gaussian SSIM): equal to scikit-image on random and real frames, batched torch functions, offline `evaluate` modules,
and bad inputs."""

from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from adlr_hf.metrics import metric_path
from adlr_hf.metrics.ie import InterpolationError, interpolation_error
from adlr_hf.metrics.psnr import PSNR, psnr
from adlr_hf.metrics.ssim import SSIM, ssim

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BEDROOM = DATA / "video-frames" / "sam2-bedroom"
ADACOF = DATA / "video-frames" / "adacof-sample-video"
needs_data = pytest.mark.skipif(not BEDROOM.is_dir(), reason=f"real frames not found at {BEDROOM} "
                                "(../shared/data is absent)")


def sk_ssim(a, b, data_range):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 channel_axis=-1, data_range=data_range)


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def random_pairs():
    rng = np.random.default_rng(0)
    for shape in [(11, 11, 3), (13, 40, 3), (64, 48, 1), (30, 17, 2)]:
        a = rng.integers(0, 256, shape).astype(np.uint8)
        b = np.clip(a + rng.normal(0, 25, shape), 0, 255).astype(np.uint8)
        yield a, b, 255
        fa, fb = rng.random(shape), rng.random(shape)  # float64 in [0, 1]
        yield fa, 0.7 * fa + 0.3 * fb, 1.0


def real_pairs():
    for clip, names in ((BEDROOM, ("00020.jpg", "00021.jpg")), (ADACOF, ("040.png", "041.png"))):
        a, b = (np.array(Image.open(clip / n).convert("RGB")) for n in names)
        yield a, b


@pytest.mark.parametrize("index", range(8))
def test_equal_to_scikit_image_on_random_images(index):
    a, b, data_range = list(random_pairs())[index]
    assert ssim(chw(a), chw(b), data_range=data_range).item() == pytest.approx(sk_ssim(a, b, data_range), rel=1e-9)
    assert psnr(chw(a), chw(b), data_range=data_range).item() == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=data_range), rel=1e-12)
    assert interpolation_error(chw(a), chw(b)).item() == pytest.approx(np.sqrt(mean_squared_error(a, b)), rel=1e-12)


@needs_data
def test_equal_to_scikit_image_on_real_frames():
    for a, b in real_pairs():
        assert ssim(chw(a), chw(b)).item() == pytest.approx(sk_ssim(a, b, 255), rel=1e-9)
        assert psnr(chw(a), chw(b)).item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), rel=1e-12)
        assert interpolation_error(chw(a), chw(b)).item() == pytest.approx(np.sqrt(mean_squared_error(a, b)),
                                                                           rel=1e-12)


def test_batched_torch_functions_score_each_image():
    pairs = [(a, b) for a, b, r in random_pairs() if r == 255 and a.shape == (13, 40, 3)]
    rng = np.random.default_rng(1)
    a2 = rng.integers(0, 256, (13, 40, 3)).astype(np.uint8)
    preds = torch.stack([chw(pairs[0][0]), chw(a2)]).float()
    refs = torch.stack([chw(pairs[0][1]), chw(pairs[0][1])]).float()
    expected = [sk_ssim(pairs[0][0], pairs[0][1], 255), sk_ssim(a2, pairs[0][1], 255)]
    out = ssim(preds, refs)
    assert out.shape == (2,) and out.dtype == torch.float64
    assert out.tolist() == pytest.approx(expected, rel=1e-9)
    assert psnr(preds, refs).tolist() == pytest.approx(
        [peak_signal_noise_ratio(pairs[0][1], x, data_range=255) for x in (pairs[0][0], a2)], rel=1e-12)


def test_interpolation_error_colour_rules():
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 9, 7)) * 255, rng.random((3, 9, 7)) * 255
    diff = a - b
    rms = np.sqrt(np.mean(diff ** 2))
    assert interpolation_error(a, b, color="rms").item() == pytest.approx(rms, rel=1e-12)
    assert interpolation_error(a, b, color="l2").item() == pytest.approx(np.sqrt(3) * rms, rel=1e-12)
    uvi = np.mean(np.sqrt(np.sum(diff.transpose(1, 2, 0) ** 2, axis=2)))  # UVI eval.py's expression
    assert interpolation_error(a, b, color="mean_l2").item() == pytest.approx(uvi, rel=1e-12)


def test_identical_images():
    image = torch.rand(2, 3, 16, 16) * 255
    assert torch.isinf(psnr(image, image)).all()
    assert torch.allclose(ssim(image, image), torch.ones(2, dtype=torch.float64))
    assert interpolation_error(image, image).tolist() == [0.0, 0.0]


def test_evaluate_modules_load_offline_by_path():
    rng = np.random.default_rng(3)
    preds = [rng.random((12, 14, 3)) * 255 for _ in range(3)]
    refs = [rng.random((12, 14, 3)) * 255 for _ in range(3)]
    preds32 = [p.astype(np.float32) for p in preds]  # the modules store float32
    refs32 = [r.astype(np.float32) for r in refs]
    for name, key, expected in [
        ("psnr", "psnr", np.mean([peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(preds32, refs32)])),
        ("ssim", "ssim", np.mean([sk_ssim(p.astype(np.float64), r.astype(np.float64), 255)
                                  for p, r in zip(preds32, refs32)])),
        ("ie", "ie", np.mean([np.sqrt(mean_squared_error(r, p)) for p, r in zip(preds32, refs32)])),
    ]:
        metric = evaluate.load(metric_path(name))
        metric.add_batch(predictions=preds[:2], references=refs[:2])
        metric.add(prediction=preds[2], reference=refs[2])
        out = metric.compute(per_image=True)
        assert out["num_images"] == 3 and len(out["per_image"]) == 3
        assert out[key] == pytest.approx(expected, rel=1e-6)
    gray = PSNR(keep_in_memory=True).compute(predictions=[[[[0.0], [2.0]]]], references=[[[[0.0], [0.0]]]],
                                             data_range=255)
    assert gray["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / 2))


@pytest.mark.parametrize("call, match", [
    (lambda: psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5)), "must have the same shape"),
    (lambda: psnr(torch.zeros(3, 4, 4), torch.ones(3, 4, 4), data_range=0), "data_range=0 must be a positive"),
    (lambda: ssim(torch.zeros(1, 3, 10, 40), torch.zeros(1, 3, 10, 40)),
     r"images of 10x40 \(HxW\) are smaller than the 11x11 Gaussian window"),
    (lambda: interpolation_error(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), color="l1"), "color='l1' is not one of"),
    (lambda: psnr(torch.zeros(1, 1, 1, 3, 4), torch.zeros(1, 1, 1, 3, 4)), r"images must be \(B, C, H, W\)"),
    (lambda: SSIM(keep_in_memory=True).compute(predictions=[np.zeros((12, 12, 3))],
                                               references=[np.zeros((12, 13, 3))]), "image 0: prediction"),
    (lambda: InterpolationError(keep_in_memory=True).compute(predictions=[], references=[]),
     "no images were given"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
