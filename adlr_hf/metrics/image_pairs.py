"""Image-pair plumbing the frame-quality metrics share (psnr, ssim, ie): batches from tensors or arrays, per-image
evaluation of (H, W, C) images, and the `datasets` feature of an image. Each metric folder carries this file (a
symlink to `adlr_hf/metrics/image_pairs.py`), because `evaluate.load(path)` copies a metric script together with the
files it imports from its own folder."""

import datasets
import evaluate
import numpy as np
import torch

# The paper whose evaluation psnr and ssim follow, and where: cited by both modules.
SDCNET_CITATION = """\
@inproceedings{reda2018sdc,
  title={SDC-Net: Video prediction using spatially-displaced convolution},
  author={Reda, Fitsum A. and Liu, Guilin and Shih, Kevin J. and Kirby, Robert and Barker, Jon and Tarjan, David
          and Tao, Andrew and Catanzaro, Bryan},
  booktitle={ECCV},
  year={2018}
}
"""
SDCNET_REFERENCES = ["https://github.com/NVIDIA/semantic-segmentation/tree/sdcnet",
                     "https://scikit-image.org/docs/stable/api/skimage.metrics.html"]

IMAGE_FEATURE = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


def as_batches(predictions, references) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (B, C, H, W) tensors from torch tensors or numpy arrays shaped (B, C, H, W), (C, H, W) or (H, W)."""
    pred = torch.as_tensor(np.asarray(predictions) if not isinstance(predictions, torch.Tensor) else predictions)
    ref = torch.as_tensor(np.asarray(references) if not isinstance(references, torch.Tensor) else references)
    if pred.shape != ref.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and references {tuple(ref.shape)} must have the same shape")
    if not 2 <= pred.dim() <= 4:
        raise ValueError(f"images must be (B, C, H, W), (C, H, W) or (H, W); got shape {tuple(pred.shape)}")
    if pred.numel() == 0:
        raise ValueError(f"images of shape {tuple(pred.shape)} are empty")
    for name, t in (("predictions", pred), ("references", ref)):
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold real pixel values; got dtype {t.dtype}")
    while pred.dim() < 4:
        pred, ref = pred.unsqueeze(0), ref.unsqueeze(0)
    return pred.to(torch.float64), ref.to(ref.device, torch.float64)


def images_to_batch(images) -> list[torch.Tensor]:
    out = []
    for i, image in enumerate(images):
        array = np.asarray(image, dtype=np.float64)
        if array.ndim != 3:
            raise ValueError(f"image {i} must be (H, W, C) (grayscale as (H, W, 1)); got shape {array.shape}")
        out.append(torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 0))))
    return out


def values_per_image(fn, predictions, references, **kwargs) -> list[float]:
    if len(predictions) == 0:
        raise ValueError("no images were given")
    values = []
    for i, (pred, ref) in enumerate(zip(images_to_batch(predictions), images_to_batch(references))):
        if pred.shape != ref.shape:
            raise ValueError(f"image {i}: prediction (H, W, C)={tuple(pred.permute(1, 2, 0).shape)} and reference "
                             f"{tuple(ref.permute(1, 2, 0).shape)} differ in shape")
        values.append(float(fn(pred, ref, **kwargs)[0]))
    return values


class _FramePairMetric(evaluate.Metric):
    """What the frame-pair metric modules share: the features ((H, W, C) images), the per-image loop and the
    result ({key: mean, "num_images", ["per_image"]}). A module subclasses `frame_pair_metric()` (the base is
    returned rather than imported by name, so that `evaluate.load` finds the module's own class) and sets `key`,
    `score` (a batched function of channel-first tensors), `description`, `citation`, `inputs_description` and
    `reference_urls`."""

    key = ""
    description = citation = inputs_description = ""
    reference_urls: list = []

    @staticmethod
    def score(predictions, references, **options):
        raise NotImplementedError

    def _info(self):
        return evaluate.MetricInfo(
            description=self.description, citation=self.citation, inputs_description=self.inputs_description,
            features=datasets.Features({"predictions": IMAGE_FEATURE, "references": IMAGE_FEATURE}),
            reference_urls=list(self.reference_urls))

    def _compute(self, predictions, references, per_image=False, **options):
        values = values_per_image(type(self).score, predictions, references, **options)
        out = {self.key: float(np.mean(values)), "num_images": len(values)}
        if per_image:
            out["per_image"] = values
        return out


def frame_pair_metric():
    return _FramePairMetric
