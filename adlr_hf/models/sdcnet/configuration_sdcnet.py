"""Configuration of SDC-Net (Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution",
arXiv 1811.00684; reference NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py`)."""

from transformers import PretrainedConfig

FLOW_SOURCES = ("opencv-dis", "opencv-farneback", "raft-small", "raft-large", "precomputed", "none")
# The reference's flow statistics (buffers `flow_mean` / `flow_std` of sdc_net2d.py), measured on FlowNet2 flows.
REFERENCE_FLOW_MEAN = (-0.94427323, -1.23077035)
REFERENCE_FLOW_STD = (13.77204132, 7.47463894)
REFERENCE_FLOW_STATS_SOURCE = "flownet2"
DOWNSAMPLING = 64  # six stride-2 encoder stages: H and W must be multiples of 2**6
# Channels per stage as multiples of base_width / 32 (the reference: FlowNetS halved, `factor = 2`).
ENCODER_WIDTHS = (32, 64, 128, 256, 256, 512)  # conv1 .. conv6 (conv3..conv6 each with a 3×3 `_1` conv after)
DECODER_WIDTHS = (256, 128, 64, 32, 16, 8)  # deconv5 .. deconv0


def _positive_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return value


def _pair(name, value):
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or
            any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
        raise ValueError(f"{name}={value!r} must be two numbers (u, v)")
    return [float(v) for v in value]


