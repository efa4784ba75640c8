"""Partial-convolution padding classifiers (Liu et al., arXiv 1811.11718; reference NVIDIA/partialconv): PD-ResNet /
PD-VGG with torchvision's layout and the zero/reflect/replicate padding ablation."""

from ...family import CardFacts, Converter, FamilySpec, Option, Paper, Variant
from .configuration_pd_resnet import PADDING_MODES, RESNET_ARCHS, VGG_ARCHS, PDResNetConfig
from .image_processing_pd_resnet import PDResNetImageProcessor
from .modeling_pd_resnet import (
    PDResNetBasicBlock,
    PDResNetBottleneck,
    PDResNetForImageClassification,
    PDResNetModel,
    PDResNetPreTrainedModel,
    PDVGGClassifier,
    PDVGGFeatures,
)


def _pd(name, arch, padding_mode, description, **extra) -> Variant:
    return Variant(name, dict(arch=arch, padding_mode=padding_mode, **extra), description)


def _variants() -> tuple[Variant, ...]:
    # ImageNet top-1 in the descriptions: the README's 5-run averages (1-crop) for the rows the paper reports.
    top1 = {"resnet50": (76.611, 76.132, 76.174, 76.207), "resnet101": (78.192, 77.832, 77.852, 77.903),
            "resnet152": (78.432, 78.184, 77.805, 78.024), "vgg16-bn": (73.997, 73.681, 73.456, 73.756),
            "vgg19-bn": (75.129, 74.442, 74.004, 74.330)}
    out = [
        _pd("pd-resnet-tiny", "resnet18", "partial", "for tests and demos (CIFAR-sized)", depths=[1, 1, 1, 1],
            base_width=8, num_labels=10, image_size=32, resize_size=36),
        _pd("pd-vgg-tiny", "vgg11", "partial", "for tests and demos (CIFAR-sized)", batch_norm=True, base_width=8,
            vgg_hidden_size=64, num_labels=10, image_size=32, resize_size=36),
    ]
    for arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg11-bn", "vgg13",
                 "vgg13-bn", "vgg16", "vgg16-bn", "vgg19", "vgg19-bn"):
        kwargs = {"batch_norm": True} if arch.endswith("-bn") else {}
        base = arch.removesuffix("-bn")
        row = top1.get(arch)
        out.append(_pd(f"pd-{arch}", base, "partial", f"partial padding; ImageNet top-1 {row[0]}" if row else
                       "partial padding", **kwargs))
        out.append(_pd(f"{arch}-zeros", base, "zeros", f"zero padding (torchvision); ImageNet top-1 {row[1]}" if row
                       else "zero padding (torchvision)", **kwargs))
        if row:
            out.append(_pd(f"{arch}-reflect", base, "reflect", f"reflect padding ablation; ImageNet top-1 {row[2]}",
                           **kwargs))
            out.append(_pd(f"{arch}-replicate", base, "replicate",
                           f"replicate padding ablation; ImageNet top-1 {row[3]}", **kwargs))
    return tuple(out)


def _register_processor() -> None:
    from transformers import AutoImageProcessor

    # Saved processor configs name transformers' BitImageProcessor (loads without adlr_hf or remote code).
    AutoImageProcessor.register(PDResNetConfig, image_processor_classes={"torchvision": PDResNetImageProcessor},
                                exist_ok=True)


_IMAGE_OPTIONS = (
    Option("--arch", dict(default=None, help="image models: resnet18..152 / vgg11..19 (inferred if omitted)")),
    Option("--padding-mode", dict(default=None, choices=list(PADDING_MODES),
                                  help="image models: padding of the converted model (default: from the source kind)")),
)

SPEC = FamilySpec(
    name="pd_resnet",
    config_class=PDResNetConfig,
    models={"AutoModel": PDResNetModel, "AutoModelForImageClassification": PDResNetForImageClassification},
    default_task="image-classification",
    variants=_variants(),
    converters=(
        Converter("partialconv", "adlr_hf.models.pd_resnet.convert_pd_resnet:convert_partialconv",
                  "an NVIDIA/partialconv checkpoint", _IMAGE_OPTIONS),
        Converter("torchvision", "adlr_hf.models.pd_resnet.convert_pd_resnet:convert_torchvision",
                  "a torchvision ResNet/VGG state dict", _IMAGE_OPTIONS),
    ),
    register=_register_processor,
    processor=PDResNetImageProcessor.for_config,
    card=CardFacts(
        title="PD-ResNet / PD-VGG",
        paper=Paper("Partial Convolution based Padding", ("1811.11718",), "https://github.com/NVIDIA/partialconv"),
        description="a ResNet or VGG image classifier (torchvision's layout and parameter names) whose zero padding "
                    "is replaced by partial-convolution padding: each padded convolution renormalises its border "
                    "windows by the share of the window that lies inside the image; its residual blocks split "
                    "their channels across GPUs with Megatron-style tensor parallelism",
        intended_use="Image classification research; comparing padding schemes.",
        tags=("resnet", "vgg", "partial-convolution", "tensor-parallelism"),
        limitations=("An image classifier only knows the classes it was trained on; out-of-distribution images "
                     "still get one of them, often with high confidence.",)),
    unsupported={"output_attentions": "a convolutional network has no attention",
                 "resize_token_embeddings": "an image model has no token embeddings",
                 "gradient_checkpointing": "recomputing a block would update its BatchNorm running statistics twice"},
)

__all__ = [
    "PADDING_MODES", "RESNET_ARCHS", "SPEC", "VGG_ARCHS", "PDResNetBasicBlock", "PDResNetBottleneck",
    "PDResNetConfig", "PDResNetForImageClassification", "PDResNetImageProcessor", "PDResNetModel",
    "PDResNetPreTrainedModel", "PDVGGClassifier", "PDVGGFeatures",
]
