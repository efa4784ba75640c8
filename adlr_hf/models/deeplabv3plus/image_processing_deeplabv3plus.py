"""Image processor of DeepLabV3+ (arXiv 1812.01593; reference NVIDIA/semantic-segmentation branch `sdcnet`, `eval.py`
and `demo.py`: RGB images scaled to [0, 1] and normalised with ImageNet's mean / std).

transformers' Segformer processor runs these steps (resize to a fixed height × width, bilinear; rescale; normalise
with ImageNet's mean / std; segmentation maps resized with nearest neighbours) and has the
`post_process_semantic_segmentation` the `image-segmentation` pipeline calls (bilinear resize of the logits to each
image's size, then argmax). This subclass only takes its size from the model's config. Saved configs name
`SegformerImageProcessor` (every value written out), so a published folder's preprocessing loads with plain
transformers, without remote code.
"""

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.models.segformer.image_processing_segformer import SegformerImageProcessor


class DeepLabV3PlusImageProcessor(SegformerImageProcessor):
    """Resize to `size` (height × width, bilinear), scale to [0, 1], normalise with ImageNet's mean / std; outputs
    `pixel_values` (N, 3, H, W) and, given `segmentation_maps`, `labels` (N, H, W). `for_config(config)` uses the
    config's `image_size` (square); pass `size={"height": 720, "width": 960}` for full-resolution CamVid."""

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 512, "width": 512}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_reduce_labels = False

    @classmethod
    def for_config(cls, config, **kwargs) -> "DeepLabV3PlusImageProcessor":
        kwargs.setdefault("size", {"height": config.image_size, "width": config.image_size})
        return cls(**kwargs)

    def to_dict(self):
        output = super().to_dict()
        output["image_processor_type"] = "SegformerImageProcessor"  # identical steps; every value is written out
        return output


__all__ = ["DeepLabV3PlusImageProcessor"]
