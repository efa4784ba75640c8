"""SDC-Net video frame prediction (Reda et al., arXiv 1811.00684; reference NVIDIA/semantic-segmentation, branch
`sdcnet`): the released flow-only models `SDCNet2D` / `SDCNet2DRecon` and the paper's full model with per-pixel
kernels applied by the spatially-displaced convolution, their video processor, converter and the
`video-frame-prediction` pipeline."""

from functools import partial

from ...family import CardFacts, Converter, FamilySpec, Option, Paper, Variant
from ...video_registration import register_video_family
from .configuration_sdcnet import FLOW_SOURCES, SDCNetConfig
from .modeling_sdcnet import (
    SDCNet2D,
    SDCNet2DRecon,
    SDCNetForFramePrediction,
    SDCNetModel,
    SDCNetOutput,
    SDCNetPreTrainedModel,
)
from .video_processing_sdcnet import SDCNetVideoProcessor

PIPELINE_TASK = "video-frame-prediction"

SDCNET = Paper("SDC-Net: Video prediction using spatially-displaced convolution", ("1811.00684",),
               "https://github.com/NVIDIA/semantic-segmentation/tree/sdcnet")


SPEC = FamilySpec(
    name="sdcnet",
    config_class=SDCNetConfig,
    # One config, three classes, chosen by `architectures` (set from kernel_size / reconstruction).
    models={"AutoModel": (SDCNetForFramePrediction, SDCNet2D, SDCNet2DRecon)},
    default_task="next-frame",
    variants=(
        Variant("sdcnet-tiny", dict(base_width=8, kernel_size=3), "the full model (k=3) at 1/4 width, for tests and "
                                                                   "demos"),
        Variant("sdcnet2d-tiny", dict(base_width=8), "flow-only at 1/4 width, for tests and demos"),
        Variant("sdcnet2d", {}, "the released flow-only next-frame model (SDCNet2D)"),
        Variant("sdcnet2d-recon", dict(reconstruction=True),
                "the released reconstruction model (SDCNet2DRecon, sdc_cityscapes_vrec)"),
        Variant("sdcnet-k11", dict(kernel_size=11), "the paper's full model with 11-tap kernels (k is not documented; "
                                                    "11 follows a re-implementation)"),
    ),
    converters=(Converter("sdcnet", "adlr_hf.models.sdcnet.convert_sdcnet:convert_sdcnet",
                          "an NVIDIA/semantic-segmentation sdcnet checkpoint (e.g. sdc_cityscapes_vrec.pth.tar)",
                          (Option("--sdcnet-class", dict(default=None, choices=["SDCNet2D", "SDCNet2DRecon"],
                                                         help="sdcnet: the model the checkpoint holds (default: its "
                                                              "'arch' entry, else SDCNet2DRecon)")),
                           Option("--flow-source", dict(default=None, choices=list(FLOW_SOURCES),
                                                        help="sdcnet: flow source of the converted model (default "
                                                             "opencv-dis)")))),),
    processor=SDCNetVideoProcessor.for_config,
    register=partial(register_video_family, SDCNetConfig, SDCNetVideoProcessor, PIPELINE_TASK,
                     "adlr_hf.models.sdcnet.pipeline_sdcnet:SDCNetFramePredictionPipeline"),
    card=CardFacts(
        title="SDC-Net",
        paper=SDCNET,
        description="a video frame predictor: a FlowNetS-style encoder-decoder reads the last frames and the optical "
                    "flows between them (computed by a frozen flow source) and predicts the motion of every pixel of "
                    "the next frame, which is synthesised by warping the last frame (the released flow-only "
                    "models) or, in the paper's full model, by per-pixel separable kernels applied at the displaced "
                    "location (spatially-displaced convolution); its encoder convolutions split their channels "
                    "across GPUs with Megatron-style tensor parallelism",
        intended_use="Research on video prediction; synthesising extra (image, label) training pairs for semantic "
                     "segmentation by propagating labels along predicted motion (`propagate_labels`).",
        license_notes="The reference code is NVIDIA's (CC BY-NC-SA 4.0 for the semantic-segmentation repository); "
                      "weights converted from its releases carry its terms.",
        tags=("video-prediction", "optical-flow", "spatially-displaced-convolution", "tensor-parallelism"),
        limitations=(
            "Predictions follow the motion of the input frames: disocclusions, new objects and scene cuts are not "
            "predicted, and long roll-outs blur and drift.",
            "The input flows come from the configured flow source (OpenCV DIS by default), not the reference's "
            "FlowNet2; a model must be used with the flow source (and the flow statistics) it was trained with.",
        )),
    unsupported={"output_attentions": "a convolutional model has no attention",
                 "gradient_checkpointing": "its conv stages are not checkpointable layers (activations of a few "
                                           "MB per 256x256 window)",
                 "resize_token_embeddings": "a video model has no token embeddings"},
)

__all__ = [
    "SPEC", "SDCNet2D", "SDCNet2DRecon", "SDCNetConfig", "SDCNetForFramePrediction",
    "SDCNetModel", "SDCNetOutput", "SDCNetPreTrainedModel", "SDCNetVideoProcessor",
]
