"""DeepLabV3+ semantic segmentation with boundary label relaxation and video propagation (Zhu et al., arXiv
1812.01593; reference NVIDIA/semantic-segmentation, branch `sdcnet`): the dilated ResNet and WideResNet-38-A2
models, their image processor and the converter of the reference's checkpoints."""

from ...family import CardFacts, Converter, FamilySpec, Option, Paper, Variant
from .configuration_deeplabv3plus import BACKBONES, CAMVID_CLASSES, DeepLabV3PlusConfig
from .image_processing_deeplabv3plus import DeepLabV3PlusImageProcessor
from .modeling_deeplabv3plus import (
    DeepLabV3PlusForSemanticSegmentation,
    DeepLabV3PlusModel,
    DeepLabV3PlusPreTrainedModel,
)

PAPER = Paper("Improving Semantic Segmentation via Video Propagation and Label Relaxation", ("1812.01593",),
              "https://github.com/NVIDIA/semantic-segmentation/tree/sdcnet")


def _register_processor() -> None:
    from transformers import AutoImageProcessor

    # Saved processor configs name transformers' SegformerImageProcessor (loads without adlr_hf or remote code).
    AutoImageProcessor.register(DeepLabV3PlusConfig,
                                image_processor_classes={"torchvision": DeepLabV3PlusImageProcessor}, exist_ok=True)


SPEC = FamilySpec(
    name="deeplabv3plus",
    config_class=DeepLabV3PlusConfig,
    models={"AutoModel": DeepLabV3PlusModel, "AutoModelForSemanticSegmentation": DeepLabV3PlusForSemanticSegmentation},
    default_task="semantic-segmentation",
    variants=(
        Variant("deeplabv3plus-tiny", dict(backbone="wider_resnet38_a2", base_width=4, depths=[1, 1, 1, 1, 1, 1],
                                           aspp_channels=16, skip_channels=8, decoder_channels=16, image_size=32),
                "a WideResNet-A2 trunk at 1/16 width with one block per module, for tests and demos"),
        Variant("deeplabv3plus-resnet50-os8", dict(backbone="resnet50", output_stride=8),
                "torchvision ResNet-50 trunk, output stride 8 (the reference's DeepR50V3PlusD_m1)"),
        Variant("deeplabv3plus-resnet50-os16", dict(backbone="resnet50", output_stride=16),
                "torchvision ResNet-50 trunk, output stride 16"),
        Variant("deeplabv3plus-resnet101-os8", dict(backbone="resnet101", output_stride=8),
                "torchvision ResNet-101 trunk, output stride 8"),
        Variant("deeplabv3plus-wrn38-os8", dict(backbone="wider_resnet38_a2", output_stride=8),
                "the paper's headline model (DeepWV3Plus): WideResNet-38-A2 trunk, output stride 8; CamVid test "
                "mIoU 82.9 and Cityscapes test 83.5 in the paper (with video propagation and label relaxation)"),
    ),
    converters=(Converter("seg-relax", "adlr_hf.models.deeplabv3plus.convert_deeplabv3plus:convert_seg_relax",
                          "an NVIDIA/semantic-segmentation checkpoint (DeepWV3Plus / DeepR50V3PlusD_m1 .pth, or the "
                          "wider_resnet38.pth.tar / torchvision ResNet trunk weights)",
                          (Option("--backbone", dict(default=None, choices=sorted(BACKBONES),
                                                     help="seg-relax: the checkpoint's trunk (default: inferred from "
                                                          "its keys)")),
                           Option("--num-labels", dict(default=None, type=int,
                                                       help="seg-relax: classes of a trunk-only checkpoint's new head "
                                                            "(default: the classifier's, else CamVid's 11)")),
                           Option("--output-stride", dict(default=None, type=int, choices=[8, 16],
                                                          help="seg-relax: output stride of a ResNet trunk (default "
                                                               "8, the reference's)")))),),
    processor=DeepLabV3PlusImageProcessor.for_config,
    register=_register_processor,
    card=CardFacts(
        title="DeepLabV3+ (video propagation and boundary label relaxation)",
        paper=PAPER,
        description="a semantic segmentation network: a dilated trunk (WideResNet-38-A2 or ResNet) feeds an atrous "
                    "spatial pyramid pooling module and a decoder that fuses it with low-level features, predicting a "
                    "class for every pixel; trained with the paper's boundary label relaxation loss and optionally "
                    "on extra (image, label) pairs synthesised by propagating labels along SDC-Net's predicted "
                    "motion; its head convolutions split their channels across GPUs with tensor parallelism",
        intended_use="Semantic segmentation of street scenes (CamVid, Cityscapes, KITTI) and research on label "
                     "propagation and boundary relaxation.",
        license_notes="The reference code is NVIDIA's (CC BY-NC-SA 4.0); weights converted from its releases carry "
                      "its terms, and the datasets (CamVid, Cityscapes) their own.",
        tags=("semantic-segmentation", "deeplabv3plus", "label-relaxation", "video-propagation",
              "tensor-parallelism"),
        limitations=("A segmentation model only knows the classes and the kind of scenes it was trained on; other "
                     "scenes get those classes anyway.",
                     "The image-pooling branch has a batch norm over 1×1 maps: training needs at least two images per "
                     "batch (per GPU without SyncBatchNorm).")),
    unsupported={"output_attentions": "a convolutional network has no attention",
                 "resize_token_embeddings": "an image model has no token embeddings",
                 "gradient_checkpointing": "recomputing a block would update its BatchNorm running statistics twice"},
)

__all__ = [
    "CAMVID_CLASSES", "SPEC", "DeepLabV3PlusConfig", "DeepLabV3PlusForSemanticSegmentation",
    "DeepLabV3PlusImageProcessor", "DeepLabV3PlusModel", "DeepLabV3PlusPreTrainedModel",
]
