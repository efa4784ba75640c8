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

__all__ = [
    "PADDING_MODES", "RESNET_ARCHS", "VGG_ARCHS", "PDResNetBasicBlock", "PDResNetBottleneck", "PDResNetConfig",
    "PDResNetForImageClassification", "PDResNetImageProcessor", "PDResNetModel", "PDResNetPreTrainedModel",
    "PDVGGClassifier", "PDVGGFeatures",
]
