"""Super SloMo video frame interpolation trained with cycle consistency and pseudo-supervision (Reda et al., arXiv
1906.05928; Super SloMo: Jiang et al., arXiv 1712.00080; reference NVIDIA/unsupervised-video-interpolation): the
model, its video processor, the converter of the released checkpoints and the `video-frame-interpolation`
pipeline. It trains with the `video-interpolation` task (adlr_hf/tasks/video_interpolation.py)."""

from functools import partial

from ...family import CardFacts, Converter, FamilySpec, Option, Paper, Variant
from ...video_registration import register_video_family
from .configuration_cyclic_interp import CyclicInterpConfig
from .modeling_cyclic_interp import (
    CyclicInterpForFrameInterpolation,
    CyclicInterpOutput,
    CyclicInterpPreTrainedModel,
)
from .video_processing_cyclic_interp import CyclicInterpVideoProcessor

PIPELINE_TASK = "video-frame-interpolation"

UVI = Paper("Unsupervised Video Interpolation Using Cycle Consistency (on Super SloMo: High Quality Estimation of "
            "Multiple Intermediate Frames for Video Interpolation)", ("1906.05928", "1712.00080"),
            "https://github.com/NVIDIA/unsupervised-video-interpolation")


SPEC = FamilySpec(
    name="cyclic_interp",
    config_class=CyclicInterpConfig,
    models={"AutoModel": CyclicInterpForFrameInterpolation},
    default_task="video-interpolation",
    variants=(
        Variant("cyclic-interp-tiny", dict(base_width=4), "Super SloMo at 1/8 width, for tests and demos"),
        Variant("cyclic-interp-small", dict(base_width=8), "Super SloMo at 1/4 width, for CPU benchmarks"),
        Variant("cyclic-interp", {}, "the reference's Super SloMo (HJSuperSloMo), flow_scale 1 (its default, UCF101)"),
        Variant("cyclic-interp-fs2", dict(flow_scale=2),
                "the reference's Super SloMo with flow_scale 2 (its SlowFlow / Sintel runs)"),
    ),
    converters=(Converter("uvi", "adlr_hf.models.cyclic_interp.convert_cyclic_interp:convert_uvi",
                          "an NVIDIA/unsupervised-video-interpolation checkpoint (e.g. "
                          "unsupervised_adobe2slowflow.pth)",
                          (Option("--flow-scale", dict(type=float, default=None,
                                                       help="uvi: the flow_scale the checkpoint was trained with (not "
                                                            "stored in it; default 1, the reference's; 2 for its "
                                                            "SlowFlow / Sintel models)")),)),),
    processor=CyclicInterpVideoProcessor.for_config,
    register=partial(register_video_family, CyclicInterpConfig, CyclicInterpVideoProcessor, PIPELINE_TASK,
                     "adlr_hf.models.cyclic_interp.pipeline_cyclic_interp:CyclicInterpPipeline"),
    card=CardFacts(
        title="Super SloMo with cycle consistency",
        paper=UVI,
        description="a video frame interpolator: a flow-computation U-Net estimates the optical flows between two "
                    "frames, the flows to any time t in between are approximated from them and refined by a second "
                    "U-Net that also predicts visibility maps, and the frame at t is a visibility-weighted blend of "
                    "both inputs warped to t; it can be trained without ground-truth in-between frames by cycle "
                    "consistency (frames interpolated from a triplet must reconstruct its middle frame) and "
                    "pseudo-supervision from a frozen teacher; its U-Net convolutions split their channels across "
                    "GPUs with Megatron-style tensor parallelism",
        intended_use="Research on video frame interpolation (slow motion, frame-rate up-conversion), in particular "
                     "adapting an interpolator to footage for which no high-frame-rate ground truth exists.",
        license_notes="The reference repository's LICENSE is the NVIDIA Source Code License (1-Way Commercial); its "
                      "Python files carry a BSD-3-Clause-style notice. Weights converted from its releases carry "
                      "the reference's terms.",
        tags=("video-frame-interpolation", "optical-flow", "cycle-consistency", "super-slomo", "tensor-parallelism"),
        limitations=(
            "Interpolation follows the motion between the two input frames: large or non-linear motion, motion blur, "
            "occlusions the visibility maps cannot explain and scene cuts give ghosting or blur.",
            "Frames are zero-padded to multiples of 64 (the reference's stride) and the padding is cropped away; "
            "content near the bottom and right edges sees the padding.",
        )),
    unsupported={"output_attentions": "a convolutional model has no attention",
                 "gradient_checkpointing": "its U-Net blocks are not checkpointable layers (the skip connections "
                                           "span the whole network)",
                 "resize_token_embeddings": "a video model has no token embeddings"},
)

__all__ = [
    "SPEC", "CyclicInterpConfig", "CyclicInterpForFrameInterpolation", "CyclicInterpOutput",
    "CyclicInterpPreTrainedModel", "CyclicInterpVideoProcessor",
]
