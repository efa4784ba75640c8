"""Boundary label relaxation (arXiv 1812.01593) against a direct per-pixel computation of the reference's definition
(NVIDIA/semantic-segmentation@sdcnet: scipy shifts with cval = ignore channel, skimage boundaries, the
-1/|N| sum_c w_c log max(p_c, sum_N p_k) loss of ImgWtLossSoftNLL), on hand-made label maps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import shift
from skimage.segmentation import find_boundaries

from adlr_hf.layers.relaxed_boundary import (
    label_boundaries,
    reduced_border_at,
    relaxed_boundary_loss,
    relaxed_boundary_target,
)

C, IGNORE = 4, 255

# 0/1 regions, a class-2 pole (strict in some tests), a class-3 corner and an ignore patch.
LABELS = np.array([
    [0, 0, 0, 0, 1, 1, 1, 1],
    [0, 0, 0, 0, 1, 1, 1, 1],
    [0, 0, 2, 0, 1, 1, 255, 255],
    [0, 0, 2, 0, 1, 1, 255, 255],
    [0, 0, 2, 0, 1, 1, 1, 1],
    [3, 3, 0, 0, 1, 1, 1, 1],
    [3, 3, 0, 0, 1, 1, 1, 1],
], dtype=np.uint8)


def direct_target(labels, strict=(), reduced=False, window=1):
    """The reference's target, pixel by pixel: scipy shifts OR-ed (cval = the ignore channel)."""
    ids = labels.astype(np.int64).copy()
    ids[ids == IGNORE] = C
    h, w = ids.shape
    border = window // 2 if reduced else window
    out = np.zeros((C + 1, h, w))
    for i in range(-border, border + 1):
        for j in range(-border, border + 1):
            shifted = shift(ids, (i, j), cval=C, order=0)
            for y in range(h):
                for x in range(w):
                    out[shifted[y, x], y, x] = 1
    for y in range(h):
        for x in range(w):
            if ids[y, x] in strict:
                out[:, y, x] = 0
                out[ids[y, x], y, x] = 1
    if reduced:
        out = np.where(find_boundaries(ids, mode="thick")[None], 2 * out, out)
    return out


def direct_loss(logits, target, wt_bound=1.0):
    """ImgWtLossSoftNLL for one image, pixel by pixel (reduced-border branch included)."""
    logits = logits.double().numpy()
    target = np.asarray(target, dtype=np.float64)
    hist = target.sum((1, 2)) / target.sum()
    weights = np.where(hist != 0, 1 + wt_bound * (1 - hist), 1)[:-1]
    reduced = target.max() > 1
    total, valid = 0.0, 0
    _, h, w = logits.shape
    for y in range(h):
        for x in range(w):
            t = target[:-1, y, x]
            if t.sum() == 0:
                continue
            valid += 1
            p = np.exp(logits[:, y, x] - logits[:, y, x].max())
            p /= p.sum()
            factor = t.sum() if reduced else 1 / t.sum()
            t = np.minimum(t, 1)
            members = np.flatnonzero(t)
            total += -factor * sum(weights[c] * np.log(max(p[c], p[members].sum())) for c in members)
    return total / (valid + 1)


def test_target_matches_shifted_one_hots():
    ours = relaxed_boundary_target(torch.from_numpy(LABELS), C, IGNORE)
    assert ours.shape == (C + 1, *LABELS.shape) and ours.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), direct_target(LABELS))
    # a pixel inside a region holds one class; the image edge adds the ignore channel; a corner between 0 and 1
    assert ours[:, 5, 7].tolist() == [0, 1, 0, 0, 1]
    assert ours[:, 0, 3].tolist() == [1, 1, 0, 0, 1]
    assert ours[:, 4, 1].tolist() == [1, 0, 1, 1, 0]


def test_strict_classes_keep_their_one_hot():
    ours = relaxed_boundary_target(torch.from_numpy(LABELS), C, IGNORE, strict_classes=(2, 3))
    np.testing.assert_array_equal(ours.numpy(), direct_target(LABELS, strict=(2, 3)))
    assert ours[:, 3, 2].tolist() == [0, 0, 1, 0, 0]  # a pole pixel between 0s stays a pole


