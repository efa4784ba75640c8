"""Image processor of the PD-ResNet / PD-VGG classifiers (arXiv 1811.11718; reference NVIDIA/partialconv `main.py`).

The reference's evaluation transform: `Resize(256)` (shorter side, bilinear) → `CenterCrop(224)` → `ToTensor()` →
`Normalize(ImageNet mean, std)`. transformers' BiT processor runs exactly these steps (resize shorter side → center
crop → rescale → normalize) but defaults to bicubic and CLIP's mean/std; this subclass only changes the defaults.

Saved configs name `BitImageProcessor` (with every value written out), so a published folder's preprocessing loads
with plain transformers: no remote code, no adlr_hf, and no trust-remote-code prompt (transformers 5.24's pipelines
probe for a video processor and would prompt for a custom image processor's `auto_map`).
"""

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.models.bit.image_processing_bit import BitImageProcessor


class PDResNetImageProcessor(BitImageProcessor):
    """Resize the shorter side to 256 (bilinear), center-crop 224×224, scale to [0, 1], normalise with ImageNet's
    mean/std; outputs `pixel_values` (N, 3, 224, 224). Pass `size={"shortest_edge": s}` / `crop_size={"height": c,
    "width": c}` for other resolutions (e.g. 36 / 32 for CIFAR-sized models); `for_config(config)` takes them from a
    `PDResNetConfig`'s `resize_size` / `image_size`."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 256}
    default_to_square = False
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    @classmethod
    def for_config(cls, config, **kwargs) -> "PDResNetImageProcessor":
        """The processor matching a `PDResNetConfig`'s `image_size` (crop) and `resize_size` (shorter side)."""
        kwargs.setdefault("size", {"shortest_edge": config.resize_size})
        kwargs.setdefault("crop_size", {"height": config.image_size, "width": config.image_size})
        return cls(**kwargs)

    def to_dict(self):
        output = super().to_dict()
        output["image_processor_type"] = "BitImageProcessor"  # identical steps; every value is written out
        return output


__all__ = ["PDResNetImageProcessor"]
