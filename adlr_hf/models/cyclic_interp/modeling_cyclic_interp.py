"""Super SloMo video frame interpolation, trainable with cycle consistency, as transformers models.

Paper: Reda et al., "Unsupervised Video Interpolation Using Cycle Consistency", ICCV 2019, arXiv 1906.05928, on
Super SloMo: Jiang et al., "Super SloMo: High Quality Estimation of Multiple Intermediate Frames for Video
Interpolation", CVPR 2018, arXiv 1712.00080.
Reference: NVIDIA/unsupervised-video-interpolation, `models/HJSuperSloMo.py` (the network, the supervised loss),
`models/CycleHJSuperSloMo.py` (the cycle and the pseudo-supervised teacher), `models/model_utils.py` (the warp).

The network: frames minus `mean_pix`, downsampled by `flow_scale`, go through the flow-computation U-Net (five
levels of two conv + LeakyReLU(0.1) with 2x2 average pools, a bottleneck, five bilinear-upsampling levels with skips,
a 3x3 refine conv and two 1x1 heads), which gives F0→1 and F1→0; they are upsampled and multiplied by `flow_scale`.
The time-t flows are approximated as

    F̂t→0 = -(1 - t) t F0→1 + t² F1→0          F̂t→1 = (1 - t)² F0→1 - t (1 - t) F1→0

the flow-interpolation U-Net (input [I0, I1, g(I0, F̂t→0), F̂t→0, g(I1, F̂t→1), F̂t→1], its bottleneck concatenated
with the flow net's) adds residuals ΔFt→0, ΔFt→1 and predicts the visibility V = V_t←0 (sigmoid; V_t←1 = 1 - V),
and the frame is

    Ît = ((1 - t) V g(I0, Ft→0) + t (1 - V) g(I1, Ft→1)) / ((1 - t) V + t (1 - V) + 1e-10).

Cycle consistency: from a triplet (I0, I1, I2), P01 = f(I0, I1, t), P12 = f(I1, I2, t) and Î1 = f(P01, P12, 1 - t)
must reconstruct I1; a frozen teacher T adds l1(P01, T(I0, I1, t)) + l1(P12, T(I1, I2, t)) (pseudo-supervision).

Deviations from the reference:
- warping is the shared `grid_sample` warp with align_corners=True and zeros padding: the reference's normalisation
  2x/(W-1) - 1 meant align_corners=True on the torch it was written for (newer torch defaults to False);
- `flow_scale` is an integer (the reference takes a float), so H and W are multiples of 32·flow_scale;
- the two-conv blocks hold named `conv1` / `conv2` (the reference's `nn.Sequential` indices 0 and 2, decoder 1 and
  3) and non-inplace LeakyReLUs, so tensor-parallel plans can name them; values are the same;
- the perceptual network (VGG16 features[:22]) and the teacher are attached at training time, outside the model's
  registered modules (never trained, saved or sharded); without a feature network the perceptual term is skipped
  (the reference always downloads ImageNet weights);
- any number of timesteps per call (the reference interpolates one index of `tlinespace` per call);
- frames may use any `rgb_max`; they are scaled to 0-255 inside (the reference reads 0-255 only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_cyclic_interp import CyclicInterpConfig
from .losses_cyclic_interp import DEFAULT_TEACHER_WEIGHT, InterpolationPass, cycle_loss, supervised_loss, \
    total_loss, uvi_warp

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries these files
    from .modeling_adlr import AdlrPreTrainedModel

LEAKY_SLOPE = 0.1
SYNTHESIS_EPS = 1e-10  # the reference's `denorm` epsilon
ENCODER_KERNELS = (7, 5, 3, 3, 3)  # per level; the bottleneck and the decoder use 3x3


@dataclass
class CyclicInterpOutput(ModelOutput):
    """loss: the regime's total loss (with `labels`); interpolated_frames (B, N, 3, H, W) in [0, rgb_max] (not
    clamped): the frames at the N timesteps, or for a triplet (P01, P12); flows (B, 2, 2, H, W): F0→1, F1→0 in
    pixels of the (last) pair; time_flows (B, N, 2, 2, H, W): Ft→0, Ft→1; visibility (B, N, 1, H, W): V_t←0;
    cycle_frame (B, 3, H, W): Î1 = f(P01, P12, 1 - t) of a triplet; loss_terms: the unweighted loss terms;
    hidden_states: the flow net's block outputs (B, C, h, w), then the flow-interpolation net's (B, N, C, h, w)."""

    loss: torch.FloatTensor | None = None
    interpolated_frames: torch.FloatTensor | None = None
    flows: torch.FloatTensor | None = None
    time_flows: torch.FloatTensor | None = None
    visibility: torch.FloatTensor | None = None
    cycle_frame: torch.FloatTensor | None = None
    loss_terms: dict | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


def approximate_time_flows(flow_01: torch.Tensor, flow_10: torch.Tensor, t: torch.Tensor):
    """(F̂t→0, F̂t→1) from F0→1, F1→0 (B, 2, H, W) and t (B,): Super SloMo's eq. 4."""
    t = t.to(flow_01.dtype).view(-1, 1, 1, 1)
    return -(1 - t) * t * flow_01 + t * t * flow_10, (1 - t) * (1 - t) * flow_01 - (1 - t) * t * flow_10