class SDCNetConfig(PretrainedConfig):
    """SDC-Net: a FlowNetS-style encoder-decoder over the past frames and the optical flows between them that predicts
    the motion of the next frame (and, for the paper's full model, per-pixel separable kernels).

    - `sequence_length`: past frames T the model sees (2 in the reference). The input holds 3·N image channels and
      2·(N-1) flow channels for N frames (N = T, or T + 1 with `reconstruction`); with flow_source "none", 3·N.
    - `reconstruction`: the reference's `SDCNet2DRecon`: the frame to reconstruct is also an input (flows are computed
      against it too) and the model warps the last past frame I_t (`images[-2]`) towards it.
    - `kernel_size`: k of the paper's spatially-displaced convolution; 0 (or None) is the released flow-only model
      (bilinear warp of the last frame); k >= 1 adds 2k kernel channels (k vertical, k horizontal taps) beside the 2
      motion channels, applied through the SDC op. The paper's k is not documented; 11 follows a re-implementation.
    - `flow_source`: the frozen optical flow the model reads, computed inside `forward` from the raw frames (never
      trained, never saved): "opencv-dis" (default) or "opencv-farneback" (OpenCV, no weights), "raft-small" /
      "raft-large" (torchvision RAFT with the weights file `flow_weights`), "precomputed" (pass `input_flows`), or
      "none" (images only).
    - `flow_mean` / `flow_std`: per-channel (u, v) flow statistics for the input normalisation (f - mean)/(3 std) and
      the output de-normalisation; `flow_stats_source` names the flow source they were measured on. The reference's
      values are FlowNet2's; training a model from scratch with another source recomputes them on its data.
    - `rgb_max`: the value range of frames (255); images are normalised by their per-sample colour mean / rgb_max.
    - `base_width`: channels of conv1 (32 in the reference); every other width scales with it (32, 64, 128, 256, 256,
      512 encoder; 256, 128, 64, 32, 16, 8 decoder at 32). A multiple of 4; 8 makes a tiny test model.
    - `input_channel_order`: "rgb" (frames as adlr_hf reads them) or "bgr" for weights trained by the reference's
      loader, which reads frames with cv2 (BGR): the images the network sees are flipped to BGR first.

    Tensor parallelism (`base_model_tp_plan`): Megatron's column → row pair on the channels of each encoder stage
    that has a 3×3 follow-up conv: conv3, conv4, conv5, conv6 column-parallel (their output channels split, the
    LeakyReLU acts per channel), conv3_1 … conv6_1 row-parallel (input channels split, one all-reduce). conv1, conv2
    (their outputs feed the decoder's skip connections), the transposed-conv decoder and the heads stay replicated.
    transformers' own TP (`DistributedConfig`) has no convolution styles: the plan applies through adlr_hf
    (`from_pretrained(..., tp_size=N)` or `apply_tp_plan`).
    """

    model_type = "adlr_sdcnet"

    def __init__(
        self,
        sequence_length=2,
        reconstruction=False,
        kernel_size=0,
        flow_source="opencv-dis",
        flow_weights=None,
        flow_mean=REFERENCE_FLOW_MEAN,
        flow_std=REFERENCE_FLOW_STD,
        flow_stats_source=REFERENCE_FLOW_STATS_SOURCE,
        rgb_max=255.0,
        base_width=32,
        input_channel_order="rgb",
        **kwargs,
    ):
        _positive_int("sequence_length", sequence_length, 2)
        kernel_size = 0 if kernel_size is None else _positive_int("kernel_size", kernel_size, 0)
        if flow_source not in FLOW_SOURCES:
            raise ValueError(f"flow_source={flow_source!r} is not one of {FLOW_SOURCES}")
        if flow_weights is not None and not flow_source.startswith("raft-"):
            raise ValueError(f"flow_weights={flow_weights!r} only applies to flow_source 'raft-small' / 'raft-large' "
                             f"(the RAFT weights file); flow_source is {flow_source!r}")
        flow_mean, flow_std = _pair("flow_mean", flow_mean), _pair("flow_std", flow_std)
        if min(flow_std) <= 0:
            raise ValueError(f"flow_std={flow_std} must be positive")
        _positive_int("base_width", base_width, 4)
        if base_width % 4:
            raise ValueError(f"base_width={base_width} must be a multiple of 4 (the last decoder stage has "
                             "base_width / 4 channels)")
        if isinstance(rgb_max, bool) or not isinstance(rgb_max, (int, float)) or rgb_max <= 0:
            raise ValueError(f"rgb_max={rgb_max!r} must be a positive number (255 for 8-bit frames)")
        if input_channel_order not in ("rgb", "bgr"):
            raise ValueError(f"input_channel_order={input_channel_order!r} must be 'rgb' or 'bgr'")
        self.sequence_length = sequence_length
        self.reconstruction = bool(reconstruction)
        self.kernel_size = kernel_size
        self.flow_source = flow_source
        self.flow_weights = None if flow_weights is None else str(flow_weights)
        self.flow_mean, self.flow_std = flow_mean, flow_std
        self.flow_stats_source = str(flow_stats_source)
        self.rgb_max = float(rgb_max)
        self.base_width = base_width
        self.input_channel_order = input_channel_order
        kwargs.setdefault("architectures", [self.default_architecture])
        super().__init__(**kwargs)

    @property
    def default_architecture(self) -> str:
        """The class this config describes: the reference's `SDCNet2DRecon` / `SDCNet2D`, or the full model."""
        if self.kernel_size:
            return "SDCNetForFramePrediction"
        return "SDCNet2DRecon" if self.reconstruction else "SDCNet2D"

    @property
    def uses_flow(self) -> bool:
        return self.flow_source != "none"

    @property
    def num_input_frames(self) -> int:
        """Frames the network sees: the T past frames, plus the target with `reconstruction`."""
        return self.sequence_length + int(self.reconstruction)

    @property
    def num_input_channels(self) -> int:
        frames = self.num_input_frames
        return 3 * frames + (2 * (frames - 1) if self.uses_flow else 0)

    @property
    def size_divisor(self) -> int:
        """H and W of the frames must be multiples of this (the processor pads to it)."""
        return DOWNSAMPLING

    @property
    def encoder_channels(self) -> list[int]:
        return [w * self.base_width // 32 for w in ENCODER_WIDTHS]

    @property
    def decoder_channels(self) -> list[int]:
        return [w * self.base_width // 32 for w in DECODER_WIDTHS]

    @property
    def base_model_tp_plan(self) -> dict[str, str]:
        """Column → row pairs on conv3..conv6 and their 3×3 follow-ups (globs relative to `SDCNetModel`)."""
        plan = {}
        for stage in (3, 4, 5, 6):
            plan[f"conv{stage}.conv"] = "conv_colwise"
            plan[f"conv{stage}_1.conv"] = "conv_rowwise"
        return plan

    def fit_input_statistics(self, windows) -> dict | None:
        """Measure `flow_mean` / `flow_std` with this config's flow source on `windows` (frame tensors (N, 3, H, W)
        in [0, rgb_max], consecutive pairs used as the model uses them) when the stored statistics come from another
        source; returns what changed, or None (no flow, precomputed flows, or statistics already of this source)."""
        if not self.uses_flow or self.flow_source == "precomputed" or self.flow_stats_source == self.flow_source:
            return None
        try:  # a published folder's config loads without adlr_hf; measuring statistics needs its flow sources
            from adlr_hf.layers.flow import build_flow_source, flow_statistics
        except ImportError as err:
            raise ImportError("measuring flow statistics needs adlr_hf's flow sources: pip install adlr_hf") from err

        options = {"weights": self.flow_weights} if self.flow_source.startswith("raft-") else {}
        source = build_flow_source(self.flow_source, **options)
        scale = 255.0 / self.rgb_max

        def flows():
            for window in windows:
                frames = window.float() * scale
                yield source(frames[1:], frames[:-1])

        stats = flow_statistics(flows())
        previous = self.flow_stats_source
        self.flow_mean, self.flow_std = list(stats.mean), list(stats.std)
        self.flow_stats_source = self.flow_source
        return {"flow_mean": self.flow_mean, "flow_std": self.flow_std, "flow_stats_source": self.flow_source,
                "replaced": previous, "pixels": stats.count}

    def check_tp_size(self, tp_size: int) -> None:
        """The split channels (conv3..conv6 outputs) must divide by the TP degree."""
        _positive_int("tp_size", tp_size, 1)
        for stage, width in zip((3, 4, 5, 6), self.encoder_channels[2:]):
            if width % tp_size:
                raise ValueError(f"tp_size={tp_size} does not divide the {width} channels of conv{stage} "
                                 f"(base_width={self.base_width}); choose a tp_size that divides them, or a "
                                 "base_width that is a multiple of 4·tp_size")


__all__ = ["DOWNSAMPLING", "FLOW_SOURCES", "REFERENCE_FLOW_MEAN", "REFERENCE_FLOW_STD", "SDCNetConfig"]
