"""The unsupervised landmark model of landmark-space video interpolation and prediction, as a transformers model.

Paper: Shih, Dundar, Garg, Pottorf, Tao, Catanzaro, "Video Interpolation and Prediction with Unsupervised
Landmarks", arXiv 1909.02749 (its code was not released).
Reference: NVIDIA/UnsupervisedLandmarkLearning (same authors, arXiv 2001.09518), `models/part_factorized_model.py`,
`models/unet.py`, `models/submodules.py`, `models/generator.py`, `models/normalization.py`.

The model (`PartFactorizedModel` in the reference): a U-Net pose encoder turns a frame into K heatmaps at half
resolution; their soft-argmax means and covariances are the landmarks, rendered at full resolution as Cauchy-like
maps 1/(1 + dᵀΣ⁻¹d). An appearance U-Net reads the appearance frame's heatmaps and the pose encoder's first-level
features; per-part appearance vectors pooled with those heatmaps are painted on the target pose's rendered maps, and a
SPADE generator (spectral norm, instance norm) conditioned on the rendered maps decodes the frame. Optionally a
foreground mask (from the rendered maps) blends the decoded foreground with a background U-Net's output.

Deviations from the reference:
- the model runs on any H and W that are multiples of 16 (at least 64): grids and the decoder's start size follow
  the input instead of a fixed `img_size`;
- rendering adds 1e-6·I to Σ before inverting it (a collapsed heatmap still renders);
- spectral norm is a conv with its own power-iteration buffers (`weight_u`, `weight_v`) instead of
  `torch.nn.utils.spectral_norm`'s hooks (same computation: one power iteration per training forward);
- the VGG19 perceptual term does not zero the prediction where the target is exactly 0 (the reference's `x[y==0]=0`,
  which on [-1, 1] frames masks mid-grey pixels); without VGG19 weights the loss is L1 + (1 - SSIM);
- the optional LSGAN trains the discriminator in the same optimizer step as the model (one loss, see
  `LandmarkVideoModel`) instead of the reference's second Adam: the discriminator shares the model's weight decay
  and gradient clipping (the reference clips each network to norm 1 on its own and gives the discriminator no decay),
  and it initialises its convs as the reference (Xavier uniform, biases 0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_landmark_video import MIN_SIZE, SIZE_DIVISOR, LandmarkVideoConfig
from .discriminator_landmark_video import DiscriminatorConv2d, MultiscaleDiscriminator, lsgan_loss
from .landmark_geometry import (
    estimate_landmarks,
    landmark_displacement,
    pool_appearance,
    project_appearance,
    render_landmarks,
    sampling_grid,
)
from .losses_landmark_video import reconstruction_loss

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries this file
    from .modeling_adlr import AdlrPreTrainedModel

__all__ = ["LandmarkAppearance", "LandmarkOutput", "LandmarkVideoModel", "LandmarkVideoOutput",
           "LandmarkVideoPreTrainedModel"]

SPADE_SLOPE = 0.2
INSTANCE_NORM_EPS = 1e-5  # nn.InstanceNorm2d's default


@dataclass
class LandmarkOutput(ModelOutput):
    """mu (N, K, 2): landmark coordinates (x, y) in [-1, 1]; covariance (N, K, 2, 2); heatmaps (N, K, H/2, W/2): the
    softmax-normalised pose maps; features: the pose encoder's first-level features (N, 4·nsf, H/2, W/2)."""

    mu: torch.FloatTensor | None = None
    covariance: torch.FloatTensor | None = None
    heatmaps: torch.FloatTensor | None = None
    features: torch.FloatTensor | None = None


@dataclass
class LandmarkAppearance:
    """What the decoder needs of the appearance frame: the per-part vectors (N, K, C), the frame size (H, W), and,
    with foreground/background masks, the background U-Net's output (N, 3, H, W)."""

    vectors: torch.Tensor
    size: tuple[int, int]
    background: torch.Tensor | None = None


