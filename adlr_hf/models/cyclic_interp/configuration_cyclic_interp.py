"""Configuration of Super SloMo trained with cycle consistency (Reda et al., "Unsupervised Video Interpolation Using
Cycle Consistency", arXiv 1906.05928; Super SloMo: Jiang et al., arXiv 1712.00080; reference
NVIDIA/unsupervised-video-interpolation, `models/HJSuperSloMo.py`, `parser.py`)."""

from transformers import PretrainedConfig

# The reference's `--mean_pix` (carried over from Super SloMo): RGB means on the 0-255 scale, subtracted from frames.
REFERENCE_MEAN_PIX = (109.93, 109.167, 101.455)
LEVELS = 5  # encoder levels of each U-Net, each followed by a 2x2 average pool: H and W shrink by 2**5
LEVEL_WIDTHS = (1, 2, 4, 8, 16)  # channels per level as multiples of base_width (32, 64, 128, 256, 512 at 32)
PROCESSOR_STRIDE = 64  # the reference's `--stride`: frames are padded to multiples of it before the model


def _check_number(name, value, low, integral=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low or \
            (integral and float(value) != int(value)):
        kind = "an integer" if integral else "a number"
        raise ValueError(f"{name}={value!r} must be {kind} >= {low}")
    return int(value) if integral else float(value)


class CyclicInterpConfig(PretrainedConfig):
    """Super SloMo (the reference's `HJSuperSloMo`): a flow-computation U-Net estimates F0→1 and F1→0 between two
    frames, the time-t flows are approximated from them, a flow-interpolation U-Net (its bottleneck concatenated with
    the flow net's) refines them and predicts a visibility map, and the frame at t is synthesised from both warped
    inputs.

    - `base_width`: channels of the first level (32 in the reference); the five levels have 1, 2, 4, 8, 16 times it
      (32 … 512), the bottleneck 16 times. 4 makes a tiny test model.
    - `flow_scale`: the frames are downsampled by this factor before the flow-computation U-Net and its flows
      upsampled (and multiplied) by it (the reference's `--flow_scale`: 1 by default and for UCF101, 2 in its
      SlowFlow / Sintel runs). H and W must be multiples of 32·flow_scale (`size_divisor`).
    - `num_interp`: in-between frames interpolated when no `timesteps` are given: t = i / (num_interp + 1),
      i = 1 … num_interp (the reference's `tlinespace`).
    - `mean_pix`: RGB means (0-255 scale) subtracted from the frames; the network, its warps and the losses work on
      mean-subtracted frames, as the reference.
    - `rgb_max`: the value range of frames (255); frames are scaled to 0-255 inside the model.

    Tensor parallelism (`base_model_tp_plan`): every two-conv block of both U-Nets (encoder levels, bottleneck,
    decoder levels) is a Megatron column → row pair on its channels: the first conv column-parallel (output
    channels split; the LeakyReLU acts per channel), the second row-parallel (input channels split, one all-reduce).
    The refine convs and the 1x1 heads stay replicated. transformers' own TP has no convolution styles; the plan
    applies through adlr_hf (`from_pretrained(..., tp_size=N)` or `apply_tp_plan`).
    """

    model_type = "adlr_cyclic_interp"
    # Per-batch loss terms are not per-example predictions (transformers' Trainer leaves them out of evaluation).
    keys_to_ignore_at_inference = ["loss_terms"]

    def __init__(self, base_width=32, flow_scale=1, num_interp=1, mean_pix=REFERENCE_MEAN_PIX, rgb_max=255.0,
                 **kwargs):
        base_width = _check_number("base_width", base_width, 1, integral=True)
        flow_scale = _check_number("flow_scale", flow_scale, 1, integral=True)
        num_interp = _check_number("num_interp", num_interp, 1, integral=True)
        if (not isinstance(mean_pix, (list, tuple)) or len(mean_pix) != 3 or
                any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in mean_pix)):
            raise ValueError(f"mean_pix={mean_pix!r} must be three numbers (R, G, B means on the 0-255 scale)")
        self.base_width = base_width
        self.flow_scale = flow_scale
        self.num_interp = num_interp
        self.mean_pix = [float(v) for v in mean_pix]
        self.rgb_max = _check_number("rgb_max", rgb_max, 1e-6)
        kwargs.setdefault("architectures", ["CyclicInterpForFrameInterpolation"])
        super().__init__(**kwargs)

    @property
    def sequence_length(self) -> int:
        """Input frames of one interpolation: the frames at t = 0 and t = 1."""
        return 2

    @property
    def size_divisor(self) -> int:
        """H and W of the frames must be multiples of this: 2**5 average pools after downsampling by flow_scale."""
        return 2 ** LEVELS * self.flow_scale

    @property
    def level_channels(self) -> list[int]:
        return [m * self.base_width for m in LEVEL_WIDTHS]

    @property
    def default_timesteps(self) -> list[float]:
        return [i / (self.num_interp + 1) for i in range(1, self.num_interp + 1)]

    @property
    def base_model_tp_plan(self) -> dict[str, str]:
        """Column → row pairs on the two convs of every block of both U-Nets (globs relative to the model)."""
        plan = {}
        for block in ("encoder.*", "bottleneck", "decoder.*"):
            plan[f"*.{block}.conv1"] = "conv_colwise"
            plan[f"*.{block}.conv2"] = "conv_rowwise"
        return plan

    def check_tp_size(self, tp_size: int) -> None:
        """The split channels (each block's first conv) must divide by the TP degree; the narrowest is base_width."""
        _check_number("tp_size", tp_size, 1, integral=True)
        if self.base_width % tp_size:
            raise ValueError(f"tp_size={tp_size} does not divide base_width={self.base_width} (the channels of the "
                             "first U-Net level, split across TP ranks); choose a tp_size that divides it")


__all__ = ["REFERENCE_MEAN_PIX", "CyclicInterpConfig"]