def synthesize(warped0: torch.Tensor, warped1: torch.Tensor, visibility: torch.Tensor, t: torch.Tensor):
    """((1 - t) V g0 + t (1 - V) g1) / ((1 - t) V + t (1 - V) + 1e-10), t (B,), V = V_t←0 (B, 1, H, W)."""
    t = t.to(warped0.dtype).view(-1, 1, 1, 1)
    alpha0, alpha1 = (1 - t) * visibility, t * (1 - visibility)
    return (alpha0 * warped0 + alpha1 * warped1) / (alpha0 + alpha1 + SYNTHESIS_EPS)


class CyclicInterpConvPair(nn.Module):
    """conv - LeakyReLU(0.1) - conv - LeakyReLU(0.1), 'same' padding: the reference's encoder layer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.act1 = nn.LeakyReLU(LEAKY_SLOPE)  # not in place (the reference's is): same values, autograd-safe
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.act2 = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x):
        return self.act2(self.conv2(self.act1(self.conv1(x))))


class CyclicInterpUpBlock(CyclicInterpConvPair):
    """Bilinear x2 upsampling (align_corners=False), then a 3x3 conv pair: the reference's decoder layer."""

    def forward(self, x):
        return super().forward(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


class CyclicInterpUNet(nn.Module):
    """One of Super SloMo's U-Nets: five encoder levels (pooled), a bottleneck (optionally concatenated with another
    net's, `extra_bottleneck` channels first), five decoder levels with skips, a 3x3 refine conv + LeakyReLU and 1x1
    heads. forward -> ({head: (B, c, H, W)}, bottleneck output, block outputs)."""

    def __init__(self, in_channels: int, widths: list[int], heads: dict[str, int], extra_bottleneck: int = 0):
        super().__init__()
        ins = [in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(CyclicInterpConvPair(i, o, k) for i, o, k in zip(ins, widths, ENCODER_KERNELS))
        self.bottleneck = CyclicInterpConvPair(widths[-1], widths[-1])
        decoder_in = [widths[-1] + extra_bottleneck] + [2 * w for w in widths[:0:-1]]
        self.decoder = nn.ModuleList(CyclicInterpUpBlock(i, o) for i, o in zip(decoder_in, widths[::-1]))
        self.refine = nn.Conv2d(2 * widths[0], widths[0], 3, padding=1)
        self.refine_act = nn.LeakyReLU(LEAKY_SLOPE)
        self.heads = nn.ModuleDict({name: nn.Conv2d(widths[0], channels, 1) for name, channels in heads.items()})

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None):
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2, stride=2)
        bottleneck = self.bottleneck(x)
        x = bottleneck if extra is None else torch.cat((extra, bottleneck), 1)
        states = [*skips, bottleneck]
        for block, skip in zip(self.decoder, reversed(skips)):
            x = torch.cat((skip, block(x)), 1)
            states.append(x)
        motion = self.refine_act(self.refine(x))
        states.append(motion)
        return {name: head(motion) for name, head in self.heads.items()}, bottleneck, states