@dataclass
class LandmarkVideoOutput(ModelOutput):
    """loss (with `labels`): the reconstruction loss, plus, with `use_gan` in training mode, gan_weight times the
    generator's adversarial loss and the discriminator's loss; mu, covariance, heatmaps: the pose frame's landmarks
    (the model's main output, first); reconstruction (N, 3, H, W) in [-1, 1] (not clamped); appearance_mu,
    appearance_covariance: the appearance frame's landmarks; foreground_mask (N, 1, H, W) with `use_fg_bg_mask`;
    hidden_states: the pose encoder's four level outputs. The loss's parts, with `use_gan` in training mode with
    `labels` (else None: the loss is the reconstruction loss): reconstruction_loss, generator_adversarial_loss
    (LSGAN of D(reconstruction) to real, before gan_weight) and discriminator_loss (0.5 · (LSGAN of
    D(reconstruction) to fake + LSGAN of D(labels) to real))."""

    loss: torch.FloatTensor | None = None
    mu: torch.FloatTensor | None = None
    covariance: torch.FloatTensor | None = None
    heatmaps: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    appearance_mu: torch.FloatTensor | None = None
    appearance_covariance: torch.FloatTensor | None = None
    foreground_mask: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    generator_adversarial_loss: torch.FloatTensor | None = None
    discriminator_loss: torch.FloatTensor | None = None


# -- building blocks -----------------------------------------------------------------------------------------------
class ConvNormReLU(nn.Module):
    """Conv2d, instance norm (no affine, optional), ReLU: the reference's `conv_ReLU`. The norm is the function (no
    module, it has no parameters), so it runs on whatever channels a column-parallel conv leaves on this rank."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, norm=True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = norm

    def forward(self, x):
        x = self.conv(x)
        if self.norm:
            x = F.instance_norm(x, eps=INSTANCE_NORM_EPS)
        return F.relu(x)


class UNetLevel(nn.Module):
    """One encoder level: (first level only) two 3x3 convs at full resolution, then a stride-2 conv (`down`) and a
    3x3 conv (`refine`): the reference's `encoder_block`."""

    def __init__(self, in_channels, out_channels, stem_channels=None):
        super().__init__()
        self.stem = None
        if stem_channels is not None:
            self.stem = nn.Sequential(ConvNormReLU(in_channels, stem_channels),
                                      ConvNormReLU(stem_channels, 2 * stem_channels))
            in_channels = 2 * stem_channels
        self.down = ConvNormReLU(in_channels, out_channels, stride=2)
        self.refine = ConvNormReLU(out_channels, out_channels)

    def forward(self, x):
        if self.stem is not None:
            x = self.stem(x)
        return self.refine(self.down(x))