def test_reduced_border_target_is_one_hot_with_boundaries_doubled():
    ours = relaxed_boundary_target(torch.from_numpy(LABELS), C, IGNORE, reduced_border=True, strict_classes=(2,))
    np.testing.assert_array_equal(ours.numpy(), direct_target(LABELS, strict=(2,), reduced=True))
    assert set(ours.unique().tolist()) == {0, 1, 2}
    assert (ours > 0).sum(0).max() == 1  # window 0: one channel per pixel


def test_boundaries_equal_skimage_on_random_maps():
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 3, size=(3, 9, 11))
    ours = label_boundaries(torch.from_numpy(maps))
    for m, b in zip(maps, ours):
        np.testing.assert_array_equal(b.numpy(), find_boundaries(m, mode="thick"))


def test_batch_target_equals_per_image():
    batch = torch.from_numpy(np.stack([LABELS, LABELS[::-1].copy()]))
    both = relaxed_boundary_target(batch, C, IGNORE)
    for labels, target in zip(batch, both):
        assert torch.equal(target, relaxed_boundary_target(labels, C, IGNORE))


@pytest.mark.parametrize("strict,reduced,wt_bound", [((), False, 1.0), ((2, 3), False, 1.0), ((), False, 0.0),
                                                     ((2,), True, 1.0), ((), True, 0.5)])
def test_loss_matches_direct_per_pixel_computation(strict, reduced, wt_bound):
    torch.manual_seed(0)
    logits = torch.randn(1, C, *LABELS.shape) * 3
    target = relaxed_boundary_target(torch.from_numpy(LABELS), C, IGNORE, strict_classes=strict,
                                     reduced_border=reduced)[None]
    ours = relaxed_boundary_loss(logits, target, wt_bound=wt_bound)
    expected = direct_loss(logits[0], direct_target(LABELS, strict=strict, reduced=reduced), wt_bound)
    assert ours.item() == pytest.approx(expected, rel=1e-5)


def test_reduced_border_weighs_boundary_pixels_twice_in_plain_nll():
    torch.manual_seed(1)
    logits = torch.randn(1, C, *LABELS.shape)
    target = relaxed_boundary_target(torch.from_numpy(LABELS), C, IGNORE, reduced_border=True)[None]
    ids = torch.from_numpy(LABELS).long()
    nll = F.cross_entropy(logits, ids[None], ignore_index=IGNORE, reduction="none")[0]
    boundary = label_boundaries(torch.where(ids == IGNORE, C, ids)[None])[0]
    hist = target[0].sum((1, 2)) / target[0].sum()
    weights = 1 + (1 - hist[:-1])
    valid = ids != IGNORE
    w = weights[ids.clamp(max=C - 1)]
    expected = (torch.where(boundary, 2.0, 1.0) * w * nll)[valid].sum() / (valid.sum() + 1)
    assert relaxed_boundary_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_rlx_off_epoch_switches_after_the_named_epoch():
    assert not reduced_border_at(100, 100) and reduced_border_at(101, 100)
    assert not reduced_border_at(10_000, -1)


def test_loss_equals_cross_entropy_where_no_pixel_is_on_a_border():
    """A single-class image: every pixel's window holds its own class (plus the ignore channel at the edge, which the
    loss skips), so the loss is w_y times the summed cross entropy over (pixels + 1)."""
    torch.manual_seed(2)
    labels = torch.full((2, 5, 6), 1)
    labels[1] = 3
    logits = torch.randn(2, C, 5, 6, requires_grad=True)
    target = relaxed_boundary_target(labels, C, IGNORE)
    ce = F.cross_entropy(logits, labels, reduction="none").sum((1, 2))
    for wt_bound in (0.0, 1.0):
        # hist of the class = pixels / (pixels + edge ignore bits): w_y = 1 + wt_bound * (1 - hist)
        hist = 30 / (30 + 18)
        expected = ((1 + wt_bound * (1 - hist)) * ce / 31).mean()
        ours = relaxed_boundary_loss(logits, target, wt_bound=wt_bound)
        torch.testing.assert_close(ours, expected)
    # and the gradient is that of cross entropy, too
    ours.backward()
    grad = logits.grad.clone()
    logits.grad = None
    expected.backward()
    torch.testing.assert_close(grad, logits.grad)


