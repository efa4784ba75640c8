"""Joint augmentation: image and label get the same geometry (checked with a label that encodes the pixel position
and an image built from it), draws replay per (seed, epoch, index) and change with the epoch, crops around a
centroid contain it, padding uses the ignore index; the relaxation target follows rlx_off_epoch."""

import torch

from adlr_hf.data.segmentation import (
    IGNORE_INDEX,
    JointTransform,
    Relaxation,
    SegmentationDataset,
    find_pairs,
    sample_generator,
)

from models.deeplabv3plus.seg_data_utils import camvid_root


def coded_pair(h=40, w=60):
    """A label of 10 vertical class stripes and an image whose red channel is 20 * class: geometry must keep them
    aligned (nearest for the label, bicubic for the image; compare away from stripe edges)."""
    label = (torch.arange(w) * 10 // w).repeat(h, 1)
    image = torch.zeros(3, h, w, dtype=torch.uint8)
    image[0] = (label * 20).to(torch.uint8)
    return image, label


def test_image_and_label_share_the_geometry():
    image, label = coded_pair()
    transform = JointTransform((32, 32), color_jitter=0.0, blur=False)
    for index in range(6):
        out_image, out_label = transform(image, label, sample_generator(0, 0, index))
        assert out_image.shape == (3, 32, 32) and out_label.shape == (32, 32)
        valid = out_label != IGNORE_INDEX
        # interior of the stripes: the image's red value is 20 x the label (stripe edges blur under bicubic)
        inner = valid.clone()
        inner[:, 1:] &= out_label[:, 1:] == out_label[:, :-1]
        inner[:, :-1] &= out_label[:, :-1] == out_label[:, 1:]
        inner[:, 1:-1] &= (out_label[:, 2:] == out_label[:, 1:-1]) & (out_label[:, :-2] == out_label[:, 1:-1])
        assert inner.sum() > 0
        diff = (out_image[0].float() - 20 * out_label.float()).abs()[inner]
        assert diff.max() <= 3, index
        assert set(out_label.unique().tolist()) <= set(range(10)) | {IGNORE_INDEX}  # nearest: no new values


def test_draws_replay_per_seed_epoch_index_and_change_with_the_epoch():
    image, label = coded_pair()
    transform = JointTransform((24, 24))
    a = transform(image, label, sample_generator(3, 1, 5))
    b = transform(image, label, sample_generator(3, 1, 5))
    c = transform(image, label, sample_generator(3, 2, 5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_small_images_are_padded_with_ignore_and_centroid_crops_contain_the_centroid():
    image, label = coded_pair(20, 20)
    transform = JointTransform((64, 64), scale=(1.0, 1.0), flip=False, color_jitter=0.0, blur=False)
    out_image, out_label = transform(image, label, sample_generator(0, 0, 0))
    assert (out_label == IGNORE_INDEX).sum() == 64 * 64 - 400 and (out_image[:, out_label == IGNORE_INDEX] == 0).all()
    big_image, big_label = coded_pair(100, 200)
    big_label[70, 185] = 9  # stripe 9 is columns 180..199
    marked = big_label.clone()
    marked[70, 185] = 42
    crop = JointTransform((16, 16), scale=(1.0, 1.0), flip=False, color_jitter=0.0, blur=False)
    for index in range(10):
        _, out = crop(big_image, marked, sample_generator(0, 0, index), centroid=(70, 185))
        assert (out == 42).sum() == 1


def test_camvid_dataset_relaxation_target_switches_after_rlx_off_epoch():
    pairs = find_pairs(camvid_root(), "camvid", "train")
    ds = SegmentationDataset(pairs, JointTransform((64, 64)), Relaxation(rlx_off_epoch=1), seed=0)
    early = ds[0]["labels"]
    assert early.shape == (12, 64, 64) and early.dtype == torch.uint8 and early.max() == 1
    assert (early[:-1].sum(0) > 1).any()  # some pixels hold two classes: the border window
    ds.set_epoch(2)
    late = ds[0]["labels"]
    assert late.max() == 2 and (late > 0).sum(0).max() == 1  # window 0, boundaries doubled
    ds.set_epoch(0)
    assert torch.equal(ds[0]["labels"], early)  # the same epoch replays
    x = ds[0]["pixel_values"]
    assert x.dtype == torch.float32 and abs(float(x.mean())) < 3