class UNetUp(nn.Module):
    """A 3x3 conv, bilinear x2 up-sampling (align_corners=True), a 3x3 conv: the reference's `decoder_block`; the last
    block of a U-Net adds a 1x1 output conv."""

    def __init__(self, in_channels, out_channels, final_channels=None):
        super().__init__()
        self.before = ConvNormReLU(in_channels, out_channels)
        self.after = ConvNormReLU(out_channels, out_channels)
        self.output = nn.Conv2d(out_channels, final_channels, 1) if final_channels is not None else None

    def forward(self, x):
        x = self.before(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = self.after(x)
        return self.output(x) if self.output is not None else x


class LandmarkUNet(nn.Module):
    """The reference's parameterised `Unet`: `num_down` encoder levels (the first with a full-resolution stem of
    `filters` and 2·`filters` channels, then 4·filters, doubling per level), a 1x1 bottleneck, and `len(up_channels)
    - 1` up-sampling blocks, each after adding a 1x1-mapped skip of the encoder level at its input resolution; the
    last block ends with a 1x1 conv to `up_channels[-1]`. `filters` 0 means twice the input channels."""

    def __init__(self, in_channels, up_channels, num_down, filters):
        super().__init__()
        filters = filters or 2 * in_channels
        widths = [4 * filters * 2 ** i for i in range(num_down)]
        self.encoder = nn.ModuleList(
            [UNetLevel(in_channels, widths[0], stem_channels=filters)] +
            [UNetLevel(widths[i - 1], widths[i]) for i in range(1, num_down)])
        deepest = widths[-1]
        self.bottleneck = ConvNormReLU(deepest, deepest, kernel_size=1)
        num_up = len(up_channels) - 1
        self.skips, self.decoder = nn.ModuleList(), nn.ModuleList()
        channels = deepest
        for i in range(num_up):
            self.skips.append(ConvNormReLU(widths[-1 - i], channels, kernel_size=1, norm=False))
            last = i == num_up - 1
            self.decoder.append(UNetUp(channels, up_channels[i], up_channels[-1] if last else None))
            channels = up_channels[i]
        self.first_level_channels = widths[0]

    def forward(self, x):
        levels = []
        for level in self.encoder:
            x = level(x)
            levels.append(x)
        out = self.bottleneck(levels[-1])
        for i, (skip, up) in enumerate(zip(self.skips, self.decoder)):
            out = up(out + skip(levels[-1 - i]))
        return out, levels


class SpectralConv2d(nn.Conv2d):
    """A conv whose weight is divided by its largest singular value (of the (C_out, C_in·kH·kW) matrix), estimated by
    one power iteration per training forward on the buffers `weight_u` / `weight_v` (as `torch.nn.utils.spectral_norm`
    with its defaults)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rows, cols = self.weight.shape[0], self.weight[0].numel()
        self.register_buffer("weight_u", F.normalize(torch.randn(rows), dim=0, eps=1e-12))
        self.register_buffer("weight_v", F.normalize(torch.randn(cols), dim=0, eps=1e-12))

    def normalised_weight(self) -> torch.Tensor:
        matrix = self.weight.reshape(self.weight.shape[0], -1)
        if self.training:
            with torch.no_grad():
                v = F.normalize(matrix.t().mv(self.weight_u), dim=0, eps=1e-12)
                u = F.normalize(matrix.mv(v), dim=0, eps=1e-12)
                self.weight_v.copy_(v)
                self.weight_u.copy_(u)
        # In float64: float32 matrix-vector products round differently with the memory alignment of the weights
        # (a loaded checkpoint's), and sigma must not depend on it.
        u, v = (b.to(torch.float64, copy=True) for b in (self.weight_u, self.weight_v))  # copies: updated in place
        sigma = torch.dot(u, matrix.double().mv(v))
        return self.weight / sigma.to(self.weight.dtype)

    def forward(self, x):
        return self._conv_forward(x, self.normalised_weight(), self.bias)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: instance norm (no affine), then (1 + gamma)·x + beta with gamma, beta from a
    3x3 conv - ReLU - 3x3 conv on the rendered landmark maps resized (bilinear) to x."""

    def __init__(self, channels, label_channels, hidden):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)
        self.mlp_shared = nn.Conv2d(label_channels, hidden, 3, padding=1)
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, maps):
        maps = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
        hidden = F.relu(self.mlp_shared(maps))
        return self.norm(x) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SPADEResBlock(nn.Module):
    """SPADE - LeakyReLU(0.2) - spectral 3x3 conv, twice, plus a (learned, spectral 1x1, when the width changes)
    shortcut: the reference's `SPADEResnetBlock` with `spectralspadeinstance3x3`."""

    def __init__(self, fin, fout, label_channels, hidden):
        super().__init__()
        middle = min(fin, fout)
        self.norm_0 = SPADE(fin, label_channels, hidden)
        self.conv_0 = SpectralConv2d(fin, middle, 3, padding=1)
        self.norm_1 = SPADE(middle, label_channels, hidden)
        self.conv_1 = SpectralConv2d(middle, fout, 3, padding=1)
        self.norm_s = self.conv_s = None
        if fin != fout:
            self.norm_s = SPADE(fin, label_channels, hidden)
            self.conv_s = SpectralConv2d(fin, fout, 1, bias=False)

    def forward(self, x, maps):
        shortcut = x if self.conv_s is None else self.conv_s(self.norm_s(x, maps))
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, maps), SPADE_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, maps), SPADE_SLOPE))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """The reference's `SPADEGenerator`: the appearance map, resized to 1/16 and 1/8 of the frame, goes through `fc`
    and `head_0` at both scales (averaged at 1/8), two middle blocks, then three x2 up-sampling blocks (4nf → 2nf →
    nf → nf/2) and a 3x3 conv to RGB (no tanh)."""

    def __init__(self, config: LandmarkVideoConfig):
        super().__init__()
        nf, k, hidden = config.decoder_filters, config.num_landmarks, config.spade_hidden
        self.fc = nn.Conv2d(config.appearance_channels, 4 * nf, 3, padding=1)
        self.head_0 = SPADEResBlock(4 * nf, 4 * nf, k, hidden)
        self.G_middle_0 = SPADEResBlock(4 * nf, 4 * nf, k, hidden)
        self.G_middle_1 = SPADEResBlock(4 * nf, 4 * nf, k, hidden)
        self.up_0 = SPADEResBlock(4 * nf, 2 * nf, k, hidden)
        self.up_1 = SPADEResBlock(2 * nf, nf, k, hidden)
        self.up_4 = SPADEResBlock(nf, nf // 2, k, hidden)
        self.conv_img = nn.Conv2d(nf // 2, 3, 3, padding=1)

    @staticmethod
    def _up(x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, maps, appearance):
        height, width = maps.shape[-2:]
        coarse = F.interpolate(appearance, size=(height // 16, width // 16))  # nearest, as the reference
        fine = F.interpolate(appearance, size=(height // 8, width // 8))
        coarse = self.head_0(self.fc(coarse), maps)
        fine = self.head_0(self.fc(fine), maps)
        x = 0.5 * self._up(coarse) + 0.5 * fine
        x = self.G_middle_1(self.G_middle_0(x, maps), maps)
        x = self.up_0(self._up(x), maps)
        x = self.up_1(self._up(x), maps)
        x = self.up_4(self._up(x), maps)
        return self.conv_img(F.leaky_relu(x, SPADE_SLOPE))


class ForegroundMaskNet(nn.Module):
    """The foreground mask logits (N, 1, H, W) from the rendered maps: a 3-level U-Net (32 filters) back to full
    resolution, or with `low_res_mask` one up-sampling block to 1/4 and a bilinear x4 (the reference's option for
    grey-level data such as KTH)."""

    def __init__(self, num_landmarks, low_res):
        super().__init__()
        self.low_res = low_res
        self.unet = LandmarkUNet(num_landmarks, [32, 1] if low_res else [32, 32, 32, 1], 3, 32)

    def forward(self, maps):
        out = self.unet(maps)[0]
        return F.interpolate(out, scale_factor=4, mode="bilinear", align_corners=False) if self.low_res else out


# -- the model -----------------------------------------------------------------------------------------------------
class LandmarkVideoPreTrainedModel(AdlrPreTrainedModel):
    config_class = LandmarkVideoConfig
    config: LandmarkVideoConfig
    base_model_prefix = "landmark_video"
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False
    _no_split_modules = ["UNetLevel", "UNetUp", "SPADEResBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        """PyTorch's default conv init, which the reference keeps (Kaiming-uniform a=√5 weights, biases
        U(±1/√fan_in)); spectral-norm vectors start as normalised Gaussian noise; the discriminator's convs get the
        reference's `init_weights` (Xavier-uniform weights, biases 0.1)."""
        if isinstance(module, DiscriminatorConv2d):
            init.xavier_uniform_(module.weight)
            init.constant_(module.bias, 0.1)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.weight[0].numel())
                init.uniform_(module.bias, -bound, bound)
        if isinstance(module, SpectralConv2d):
            for name in ("weight_u", "weight_v"):
                buffer = getattr(module, name)
                init.copy_(buffer, F.normalize(torch.randn(buffer.shape, dtype=buffer.dtype), dim=0, eps=1e-12))


class LandmarkVideoModel(LandmarkVideoPreTrainedModel):
    """The part-factorised landmark model. Frames are RGB in [-1, 1], H and W multiples of 16, at least 64.

    - `encode_pose(pixel_values)` → `LandmarkOutput` (mu, covariance, heatmaps, features);
    - `encode_appearance(pixel_values, mu=None, covariance=None, heatmaps=None, features=None)` → `LandmarkAppearance`
      (pass the frame's `encode_pose` results to skip a second pose pass);
    - `decode(appearance, mu, covariance)` → frames (N, 3, H, W) in [-1, 1] with the pose (mu, covariance);
    - `warp(pixel_values, mu, target_mu, target_covariance)` → the frames (whose landmarks are mu) moved to the
      target landmarks by the landmarks' displacement field, no decoder involved;
    - `forward`: reconstruction of the pose frame from its landmarks and the appearance frame's appearance:
      `pixel_values_videos` (N, 2, 3, H, W) = (pose frame, appearance frame), or `pose_frames` and
      `appearance_frames` (N, 3, H, W) each (the appearance frame defaults to the pose frame); `labels` (N, 3, H, W)
      the target (the un-jittered pose frame) gives the loss: VGG19 perceptual with attached features
      (`set_perceptual_network`), else L1 + (1 - SSIM).

    With `config.use_gan` the model holds a multi-scale PatchGAN `discriminator` (the reference's optional LSGAN). In
    training mode with `labels`, `loss` = reconstruction + gan_weight · G_adv + D, where G_adv = LSGAN(D(recon), real)
    evaluates the discriminator with detached parameters and D = 0.5 · (LSGAN(D(recon.detach()), fake) +
    LSGAN(D(labels), real)) sees the reconstruction detached. The generator thus gets gradients only from
    reconstruction + gan_weight · G_adv and the discriminator only from D, so one backward and one optimizer step
    make the reference's two Adam optimizers (same learning rate) in a single-optimizer training loop: DeepSpeed,
    Accelerate, exact resume and tensor parallelism (the discriminator stays replicated) run unchanged. Differences
    from the reference: the discriminator shares the optimizer's weight decay and gradient clipping (one norm over
    both networks). In eval mode or without labels the discriminator is not run. ZeRO stage 3 is refused with GAN
    (its partitioned parameters cannot be detached for the generator's term).
    """

    def __init__(self, config: LandmarkVideoConfig):
        super().__init__(config)
        k = config.num_landmarks
        self.pose_encoder = LandmarkUNet(3, [*config.pose_decoder_channels, k], 4, config.pose_encoder_filters)
        self.appearance_encoder = LandmarkUNet(k + self.pose_encoder.first_level_channels,
                                               [config.appearance_decoder_channels, config.appearance_channels], 1,
                                               config.appearance_encoder_filters)
        self.decoder = SPADEDecoder(config)
        self.fg_mask_net = self.bg_net = None
        if config.use_fg_bg_mask:
            self.fg_mask_net = ForegroundMaskNet(k, config.low_res_mask)
            self.bg_net = LandmarkUNet(3, [32, 64, 128, 3], 3, 32)
        self.discriminator = None
        if config.use_gan:  # its construction-time draws left out of the stream, so a seed gives the same model
            with torch.random.fork_rng(devices=[]):
                self.discriminator = MultiscaleDiscriminator(3, config.discriminator_filters,
                                                             config.discriminator_layers, config.num_discriminators)
        self._perceptual = None  # frozen VGG19 features attached for training, never saved (set_perceptual_network)
        self.post_init()

    # -- the perceptual network (training only) -----------------------------------------------------------------------
    def set_perceptual_network(self, features: nn.Module | None) -> None:
        """Attach frozen VGG19 `features[:23]` (to relu4_2) for the reference's perceptual loss, or detach with None.
        Kept outside the registered modules: never trained, saved or sharded."""
        self.__dict__["_perceptual"] = None if features is None else features.eval().requires_grad_(False)

    @property
    def perceptual_network(self) -> nn.Module | None:
        return self.__dict__.get("_perceptual")

    # -- the three stages ---------------------------------------------------------------------------------------------
    def _check_frames(self, frames, name) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"{name} must be (N, 3, H, W) RGB frames in [-1, 1]; got {shape}")
        height, width = frames.shape[-2:]
        if height % SIZE_DIVISOR or width % SIZE_DIVISOR or min(height, width) < MIN_SIZE:
            raise ValueError(f"{name} of {height}x{width} (HxW): H and W must be multiples of {SIZE_DIVISOR} and at "
                             f"least {MIN_SIZE}; resize or crop the frames (e.g. to {self.config.image_size}x"
                             f"{self.config.image_size})")
        return frames.to(self.decoder.fc.weight.dtype)

    def encode_pose(self, pixel_values: torch.Tensor) -> LandmarkOutput:
        frames = self._check_frames(pixel_values, "pixel_values")
        logits, levels = self.pose_encoder(frames)
        fixed = self.config.fixed_covariance if self.config.use_identity_covariance else None
        mu, covariance, heatmaps = estimate_landmarks(logits, fixed)
        return LandmarkOutput(mu=mu, covariance=covariance, heatmaps=heatmaps, features=levels[0])

    def encode_appearance(self, pixel_values: torch.Tensor, mu=None, covariance=None, heatmaps=None,
                          features=None) -> LandmarkAppearance:
        frames = self._check_frames(pixel_values, "pixel_values")
        if heatmaps is None or features is None or (self.bg_net is not None and (mu is None or covariance is None)):
            pose = self.encode_pose(frames)
            mu, covariance, heatmaps, features = pose.mu, pose.covariance, pose.heatmaps, pose.features
        encoded = self.appearance_encoder(torch.cat((heatmaps, features), dim=1))[0]
        vectors = pool_appearance(encoded, heatmaps)
        size = tuple(frames.shape[-2:])
        background = None
        if self.bg_net is not None:
            mask = torch.sigmoid(self.fg_mask_net(render_landmarks(mu, covariance, *size)))
            background = self.bg_net((1 - mask) * frames)[0]
        return LandmarkAppearance(vectors=vectors, size=size, background=background)

    def _decode(self, appearance: LandmarkAppearance, mu, covariance):
        maps = render_landmarks(mu, covariance, *appearance.size)
        frames = self.decoder(maps, project_appearance(appearance.vectors, maps))
        mask = None
        if self.fg_mask_net is not None:
            mask = torch.sigmoid(self.fg_mask_net(maps))
            frames = appearance.background * (1 - mask) + frames * mask
        return frames, mask

    def decode(self, appearance: LandmarkAppearance, mu: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
        k = self.config.num_landmarks
        if mu.dim() != 3 or mu.shape[1:] != (k, 2) or covariance.shape != (*mu.shape, 2):
            raise ValueError(f"decode takes mu (N, {k}, 2) and covariance (N, {k}, 2, 2) for the model's "
                             f"num_landmarks={k}; got {tuple(mu.shape)} and {tuple(covariance.shape)}")
        if appearance.vectors.shape[0] != mu.shape[0]:
            raise ValueError(f"the appearance holds {appearance.vectors.shape[0]} frames but mu {mu.shape[0]}; "
                             "repeat the appearance (or the landmarks) to one per output frame")
        return self._decode(appearance, mu, covariance)[0]

    def warp(self, pixel_values: torch.Tensor, mu: torch.Tensor, target_mu: torch.Tensor,
             target_covariance: torch.Tensor) -> torch.Tensor:
        """Frames (N, 3, H, W) whose landmarks are `mu` (N, K, 2) moved to the landmarks (`target_mu`,
        `target_covariance`) by the landmarks' displacement field: the output pixel x is read (bilinearly, border
        pixels repeated) at x + Σ_k r_k(x)(mu_k − target_mu_k) / (1 + Σ_k r_k(x)) of the input, r the target's
        rendered maps (`landmark_displacement`). The key frame's own pixels, not the decoder's, at the new pose: no
        reconstruction error, and frames with the same landmarks come back unchanged."""
        frames = self._check_frames(pixel_values, "pixel_values")
        k = self.config.num_landmarks
        shapes = (mu.shape, target_mu.shape, target_covariance.shape)
        if shapes != ((len(frames), k, 2),) * 2 + ((len(frames), k, 2, 2),):
            raise ValueError(f"warp takes mu and target_mu (N, {k}, 2) and target_covariance (N, {k}, 2, 2) for N = "
                             f"{len(frames)} frames; got {[tuple(s) for s in shapes]}")
        maps = render_landmarks(target_mu.to(frames), target_covariance.to(frames), *frames.shape[-2:])
        grid = sampling_grid(landmark_displacement(mu.to(frames) - target_mu.to(frames), maps))
        return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # -- training -----------------------------------------------------------------------------------------------------
    def forward(self, pixel_values_videos: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                pose_frames: torch.Tensor | None = None, appearance_frames: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None):
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states,
                                                                   return_dict)
        if pixel_values_videos is not None:
            if pose_frames is not None or appearance_frames is not None:
                raise ValueError("pass either pixel_values_videos (N, 2, 3, H, W) or pose_frames / "
                                 "appearance_frames, not both")
            if pixel_values_videos.dim() != 5 or pixel_values_videos.shape[1] != 2:
                raise ValueError(f"pixel_values_videos must be (N, 2, 3, H, W): the pose frame and the appearance "
                                 f"frame; got {tuple(pixel_values_videos.shape)}")
            pose_frames, appearance_frames = pixel_values_videos[:, 0], pixel_values_videos[:, 1]
        if pose_frames is None:
            raise ValueError("forward needs the frames: pixel_values_videos (N, 2, 3, H, W) or pose_frames "
                             "(N, 3, H, W)")
        pose_frames = self._check_frames(pose_frames, "pose_frames")
        appearance_frames = pose_frames if appearance_frames is None else \
            self._check_frames(appearance_frames, "appearance_frames")
        if appearance_frames.shape != pose_frames.shape:
            raise ValueError(f"pose_frames {tuple(pose_frames.shape)} and appearance_frames "
                             f"{tuple(appearance_frames.shape)} must have the same shape")
        logits, levels = self.pose_encoder(pose_frames)
        fixed = self.config.fixed_covariance if self.config.use_identity_covariance else None
        mu, covariance, heatmaps = estimate_landmarks(logits, fixed)
        source = self.encode_pose(appearance_frames)
        appearance = self.encode_appearance(appearance_frames, source.mu, source.covariance, source.heatmaps,
                                            source.features)
        reconstruction, mask = self._decode(appearance, mu, covariance)
        loss = recon_loss = g_adv = d_loss = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.shape != pose_frames.shape:
                raise ValueError(f"labels must be the target frames {tuple(pose_frames.shape)} in [-1, 1]; got "
                                 f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else labels!r}")
            labels = labels.to(reconstruction.dtype)
            loss = reconstruction_loss(reconstruction, labels, self.config, self.perceptual_network)
            if self.discriminator is not None and self.training:
                recon_loss = loss
                g_adv, d_loss = self.adversarial_losses(reconstruction, labels)
                loss = recon_loss + self.config.gan_weight * g_adv + d_loss
        out = LandmarkVideoOutput(loss=loss, reconstruction=reconstruction, mu=mu, covariance=covariance,
                                  heatmaps=heatmaps, appearance_mu=source.mu,
                                  appearance_covariance=source.covariance, foreground_mask=mask,
                                  hidden_states=tuple(levels) if output_hidden_states else None,
                                  reconstruction_loss=recon_loss, generator_adversarial_loss=g_adv,
                                  discriminator_loss=d_loss)
        return out if return_dict else out.to_tuple()

    def adversarial_losses(self, reconstruction: torch.Tensor, real: torch.Tensor):
        """(G_adv, D): the generator's LSGAN term through a discriminator with detached parameters (gradients reach
        the reconstruction only), and the discriminator's 0.5 · (fake + real) on the detached reconstruction
        (gradients reach the discriminator only). Fake and real go through the discriminator in one batch: instance
        norm is per sample, so this equals two passes."""
        if self.discriminator is None:
            raise ValueError("adversarial_losses needs a discriminator: build the model with use_gan=True")
        parameters = dict(self.discriminator.named_parameters())
        if any(hasattr(p, "ds_tensor") for p in parameters.values()):
            raise ValueError("use_gan does not run under DeepSpeed ZeRO stage 3 (the generator's adversarial term "
                             "detaches the discriminator's parameters, which stage 3 partitions); use stage 0-2")
        frozen = {name: p.detach() for name, p in parameters.items()}
        g_adv = lsgan_loss(torch.func.functional_call(self.discriminator, frozen, (reconstruction,)), real=True)
        n = reconstruction.shape[0]
        scores = self.discriminator(torch.cat((reconstruction.detach(), real.detach())))
        d_fake = lsgan_loss([s[:n] for s in scores], real=False)
        d_real = lsgan_loss([s[n:] for s in scores], real=True)
        return g_adv, 0.5 * (d_fake + d_real)
