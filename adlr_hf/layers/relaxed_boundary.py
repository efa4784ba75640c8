"""Boundary label relaxation: the multi-hot target and its loss.

Paper: Zhu, Sapra, Reda, Shih, Newsam, Tao, Catanzaro, "Improving Semantic Segmentation via Video Propagation and
Label Relaxation", arXiv 1812.01593. Reference: NVIDIA/semantic-segmentation, branch `sdcnet`
(`transforms/transforms.py` RelaxedBoundaryLossToTensor, `loss.py` ImgWtLossSoftNLL).

Target (`relaxed_boundary_target`): the label map with `ignore_index` moved to an extra channel C, one-hot to
(C+1) channels, then OR-ed over the (2·border_window+1)² window around each pixel; outside the image counts as the
ignore channel (the reference shifts with cval=C). Pixels of `strict_classes` keep their plain one-hot. With
`reduced_border` (the reference after `rlx_off_epoch`) the window is border_window // 2 (0 for the default 1) and
pixels on a label boundary (skimage `find_boundaries(mode="thick")`) get the value 2 instead of 1.

Loss (`relaxed_boundary_loss`), per pixel x with N(x) the real classes of its target:

    l(x) = -(1/|N(x)|) · sum_{c in N(x)} w_c · log max(p_c, sum_{k in N(x)} p_k) = -mean_{c in N(x)} w_c · log P(N(x))

(the max always picks the sum), with the image-weighted class weights w_c = 1 + wt_bound·(1 - hist_c) where
hist_c ≠ 0, hist the image's channel histogram of the target divided by its total (ignore channel included in the
total, as the reference). Pixels whose real classes are empty (ignore only) are masked; an image's loss is the sum
over pixels divided by (valid pixels + 1). On a reduced-border target the reference's `custom_nll` inverts the
channel sum and clips the target, so a boundary pixel (value 2) weighs 2·w_y·(-log p_y) and every other pixel
w_y·(-log p_y): plain image-weighted NLL with boundaries counted twice, not a switch-off. The loss reads this from
the target itself (a value above 1 only occurs on such pixels), so it needs no epoch.

Differences from the reference, on purpose:
- Per-image loss. The reference passes the whole batch's (N, H, W) channel sums into each image's loss map, which
  broadcasts: with batch >= 2 every image's loss is summed over every image's 1/|N(x)| map. Here image i uses its
  own map only (identical at batch 1).
- Reduction: `reduction="mean"` (default) averages the per-image losses, so the scale does not grow with the batch;
  the reference sums them (`reduction="sum"`), with its learning rate tuned for 2 images per GPU.
- log P(N(x)) is a masked log-sum-exp of the logits, so a class whose probability underflows cannot turn
  0·log 0 into NaN (the reference multiplies the target into log max(p_c, ...) over every channel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["label_boundaries", "reduced_border_at", "relaxed_boundary_loss", "relaxed_boundary_target"]


def reduced_border_at(epoch: int, rlx_off_epoch: int) -> bool:
    """Whether epoch `epoch` (0-based, as the reference's `cfg.EPOCH`) uses the reduced-border target:
    `rlx_off_epoch` >= 0 and epoch > rlx_off_epoch (the reference's strict comparison)."""
    return rlx_off_epoch >= 0 and epoch > rlx_off_epoch


def label_boundaries(labels: torch.Tensor) -> torch.Tensor:
    """skimage `find_boundaries(labels, mode="thick")` (connectivity 1) of (N, H, W) label maps: a pixel is on a
    boundary where the maximum and minimum label of its 4-neighbourhood cross differ; the image edge replicates
    (scipy's 'reflect' for a one-pixel reach), so it makes no boundary by itself."""
    padded = F.pad(labels[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0]
    h, w = labels.shape[-2:]
    cross = torch.stack([padded[:, 1:h + 1, 1:w + 1], padded[:, :h, 1:w + 1], padded[:, 2:, 1:w + 1],
                         padded[:, 1:h + 1, :w], padded[:, 1:h + 1, 2:]])
    return cross.amax(0) != cross.amin(0)


def relaxed_boundary_target(labels: torch.Tensor, num_classes: int, ignore_index: int = 255, border_window: int = 1,
                            strict_classes=(), reduced_border: bool = False,
                            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The multi-hot relaxation target of label maps `labels` ((H, W) or (N, H, W), class ids in [0, num_classes)
    or `ignore_index`): (C+1, H, W) or (N, C+1, H, W), last channel = ignore. See the module docstring."""
    if labels.dim() not in (2, 3):
        raise ValueError(f"labels must be (H, W) or (N, H, W) class ids; got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class ids; got {labels.dtype}")
    single = labels.dim() == 2
    labels = labels[None] if single else labels
    labels = labels.long()
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        values = sorted(set(labels[bad].unique().tolist()))[:10]
        raise ValueError(f"label values {values} are neither a class id in [0, {num_classes}) nor the ignore index "
                         f"{ignore_index}; map them to a class or to {ignore_index}")
    ids = torch.where(labels == ignore_index, num_classes, labels)
    reach = border_window // 2 if reduced_border else border_window
    if reach < 0:
        raise ValueError(f"border_window {border_window} must be >= 0")
    one_hot = F.one_hot(ids, num_classes + 1).permute(0, 3, 1, 2).to(dtype)
    if reach > 0:
        # Outside the image reads the ignore channel (the reference's shift with cval = C); a max over the window
        # of the one-hot maps is the OR of the shifted ones.
        padded = F.pad(ids, (reach, reach, reach, reach), value=num_classes)
        padded = F.one_hot(padded, num_classes + 1).permute(0, 3, 1, 2).float()
        target = F.max_pool2d(padded, 2 * reach + 1, stride=1).to(dtype)
    else:
        target = one_hot
    strict = [int(c) for c in strict_classes]
    if strict:
        if any(not 0 <= c < num_classes for c in strict):
            raise ValueError(f"strict_classes {strict} must be class ids in [0, {num_classes})")
        keep = torch.isin(ids, torch.tensor(strict, device=ids.device))[:, None]
        target = torch.where(keep, one_hot, target)
    if reduced_border:
        target = torch.where(label_boundaries(ids)[:, None], 2 * target, target)
    return target[0] if single else target


def relaxed_boundary_loss(logits: torch.Tensor, target: torch.Tensor, wt_bound: float = 1.0,
                          reduction: str = "mean") -> torch.Tensor:
    """The relaxed-boundary loss of `logits` (N, C, H, W) against the multi-hot `target` (N, C+1, H, W) of
    `relaxed_boundary_target`; `reduction` "mean" (over images), "sum" (the reference) or "none" ((N,) per image).
    See the module docstring."""
    if logits.dim() != 4 or target.dim() != 4 or target.shape[0] != logits.shape[0] \
            or target.shape[1] != logits.shape[1] + 1 or target.shape[2:] != logits.shape[2:]:
        raise ValueError(f"target must be the (N, C+1, H, W) multi-hot of relaxed_boundary_target for logits "
                         f"(N, C, H, W) = {tuple(logits.shape)} (last channel = ignore); got {tuple(target.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction {reduction!r} must be 'mean', 'sum' or 'none'")
    logits = logits.float()
    target = target.to(logits.dtype)
    real = target[:, :-1]
    # Image-weighted class weights from the target as given (a reduced-border 2 counts twice, as in the reference).
    hist = real.sum((2, 3)) / target.sum((1, 2, 3)).clamp_min(1e-12)[:, None]
    class_weights = torch.where(hist != 0, 1 + wt_bound * (1 - hist), torch.ones_like(hist))
    count = real.sum(1)  # |N(x)|, or 2 on a reduced-border boundary pixel
    valid = count > 0
    reduced = real.amax(1) > 1
    factor = torch.where(reduced, count, 1 / count.clamp_min(1))
    member = real > 0
    weight = (member * class_weights[:, :, None, None]).sum(1)
    # log P(N(x)) = logsumexp over the classes of N(x) - logsumexp over all; masked pixels read all classes (0).
    inside = logits.masked_fill(~(member | ~valid[:, None]), float("-inf"))
    log_p = torch.logsumexp(inside, 1) - torch.logsumexp(logits, 1)
    loss_map = torch.where(valid, -factor * weight * log_p, torch.zeros_like(log_p))
    per_image = loss_map.sum((1, 2)) / (valid.sum((1, 2)) + 1)
    if reduction == "none":
        return per_image
    return per_image.sum() if reduction == "sum" else per_image.mean()