def test_empty_targets_are_masked_and_the_loss_divides_by_valid_plus_one():
    torch.manual_seed(3)
    labels = torch.full((1, 4, 4), IGNORE)
    labels[0, 0, 0] = 2
    target = relaxed_boundary_target(labels, C, IGNORE)
    logits = torch.randn(1, C, 4, 4)
    logits[0, :, 3, 3] = float("nan")  # far from the labelled pixel: masked, so it must not reach the loss
    valid = target[0, :-1].sum(0) > 0
    assert valid.sum() == 4  # the labelled pixel and its 3 in-image neighbours
    ours = relaxed_boundary_loss(logits, target, wt_bound=0.0)
    log_p = torch.log_softmax(torch.nan_to_num(logits), 1)[0, 2]
    torch.testing.assert_close(ours, -(log_p[valid]).sum() / 5)
    all_ignored = relaxed_boundary_target(torch.full((1, 4, 4), IGNORE), C, IGNORE)
    assert relaxed_boundary_loss(torch.randn(1, C, 4, 4), all_ignored).item() == 0.0


def test_per_image_loss_fixes_the_reference_batch_broadcast():
    """Per image: a batch's losses equal each image's alone; 'sum' is the reference's reduction over images, and
    the reference's broadcast (every image's loss over every image's 1/|N| map) differs from it at batch 2."""
    torch.manual_seed(4)
    batch = torch.from_numpy(np.stack([LABELS, LABELS[:, ::-1].copy()])).long()
    target = relaxed_boundary_target(batch, C, IGNORE)
    logits = torch.randn(2, C, *LABELS.shape)
    per_image = relaxed_boundary_loss(logits, target, reduction="none")
    singles = torch.stack([relaxed_boundary_loss(logits[i:i + 1], target[i:i + 1]) for i in range(2)])
    torch.testing.assert_close(per_image, singles)
    torch.testing.assert_close(relaxed_boundary_loss(logits, target), singles.mean())
    torch.testing.assert_close(relaxed_boundary_loss(logits, target, reduction="sum"), singles.sum())
    assert relaxed_boundary_loss(logits, target, reduction="sum").item() != pytest.approx(
        reference_batch_loss(logits, target), rel=1e-3)
    torch.testing.assert_close(relaxed_boundary_loss(logits[:1], target[:1], reduction="sum").double(),
                               torch.tensor(reference_batch_loss(logits[:1], target[:1]), dtype=torch.float64))


def reference_batch_loss(logits, target, wt_bound=1.0):
    """ImgWtLossSoftNLL.forward as written: image i's loss map times the whole batch's 1/|N(x)| maps, summed."""
    counts = target[:, :-1].sum(1).double()
    inv = 1 / torch.where(counts == 0, torch.ones_like(counts), counts)
    total = 0.0
    for i in range(logits.shape[0]):
        t = target[i, :-1].double()
        hist = target[i].sum((1, 2)).double() / target[i].sum()
        w = torch.where(hist != 0, 1 + wt_bound * (1 - hist), torch.ones_like(hist))[:-1]
        p = torch.softmax(logits[i].double(), 0)
        log_max = torch.log(torch.maximum(p, t * (p * t).sum(0, keepdim=True)))
        pixel_sum = (t * w[:, None, None] * log_max).sum(0)
        valid = counts[i] > 0
        total += float((-inv * pixel_sum * valid).sum() / (valid.sum() + 1))
    return total


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"label values \[7\].*ignore index 255"):
        relaxed_boundary_target(torch.tensor([[0, 7], [1, 255]]), C, IGNORE)
    with pytest.raises(ValueError, match="C\\+1"):
        relaxed_boundary_loss(torch.randn(1, C, 3, 3), torch.zeros(1, C, 3, 3))
    with pytest.raises(ValueError, match="strict_classes"):
        relaxed_boundary_target(torch.zeros(3, 3, dtype=torch.long), C, IGNORE, strict_classes=(9,))