class FrozenAttachment:
    """A module kept outside the model's registered submodules: not in `parameters()`, `state_dict()`, `.to()`,
    DDP's or DeepSpeed's view of the model, nor any checkpoint. Frozen (eval mode, no gradients); moved to the
    device of its inputs on use."""

    def __init__(self, module: nn.Module):
        self.module = module.eval().requires_grad_(False)

    def on(self, like: torch.Tensor) -> nn.Module:
        first = next(self.module.parameters(), None)
        if first is not None and first.device != like.device:
            self.module.to(like.device)
        return self.module


class CyclicInterpPreTrainedModel(AdlrPreTrainedModel):
    config_class = CyclicInterpConfig
    config: CyclicInterpConfig
    base_model_prefix = "cyclic_interp"
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False
    _no_split_modules = ["CyclicInterpConvPair", "CyclicInterpUpBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        """PyTorch's default conv init, which the reference keeps: Kaiming-uniform (a=√5) weights, biases
        U(±1/√fan_in)."""
        if isinstance(module, nn.Conv2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.weight[0].numel())
                init.uniform_(module.bias, -bound, bound)


class CyclicInterpForFrameInterpolation(CyclicInterpPreTrainedModel):
    """Super SloMo (the reference's `HJSuperSloMo` / `CycleHJSuperSloMo`): `flow_net` (flow computation) and
    `interp_net` (flow interpolation and visibility).

    `pixel_values_videos`: raw RGB frames in [0, rgb_max], H and W multiples of `config.size_divisor` (the video
    processor pads): (B, 2, 3, H, W) two frames to interpolate between, or (B, 3, 3, H, W) a triplet for a
    cycle-consistency step. `timesteps`: where to interpolate, in (0, 1): None (`config.num_interp` evenly spaced),
    a number, N numbers, or (B, N) per sample; a triplet takes one t per sample. `labels`: for two frames the true
    frames at the timesteps (B, 3, H, W) (one timestep) or (B, N, 3, H, W), giving the supervised loss; for a
    triplet the frame the cycle must reconstruct, (B, 3, H, W) (its middle frame), giving the cycle loss (plus the
    pseudo-supervised term when a teacher is attached with `set_teacher`)."""

    def __init__(self, config: CyclicInterpConfig):
        super().__init__(config)
        widths = config.level_channels
        self.flow_net = CyclicInterpUNet(6, widths, {"flow_01": 2, "flow_10": 2})
        self.interp_net = CyclicInterpUNet(16, widths, {"delta_t1": 2, "delta_t0": 2, "visibility": 1},
                                           extra_bottleneck=widths[-1])
        self._teacher = None  # FrozenAttachment: the pseudo-supervision teacher (training only, never saved)
        self._teacher_weight = 0.0
        self._perceptual = None  # FrozenAttachment: VGG16 features[:22] for the perceptual term (training only)
        self.post_init()

    # -- attachments (training only) -----------------------------------------------------------------------------------
    def set_teacher(self, teacher: "CyclicInterpForFrameInterpolation | None",
                    weight: float = DEFAULT_TEACHER_WEIGHT) -> None:
        """Attach a frozen teacher for the pseudo-supervised term of the cycle loss (weight 0.8 in the reference), or
        detach it with None. It is kept outside the model's modules: never trained, saved, sharded or partitioned."""
        if teacher is None:
            self._teacher, self._teacher_weight = None, 0.0
            return
        if not isinstance(teacher, CyclicInterpForFrameInterpolation):
            raise ValueError(f"the teacher must be a {type(self).__name__} (a Super SloMo model); got "
                             f"{type(teacher).__name__}")
        if teacher is self:
            raise ValueError("the teacher must be a separate frozen copy, not the model being trained; load it "
                             "again (e.g. from_pretrained of the same folder)")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"teacher weight={weight!r} must be a number >= 0 (0.8 in the reference)")
        self._teacher, self._teacher_weight = FrozenAttachment(teacher), float(weight)

    @property
    def teacher(self):
        return None if self._teacher is None else self._teacher.module

    def set_perceptual_network(self, features: nn.Module | None) -> None:
        """Attach frozen VGG16 `features[:22]` for the perceptual term (weight 0.005), or detach with None."""
        self._perceptual = None if features is None else FrozenAttachment(features)

    @property
    def perceptual_network(self):
        return None if self._perceptual is None else self._perceptual.module

    # -- inputs ----------------------------------------------------------------------------------------------------
    def _frames(self, pixel_values_videos) -> torch.Tensor:
        """The frames (B, F, 3, H, W) on the 0-255 scale in the model's dtype, after checking them."""
        config = self.config
        if not isinstance(pixel_values_videos, torch.Tensor) or pixel_values_videos.dim() != 5 or \
                pixel_values_videos.shape[1] not in (2, 3) or pixel_values_videos.shape[2] != 3:
            shape = tuple(pixel_values_videos.shape) if isinstance(pixel_values_videos, torch.Tensor) else \
                type(pixel_values_videos).__name__
            raise ValueError(f"pixel_values_videos must be (batch, 2, 3, H, W) frames to interpolate between, or "
                             f"(batch, 3, 3, H, W) a triplet for cycle consistency, RGB in [0, {config.rgb_max:g}]; "
                             f"got {shape}")
        height, width = pixel_values_videos.shape[-2:]
        divisor = config.size_divisor
        if height % divisor or width % divisor:
            raise ValueError(f"frames of {height}x{width} (HxW): H and W must be multiples of {divisor} (32 x "
                             f"flow_scale {config.flow_scale}); pad them with the video processor or crop to "
                             f"{height // divisor * divisor}x{width // divisor * divisor}")
        dtype = self.flow_net.refine.weight.dtype
        return pixel_values_videos.to(dtype) * (255.0 / config.rgb_max)

    def _timesteps(self, timesteps, batch: int, device) -> torch.Tensor:
        """(B, N) times in (0, 1) from None / a number / N numbers / (B, N)."""
        if timesteps is None:
            timesteps = self.config.default_timesteps
        values = torch.as_tensor(timesteps, dtype=torch.float64) if not isinstance(timesteps, torch.Tensor) else \
            timesteps.detach().to(torch.float64)
        if values.dim() == 0:
            values = values.view(1)
        if values.dim() == 1:
            values = values.view(1, -1).expand(batch, -1)
        if values.dim() != 2 or values.shape[0] != batch or values.shape[1] < 1:
            raise ValueError(f"timesteps must be a number, N numbers or a (batch, N) tensor with batch={batch}; got "
                             f"shape {tuple(values.shape)}")
        bad = values[~((values > 0) & (values < 1))]
        if bad.numel():
            raise ValueError(f"timesteps must lie strictly between 0 and 1 (the input frames are at t=0 and t=1); got "
                             f"{sorted(set(bad.tolist()))[:4]}. Pass e.g. timesteps=[0.5], or num_interp=N for N "
                             "evenly spaced frames")
        # float64 where the device has it: each use casts t to the frames' dtype
        return values.to(device=device, dtype=torch.float32 if torch.device(device).type == "mps" else None)

    def _check_labels(self, labels, expected: tuple, what: str) -> torch.Tensor:
        if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != expected:
            got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"labels must be {what} {expected}; got {got}")
        return labels

    # -- the network -----------------------------------------------------------------------------------------------
    def _normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames on the 0-255 scale minus `mean_pix` (per channel; works on (..., 3, H, W))."""
        mean = torch.tensor(self.config.mean_pix, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
        return frames - mean

    def _denormalize(self, frames: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.config.mean_pix, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
        return (frames + mean) * (self.config.rgb_max / 255.0)

    def compute_flows(self, frame0: torch.Tensor, frame1: torch.Tensor):
        """(F0→1, F1→0, upsampled bottleneck, block outputs) of mean-subtracted frames (B, 3, H, W)."""
        scale = self.config.flow_scale
        x = torch.cat((frame0, frame1), 1)
        if scale != 1:  # robust flows on high-resolution frames (the reference's flow_scale)
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        heads, bottleneck, states = self.flow_net(x)
        flow_01, flow_10 = heads["flow_01"], heads["flow_10"]
        if scale != 1:
            flow_01 = scale * F.interpolate(flow_01, scale_factor=scale, mode="bilinear", align_corners=False)
            flow_10 = scale * F.interpolate(flow_10, scale_factor=scale, mode="bilinear", align_corners=False)
            bottleneck = F.interpolate(bottleneck, scale_factor=scale, mode="bilinear", align_corners=False)
        return flow_01, flow_10, bottleneck, states

    def interpolate_at(self, frame0, frame1, t, flows=None):
        """One interpolation of mean-subtracted frames (B, 3, H, W) at t (B,) (any t, 0 and 1 included; `forward`
        allows (0, 1) only): (InterpolationPass, Ft→0, Ft→1, V, interp-net block outputs). `flows`: a previous
        `compute_flows(frame0, frame1)` to reuse."""
        flow_01, flow_10, bottleneck, _ = flows if flows is not None else self.compute_flows(frame0, frame1)
        flow_t0_raw, flow_t1_raw = approximate_time_flows(flow_01, flow_10, t)
        warped0_raw, warped1_raw = uvi_warp(frame0, flow_t0_raw), uvi_warp(frame1, flow_t1_raw)
        x = torch.cat((frame0, frame1, warped0_raw, flow_t0_raw, warped1_raw, flow_t1_raw), 1)
        heads, _, states = self.interp_net(x, extra=bottleneck)
        flow_t0, flow_t1 = flow_t0_raw + heads["delta_t0"], flow_t1_raw + heads["delta_t1"]
        visibility = torch.sigmoid(heads["visibility"])
        output = synthesize(uvi_warp(frame0, flow_t0), uvi_warp(frame1, flow_t1), visibility, t)
        run = InterpolationPass(frame0, frame1, flow_01, flow_10, warped0_raw, warped1_raw, output)
        return run, flow_t0, flow_t1, visibility, states

    def _interpolate_pair(self, frame0, frame1, times: torch.Tensor, hidden: bool):
        """Every timestep of (B, N) for one pair: (runs, time flows (B, N, 2, 2, H, W), V (B, N, 1, H, W),
        hidden states or None)."""
        flows = self.compute_flows(frame0, frame1)
        runs, time_flows, visibility, interp_states = [], [], [], []
        for i in range(times.shape[1]):
            run, flow_t0, flow_t1, vis, states = self.interpolate_at(frame0, frame1, times[:, i], flows)
            runs.append(run)
            time_flows.append(torch.stack((flow_t0, flow_t1), 1))
            visibility.append(vis)
            interp_states.append(states)
        states = None
        if hidden:
            states = (*flows[3], *(torch.stack(s, 1) for s in zip(*interp_states)))
        return runs, torch.stack(time_flows, 1), torch.stack(visibility, 1), states

    @torch.no_grad()
    def _teacher_outputs(self, frames: torch.Tensor, times: torch.Tensor):
        """T(I0, I1, t) and T(I1, I2, t) of a triplet (0-255), mean-subtracted with this model's mean_pix."""
        teacher = self._teacher.on(frames)
        dtype = next(teacher.parameters()).dtype
        scale = teacher.config.rgb_max / 255.0
        outputs = []
        for pair in (frames[:, :2], frames[:, 1:]):
            out = teacher(pixel_values_videos=(pair * scale).to(dtype), timesteps=times, return_dict=True)
            outputs.append(self._normalize(out.interpolated_frames[:, 0].to(frames.dtype) / scale))
        return outputs

    # -- forward ---------------------------------------------------------------------------------------------------
    def forward(self, pixel_values_videos: torch.Tensor, timesteps=None, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None):
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states,
                                                                   return_dict)
        frames = self._frames(pixel_values_videos)
        batch, count, _, height, width = frames.shape
        times = self._timesteps(timesteps, batch, frames.device)
        if count == 3 and times.shape[1] != 1:
            raise ValueError(f"a triplet (cycle consistency) takes one timestep per sample; got {times.shape[1]} "
                             "(pass timesteps=(batch, 1) or a single number)")
        target = None
        if labels is not None:  # checked before any computation
            if count == 2:
                steps = times.shape[1]
                labels = labels[:, None] if isinstance(labels, torch.Tensor) and labels.dim() == 4 and steps == 1 \
                    else labels
                self._check_labels(labels, (batch, steps, 3, height, width),
                                   f"the true frames at the {steps} timestep(s),")
            else:
                self._check_labels(labels, (batch, 3, height, width),
                                   "the frame the cycle reconstructs (the triplet's middle frame),")
            target = self._normalize(labels.to(frames.dtype) * (255.0 / self.config.rgb_max))
        normalized = self._normalize(frames)
        features = None if self._perceptual is None else self._perceptual.on(frames)
        if count == 2:
            out = self._forward_pair(normalized, times, target, features, output_hidden_states)
        else:
            out = self._forward_cycle(frames, normalized, times, target, features, output_hidden_states)
        return out if return_dict else out.to_tuple()

    def _forward_pair(self, normalized, times, target, features, hidden: bool) -> CyclicInterpOutput:
        """Two frames; `target` (B, N, 3, H, W) mean-subtracted or None."""
        height, width = normalized.shape[-2:]
        runs, time_flows, visibility, states = self._interpolate_pair(normalized[:, 0], normalized[:, 1], times,
                                                                      hidden)
        predicted = torch.stack([run.output for run in runs], 1)
        loss = terms = None
        if target is not None:
            # All timesteps at once: the per-t terms average over them, the pair's own terms count once.
            run = InterpolationPass(runs[0].frame0, runs[0].frame1, runs[0].flow_01, runs[0].flow_10,
                                    torch.cat([r.warped0_raw for r in runs]), torch.cat([r.warped1_raw for r in runs]),
                                    torch.cat([r.output for r in runs]))
            terms = supervised_loss(run, target.transpose(0, 1).reshape(-1, 3, height, width), features)
            loss = total_loss(terms)
        return CyclicInterpOutput(loss=loss, interpolated_frames=self._denormalize(predicted),
                                  flows=torch.stack((runs[0].flow_01, runs[0].flow_10), 1), time_flows=time_flows,
                                  visibility=visibility, loss_terms=terms, hidden_states=states)

    def _forward_cycle(self, frames, normalized, times, middle, features, hidden: bool) -> CyclicInterpOutput:
        """A triplet; `middle` (B, 3, H, W) mean-subtracted or None."""
        t = times[:, 0]
        first = self.interpolate_at(normalized[:, 0], normalized[:, 1], t)[0]
        second = self.interpolate_at(normalized[:, 1], normalized[:, 2], t)[0]
        cycle_times = 1 - times  # P01 sits at t and P12 at 1 + t: I1 lies at 1 - t between them
        runs, time_flows, visibility, states = self._interpolate_pair(first.output, second.output, cycle_times,
                                                                      hidden)
        cycle = runs[0]
        loss = terms = None
        if middle is not None:
            teacher = self._teacher_outputs(frames, times) if self._teacher is not None else None
            terms = cycle_loss(first, second, cycle, middle, features, teacher)
            loss = total_loss(terms, self._teacher_weight)
        return CyclicInterpOutput(loss=loss, interpolated_frames=self._denormalize(torch.stack((first.output,
                                                                                               second.output), 1)),
                                  flows=torch.stack((cycle.flow_01, cycle.flow_10), 1), time_flows=time_flows,
                                  visibility=visibility, cycle_frame=self._denormalize(cycle.output),
                                  loss_terms=terms, hidden_states=states)

    @torch.no_grad()
    def interpolate(self, pixel_values_videos: torch.Tensor, timesteps=None) -> torch.Tensor:
        """(B, N, 3, H, W): the frames between two frames (B, 2, 3, H, W) at `timesteps` (default: num_interp evenly
        spaced), clamped to [0, rgb_max]."""
        if isinstance(pixel_values_videos, torch.Tensor) and pixel_values_videos.dim() == 5 and \
                pixel_values_videos.shape[1] != 2:
            raise ValueError(f"interpolate takes two frames per sample (batch, 2, 3, H, W); got "
                             f"{tuple(pixel_values_videos.shape)} (interpolate each consecutive pair of a clip)")
        out = self(pixel_values_videos=pixel_values_videos, timesteps=timesteps, return_dict=True)
        return out.interpolated_frames.clamp(0, self.config.rgb_max)


__all__ = [
    "CyclicInterpConvPair", "CyclicInterpForFrameInterpolation", "CyclicInterpOutput", "CyclicInterpPreTrainedModel",
    "CyclicInterpUNet", "CyclicInterpUpBlock", "approximate_time_flows", "synthesize",
]
