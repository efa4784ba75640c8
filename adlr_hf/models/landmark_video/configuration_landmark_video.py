"""Configuration of the unsupervised landmark model (Shih et al., "Video Interpolation and Prediction with
Unsupervised Landmarks", arXiv 1909.02749; reference NVIDIA/UnsupervisedLandmarkLearning, `configs/defaults.yaml`,
`configs/train_args_bbc_pose.yaml`, `models/part_factorized_model.py`)."""

from transformers import PretrainedConfig

SIZE_DIVISOR = 16  # the pose encoder halves H and W four times; the SPADE decoder starts at 1/16 resolution
MIN_SIZE = 64  # instance norm at the deepest (1/16) level normalises over at least 4x4 pixels
# The reference's VGG19 layer weights with `reduced_w` (relu1_2, relu2_2, relu3_2, relu4_2, pixels).
REDUCED_VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
MAX_DISCRIMINATORS = MIN_SIZE.bit_length() - 1  # the coarsest scale of a MIN_SIZE frame is still 2x2 pixels


def _positive_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return value


def _positive_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}={value!r} must be a positive number")
    return float(value)


class LandmarkVideoConfig(PretrainedConfig):
    """The part-factorised landmark model: a U-Net pose encoder gives K heatmaps, their soft-argmax means and
    covariances are rendered as Cauchy-like maps 1/(1 + dᵀΣ⁻¹d), per-part appearance vectors are pooled from the
    appearance frame and projected onto the target pose's maps, and a SPADE generator decodes the frame.

    - `num_landmarks`: K (30 in the reference).
    - `pose_encoder_filters`: channels of the pose U-Net's first conv (`nsf`, 6); its four encoder levels have
      4, 8, 16, 32 times that. `pose_decoder_channels`: the pose U-Net's three up-sampling blocks (512, 256, 128 in the
      reference); a 1x1 conv then gives the K heatmap logits at half resolution.
    - `appearance_channels`: C of each part's appearance vector (`n_filters`, 32). `appearance_encoder_filters`: first
      conv of the appearance U-Net (`naf`; 0 means twice its input channels, the reference's default);
      `appearance_decoder_channels`: its up-sampling block (64 in the reference).
    - `decoder_filters`: `ngf` of the SPADE generator (`ngc`, 64); `spade_hidden`: the SPADE modulation's hidden
      channels (128, hard-coded in the reference).
    - `use_identity_covariance` / `fixed_covariance`: a fixed isotropic covariance instead of the estimated one
      (off in the reference's BBC setting; 0.05 is the reference's default value).
    - `use_fg_bg_mask`, `low_res_mask`: the reference's optional foreground/background factorisation (a mask U-Net on
      the rendered maps and a background U-Net on the masked appearance frame).
    - `image_size`: the crop size the model is trained at (128 in the reference); the model runs on any H and W that
      are multiples of 16 and at least 64.
    - `vgg_lambda`, `vgg_reduced_weights`: the perceptual loss's factor (5 in the BBC config) and layer weights
      (1/32, 1/16, 1/8, 1/4 on relu1_2..relu4_2 and 1 on pixels when reduced) when VGG19 features are attached;
      `ssim_weight`: weight of the (1 - SSIM) term of the fallback loss, mean |x - y| + ssim_weight (1 - SSIM).
    - `use_gan`: the reference's optional multi-scale LSGAN (off by default, as in the reference; "better
      reconstruction, less accurate landmarks"). `gan_weight` scales the generator's adversarial term (1 in the
      reference); `num_discriminators` (`num_D`, 2), `discriminator_layers` (`n_layers_D`, 3) and
      `discriminator_filters` (`ndf`, 64) shape the pix2pixHD discriminator. With `use_gan` the model holds a
      `discriminator` trained by the same optimizer step (see `LandmarkVideoModel`).

    Frames are RGB in [-1, 1] (the reference's `Normalize((0.5,)*3, (0.5,)*3)`).

    Tensor parallelism (`base_model_tp_plan`): the pose encoder's stride-2 convs split their output channels
    (column), instance norm and ReLU act per channel, and the follow-up 3x3 conv splits its input channels (row);
    every SPADE modulation splits its hidden channels the same way (`mlp_shared` column, `mlp_gamma`/`mlp_beta` row).
    The spectrally normalised convs of the decoder stay replicated (their norm is over the whole weight), and so does
    the discriminator (it is not in the plan).
    """

    model_type = "adlr_landmark_video"

    def __init__(
        self,
        num_landmarks=30,
        pose_encoder_filters=6,
        pose_decoder_channels=(512, 256, 128),
        appearance_channels=32,
        appearance_encoder_filters=0,
        appearance_decoder_channels=64,
        decoder_filters=64,
        spade_hidden=128,
        use_identity_covariance=False,
        fixed_covariance=0.05,
        use_fg_bg_mask=False,
        low_res_mask=False,
        image_size=128,
        vgg_lambda=5.0,
        vgg_reduced_weights=True,
        ssim_weight=1.0,
        use_gan=False,
        gan_weight=1.0,
        num_discriminators=2,
        discriminator_layers=3,
        discriminator_filters=64,
        **kwargs,
    ):
        _positive_int("num_landmarks", num_landmarks)
        _positive_int("pose_encoder_filters", pose_encoder_filters)
        if not isinstance(pose_decoder_channels, (list, tuple)) or len(pose_decoder_channels) != 3:
            raise ValueError(f"pose_decoder_channels={pose_decoder_channels!r} must be three channel counts (the "
                             "pose U-Net's up-sampling blocks; 512, 256, 128 in the reference)")
        for width in pose_decoder_channels:
            _positive_int("pose_decoder_channels", width)
        _positive_int("appearance_channels", appearance_channels)
        _positive_int("appearance_encoder_filters", appearance_encoder_filters, 0)
        _positive_int("appearance_decoder_channels", appearance_decoder_channels)
        _positive_int("decoder_filters", decoder_filters, 2)
        if decoder_filters % 2:
            raise ValueError(f"decoder_filters={decoder_filters} must be even (the last SPADE block has half of it)")
        _positive_int("spade_hidden", spade_hidden)
        _positive_int("image_size", image_size, MIN_SIZE)
        if image_size % SIZE_DIVISOR:
            raise ValueError(f"image_size={image_size} must be a multiple of {SIZE_DIVISOR}")
        self.num_landmarks = num_landmarks
        self.pose_encoder_filters = pose_encoder_filters
        self.pose_decoder_channels = [int(w) for w in pose_decoder_channels]
        self.appearance_channels = appearance_channels
        self.appearance_encoder_filters = appearance_encoder_filters
        self.appearance_decoder_channels = appearance_decoder_channels
        self.decoder_filters = decoder_filters
        self.spade_hidden = spade_hidden
        self.use_identity_covariance = bool(use_identity_covariance)
        self.fixed_covariance = _positive_float("fixed_covariance", fixed_covariance)
        self.use_fg_bg_mask = bool(use_fg_bg_mask)
        self.low_res_mask = bool(low_res_mask)
        self.image_size = image_size
        self.vgg_lambda = _positive_float("vgg_lambda", vgg_lambda)
        self.vgg_reduced_weights = bool(vgg_reduced_weights)
        if isinstance(ssim_weight, bool) or not isinstance(ssim_weight, (int, float)) or ssim_weight < 0:
            raise ValueError(f"ssim_weight={ssim_weight!r} must be a number >= 0")
        self.ssim_weight = float(ssim_weight)
        if not isinstance(use_gan, bool):
            raise ValueError(f"use_gan={use_gan!r} must be True or False")
        self.use_gan = use_gan
        self.gan_weight = _positive_float("gan_weight", gan_weight)
        self.num_discriminators = _positive_int("num_discriminators", num_discriminators)
        if MIN_SIZE >> (num_discriminators - 1) < 2:
            raise ValueError(f"num_discriminators={num_discriminators} is too many: scale s sees the frame halved s "
                             f"times, and instance norm needs more than one pixel at the coarsest scale of a "
                             f"{MIN_SIZE}x{MIN_SIZE} frame; use at most {MAX_DISCRIMINATORS} (2 in the reference)")
        self.discriminator_layers = _positive_int("discriminator_layers", discriminator_layers)
        self.discriminator_filters = _positive_int("discriminator_filters", discriminator_filters)
        super().__init__(**kwargs)

    @property
    def sequence_length(self) -> int:
        """Frames of one training input: the pose frame and the appearance frame."""
        return 2

    @property
    def size_divisor(self) -> int:
        """The smallest frame size the model runs on (H and W must also be multiples of 16): at 64 the deepest pose
        level and the decoder's first SPADE blocks normalise over 4x4 pixels (over 2x2 at 32, instance norm turns
        float32 rounding into visible differences)."""
        return MIN_SIZE

    @property
    def vgg_weights(self) -> tuple[float, ...]:
        return REDUCED_VGG_WEIGHTS if self.vgg_reduced_weights else (1.0,) * 5

    @property
    def pose_encoder_channels(self) -> list[int]:
        """Output channels of the pose U-Net's four encoder levels (half, 1/4, 1/8, 1/16 resolution)."""
        f = self.pose_encoder_filters
        return [4 * f, 8 * f, 16 * f, 32 * f]

    @property
    def base_model_tp_plan(self) -> dict[str, str]:
        """Column → row pairs on each stride-2 encoder block of the pose U-Net and on every SPADE modulation."""
        return {"pose_encoder.encoder.*.down.conv": "conv_colwise",
                "pose_encoder.encoder.*.refine.conv": "conv_rowwise",
                "decoder.*.*.mlp_shared": "conv_colwise",
                "decoder.*.*.mlp_gamma": "conv_rowwise",
                "decoder.*.*.mlp_beta": "conv_rowwise"}

    def check_zero_stage(self, stage: int) -> None:
        """Checked by `adlr-hf train` before anything is written: the LSGAN's generator term detaches the
        discriminator's parameters, which ZeRO stage 3 partitions."""
        if self.use_gan and stage == 3:
            raise ValueError("use_gan=True does not train under DeepSpeed ZeRO stage 3 (the generator's adversarial "
                             "term detaches the discriminator's parameters, which stage 3 partitions); use a ZeRO "
                             "stage 0-2 --deepspeed-config, or use_gan=false")

    def check_tp_size(self, tp_size: int) -> None:
        _positive_int("tp_size", tp_size, 1)
        for width in self.pose_encoder_channels:
            if width % tp_size:
                raise ValueError(f"tp_size={tp_size} does not divide the {width} channels of a pose-encoder level "
                                 f"(pose_encoder_filters={self.pose_encoder_filters}); choose a tp_size that divides "
                                 f"{4 * self.pose_encoder_filters}")
        if self.spade_hidden % tp_size:
            raise ValueError(f"tp_size={tp_size} does not divide spade_hidden={self.spade_hidden}")


__all__ = ["LandmarkVideoConfig", "MIN_SIZE", "REDUCED_VGG_WEIGHTS", "SIZE_DIVISOR"]
