"""SDC-Net video frame prediction as transformers models.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", ECCV 2018, arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`, `sdcnet/models/sdc_net2d.py` (`SDCNet2D`,
`SDCNet2DRecon`) and `sdcnet/models/model_utils.py` (`conv2d` / `deconv2d` blocks).

The network (FlowNetS with halved channels): the past frames and the optical flows between them, normalised and
interleaved per colour, go through six stride-2 conv stages and six 4×4/2 transposed-conv stages with U-Net skips;
the last stage is concatenated with the raw input and a 3×3 conv predicts the motion (u, v) of the next frame. The
prediction is the last frame backward-warped by that motion (`SDCNet2D`); `SDCNet2DRecon` also sees the target frame
and warps I_t = images[-2]. The paper's full model (`kernel_size` k >= 1) also predicts per-pixel separable k-tap
kernels and applies them at the displaced location with the spatially-displaced convolution.

Deviations from the reference:
- the flow source is configurable (OpenCV DIS by default, RAFT, precomputed, none) instead of FlowNet2; its frozen
  flows are computed in `forward` without gradients and never saved; its statistics live in the config;
- frames are RGB (the reference reads BGR with cv2); `input_channel_order="bgr"` serves converted reference weights;
- warping is `grid_sample` (align_corners=True, border) instead of FlowNet2's `Resample2d` CUDA op;
- the reference released no kernel model: the kernel head (a 3×3 conv beside `final_flow`, softmax over each kernel's
  k taps so that k = 1 is exactly the plain warp) and its initialisation are this port's reading of the paper;
- the conv blocks hold named `conv` / `deconv` layers (the reference's `nn.Sequential` index 0) and a non-inplace
  LeakyReLU, so tensor-parallel plans can name them; values are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_sdcnet import SDCNetConfig
from .losses_sdcnet import sdcnet_loss

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.layers.sdc import sdc
    from adlr_hf.layers.warp import warp
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries these files
    from .modeling_adlr import AdlrPreTrainedModel
    from .sdc import sdc
    from .warp import warp

try:  # the flow sources (OpenCV, RAFT, .flo files) come with adlr_hf
    from adlr_hf.layers.flow import build_flow_source
except ImportError:  # pragma: no cover - a remote-code copy carries the OpenCV sources (opencv.py, base.py)
    from .opencv import OpenCVFlow

    def build_flow_source(name: str, **options):
        if not name.startswith("opencv-"):
            raise ImportError(f"flow_source {name!r} needs adlr_hf (pip install adlr_hf); without it use "
                              "'opencv-dis' / 'opencv-farneback' or pass input_flows=(B, N-1, 2, H, W), "
                              "flow(I_{i+1}, I_i) in pixels")
        return OpenCVFlow(name.split("-", 1)[1], **options)

LEAKY_SLOPE = 0.1
# Initial weight of the centre tap of each 1-D kernel (weights zero, biases set): the full model starts close to the
# flow-only warp of the same trunk (not in the reference, which released no kernel model).
KERNEL_CENTRE_INIT = 0.9


@dataclass
class SDCNetOutput(ModelOutput):
    """loss: the reference's loss (with `labels`); predicted_frame (B, 3, H, W) in [0, rgb_max] (not clamped);
    motion (B, 2, H, W): (u, v) in pixels, prediction(x) = source(x + motion(x)); kernels (B, 2k, H, W): the k
    vertical then k horizontal taps of each pixel (each sums to 1), None for flow-only models; hidden_states: the
    encoder and decoder feature maps (with `output_hidden_states`)."""

    loss: torch.FloatTensor | None = None
    predicted_frame: torch.FloatTensor | None = None
    motion: torch.FloatTensor | None = None
    kernels: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class SDCNetConv(nn.Module):
    """Conv2d with 'same' padding, then LeakyReLU(0.1): the reference's `conv2d` block."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)  # not in place (the reference's is): same values, autograd-safe

    def forward(self, x):
        return self.act(self.conv(x))


class SDCNetDeconv(nn.Module):
    """ConvTranspose2d 4×4, stride 2, padding 1 (doubles H and W), then LeakyReLU(0.1): the reference's `deconv2d`."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)  # not in place (the reference's is): same values, autograd-safe

    def forward(self, x):
        return self.act(self.deconv(x))


class SDCNetPreTrainedModel(AdlrPreTrainedModel):
    config_class = SDCNetConfig
    config: SDCNetConfig
    base_model_prefix = "sdcnet"
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False
    _no_split_modules = ["SDCNetConv", "SDCNetDeconv"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The reference's init: Xavier-uniform weights and U(0, 1) biases for every `nn.Conv2d` (its loop tests
        `Conv2d or ConvTranspose3d`, so the `ConvTranspose2d`s keep PyTorch's default: Kaiming-uniform a=√5, bias
        U(±1/√fan_in)); the kernel head starts with zero weights and a centre-tap bias (KERNEL_CENTRE_INIT)."""
        if module is getattr(self, "final_kernel", None):
            k = self.config.kernel_size
            init.zeros_(module.weight)
            bias = torch.zeros(2 * k, dtype=module.bias.dtype, device=module.bias.device)
            if k > 1:  # softmax of [b, 0, ..., 0] puts KERNEL_CENTRE_INIT on the centre tap
                centre = math.log(KERNEL_CENTRE_INIT * (k - 1) / (1 - KERNEL_CENTRE_INIT))
                bias[(k - 1) // 2] = bias[k + (k - 1) // 2] = centre
            init.copy_(module.bias, bias)
        elif isinstance(module, nn.Conv2d):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.uniform_(module.bias, 0.0, 1.0)
        elif isinstance(module, nn.ConvTranspose2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight.shape[1] * module.weight[0, 0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)


class SDCNetModel(SDCNetPreTrainedModel):
    """The encoder-decoder trunk: normalised network input (B, C_in, H, W), H and W multiples of 64 -> the last
    decoder stage concatenated with the input, (B, C_in + base_width / 4, H, W) (`last_hidden_state`).
    `hidden_states`: conv1 … conv6 and deconv5 … deconv0 outputs."""

    def __init__(self, config: SDCNetConfig):
        super().__init__(config)
        enc, dec = config.encoder_channels, config.decoder_channels
        self.conv1 = SDCNetConv(config.num_input_channels, enc[0], 7, stride=2)
        self.conv2 = SDCNetConv(enc[0], enc[1], 5, stride=2)
        self.conv3 = SDCNetConv(enc[1], enc[2], 5, stride=2)
        self.conv3_1 = SDCNetConv(enc[2], enc[2])
        self.conv4 = SDCNetConv(enc[2], enc[3], stride=2)
        self.conv4_1 = SDCNetConv(enc[3], enc[3])
        self.conv5 = SDCNetConv(enc[3], enc[4], stride=2)
        self.conv5_1 = SDCNetConv(enc[4], enc[4])
        self.conv6 = SDCNetConv(enc[4], enc[5], stride=2)
        self.conv6_1 = SDCNetConv(enc[5], enc[5])
        self.deconv5 = SDCNetDeconv(enc[5], dec[0])
        self.deconv4 = SDCNetDeconv(enc[4] + dec[0], dec[1])
        self.deconv3 = SDCNetDeconv(enc[3] + dec[1], dec[2])
        self.deconv2 = SDCNetDeconv(enc[2] + dec[2], dec[3])
        self.deconv1 = SDCNetDeconv(enc[1] + dec[3], dec[4])
        self.deconv0 = SDCNetDeconv(enc[0] + dec[4], dec[5])
        self.post_init()

    def forward(self, inputs: torch.Tensor, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None):
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states,
                                                                   return_dict)
        channels, divisor = self.config.num_input_channels, self.config.size_divisor
        if inputs.dim() != 4 or inputs.shape[1] != channels:
            raise ValueError(f"SDCNetModel takes the normalised network input (B, {channels}, H, W); got shape "
                             f"{tuple(inputs.shape)} (frames go to SDCNetForFramePrediction)")
        if inputs.shape[2] % divisor or inputs.shape[3] % divisor:
            raise ValueError(f"H and W must be multiples of {divisor}; got {inputs.shape[2]}x{inputs.shape[3]}")
        out1 = self.conv1(inputs)
        out2 = self.conv2(out1)
        out3 = self.conv3_1(self.conv3(out2))
        out4 = self.conv4_1(self.conv4(out3))
        out5 = self.conv5_1(self.conv5(out4))
        out6 = self.conv6_1(self.conv6(out5))
        up5 = self.deconv5(out6)
        up4 = self.deconv4(torch.cat((out5, up5), 1))
        up3 = self.deconv3(torch.cat((out4, up4), 1))
        up2 = self.deconv2(torch.cat((out3, up3), 1))
        up1 = self.deconv1(torch.cat((out2, up2), 1))
        up0 = self.deconv0(torch.cat((out1, up1), 1))
        features = torch.cat((inputs, up0), 1)
        hidden = (out1, out2, out3, out4, out5, out6, up5, up4, up3, up2, up1, up0) if output_hidden_states else None
        out = BaseModelOutput(last_hidden_state=features, hidden_states=hidden)
        return out if return_dict else out.to_tuple()


class SDCNetForFramePrediction(SDCNetPreTrainedModel):
    """Next-frame prediction from the last `sequence_length` frames: the trunk, `final_flow` (motion), and with
    `kernel_size` k >= 1 `final_kernel` (2k kernel logits) applied through the SDC op (the paper's full model).

    Inputs are raw frames: `pixel_values_videos` (B, T, 3, H, W), RGB in [0, rgb_max], H and W multiples of 64 (the
    video processor pads). `labels` (B, 3, H, W): the next frame (the loss target; a reconstruction model also reads
    it). `input_flows` (B, N-1, 2, H, W): flow(I_{i+1}, I_i) in pixels over the N frames the network sees, instead
    of the config's flow source."""

    def __init__(self, config: SDCNetConfig):
        super().__init__(config)
        self._check_config(config)
        self.sdcnet = SDCNetModel(config)
        features = config.num_input_channels + config.decoder_channels[-1]
        self.final_flow = nn.Conv2d(features, 2, 3, padding=1)
        self.final_kernel = None
        if config.kernel_size:
            # Built outside the RNG stream (its init is deterministic), so the trunk and final_flow get the same
            # initial weights as a flow-only model from the same seed.
            with torch.random.fork_rng(devices=[]):
                self.final_kernel = nn.Conv2d(features, 2 * config.kernel_size, 3, padding=1)
        self._flow_source = None  # the frozen flow source, built on first use: not a module, never trained or saved
        self.post_init()

    def _check_config(self, config: SDCNetConfig) -> None:
        """Subclasses that implement one reference model refuse other configs."""

    # -- inputs ------------------------------------------------------------------------------------------------------
    def _past_frames(self, pixel_values_videos) -> torch.Tensor:
        """The T past frames (B, T, 3, H, W) in the model's dtype, after checking their shape."""
        config = self.config
        if not isinstance(pixel_values_videos, torch.Tensor) or pixel_values_videos.dim() != 5 or \
                pixel_values_videos.shape[2] != 3:
            shape = tuple(pixel_values_videos.shape) if isinstance(pixel_values_videos, torch.Tensor) else \
                type(pixel_values_videos).__name__
            raise ValueError(f"pixel_values_videos must be (batch, frames, 3, H, W) RGB frames in [0, "
                             f"{config.rgb_max:g}]; got {shape}")
        if pixel_values_videos.shape[1] != config.sequence_length:
            raise ValueError(f"the model predicts from sequence_length={config.sequence_length} past frames; got "
                             f"{pixel_values_videos.shape[1]} (pass the last {config.sequence_length})")
        height, width = pixel_values_videos.shape[-2:]
        divisor = config.size_divisor
        if height % divisor or width % divisor:
            raise ValueError(f"frames of {height}x{width} (HxW): H and W must be multiples of {divisor}; pad them "
                             f"with the video processor (it pads to multiples of {divisor}) or crop to "
                             f"{height // divisor * divisor}x{width // divisor * divisor}")
        return pixel_values_videos.to(self.final_flow.weight.dtype)

    def _frames(self, pixel_values_videos, labels) -> torch.Tensor:
        """The N frames the network sees (B, N, 3, H, W): the past frames, and the target for reconstruction."""
        frames = self._past_frames(pixel_values_videos)
        expected = (frames.shape[0], 3, *frames.shape[-2:])
        if labels is not None and (not isinstance(labels, torch.Tensor) or tuple(labels.shape) != expected):
            raise ValueError(f"labels must be the target frames {expected}; got "
                             f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else labels!r}")
        if self.config.reconstruction:
            if labels is None:
                raise ValueError(f"{type(self).__name__} reconstructs a frame it is given: pass labels=(B, 3, H, W), "
                                 "the frame after the inputs (use a prediction model to predict unseen frames)")
            frames = torch.cat([frames, labels.to(frames.dtype)[:, None]], 1)
        return frames

    @torch.no_grad()
    def compute_flows(self, frames: torch.Tensor) -> torch.Tensor | None:
        """flow(I_{i+1}, I_i) (B, N-1, 2, H, W) in pixels of frames (B, N, 3, H, W) from the config's flow source
        (frozen, no gradients); None for flow_source "none"."""
        config = self.config
        if not config.uses_flow:
            return None
        if config.flow_source == "precomputed":
            raise ValueError("flow_source 'precomputed': pass input_flows=(B, N-1, 2, H, W), flow(I_{i+1}, I_i) in "
                             "pixels (read .flo files with adlr_hf.layers.flow.PrecomputedFlow.load)")
        if self._flow_source is None:
            options = {}
            if config.flow_source.startswith("raft-"):
                options = {"weights": config.flow_weights, "device": frames.device}
            self._flow_source = build_flow_source(config.flow_source, **options)
        batch, count, _, height, width = frames.shape
        scale = 255.0 / config.rgb_max  # flow sources take frames in [0, 255]
        later = frames[:, 1:].reshape(-1, 3, height, width).float() * scale
        earlier = frames[:, :-1].reshape(-1, 3, height, width).float() * scale
        return self._flow_source(later, earlier).view(batch, count - 1, 2, height, width)

    def _flows(self, frames: torch.Tensor, input_flows) -> torch.Tensor | None:
        config = self.config
        if input_flows is None:
            return self.compute_flows(frames)
        if not config.uses_flow:
            raise ValueError("input_flows were given but flow_source is 'none' (the model takes images only)")
        expected = (frames.shape[0], frames.shape[1] - 1, 2, *frames.shape[-2:])
        if not isinstance(input_flows, torch.Tensor) or tuple(input_flows.shape) != expected:
            raise ValueError(f"input_flows must be {expected}: flow(I_{{i+1}}, I_i) for each consecutive pair of "
                             f"the {frames.shape[1]} frames the network sees; got "
                             f"{tuple(input_flows.shape) if isinstance(input_flows, torch.Tensor) else input_flows!r}")
        return input_flows.detach()

    def _flow_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.config.flow_mean, dtype=like.dtype, device=like.device).view(1, 2, 1, 1)
        std = torch.tensor(self.config.flow_std, dtype=like.dtype, device=like.device).view(1, 2, 1, 1)
        return mean, std

    def network_input(self, frames: torch.Tensor, flows: torch.Tensor | None) -> torch.Tensor:
        """The reference's input: [flows, images] on channels. Images minus their per-sample colour mean (over frames
        and pixels), divided by rgb_max, channels interleaved per colour (r1 r2 … g1 g2 … b1 b2 …); flows
        (f - mean) / (3 std), interleaved the same way (u1 u2 … v1 v2 …)."""
        batch, count, _, height, width = frames.shape
        images = (frames - frames.mean(dim=(1, 3, 4), keepdim=True)) / self.config.rgb_max
        if self.config.input_channel_order == "bgr":  # weights trained on the reference's cv2 (BGR) frames
            images = images.flip(2)
        images = images.transpose(1, 2).reshape(batch, 3 * count, height, width)
        if flows is None:
            return images
        mean, std = self._flow_stats(images)
        flows = (flows.to(images.dtype) - mean[:, None]) / (3 * std[:, None])
        flows = flows.transpose(1, 2).reshape(batch, 2 * (count - 1), height, width)
        return torch.cat((flows, images), 1)

    # -- the prediction ----------------------------------------------------------------------------------------------
    def forward(self, pixel_values_videos: torch.Tensor, labels: torch.Tensor | None = None,
                input_flows: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None):
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states,
                                                                   return_dict)
        frames = self._frames(pixel_values_videos, labels)
        flows = self._flows(frames, input_flows)
        trunk = self.sdcnet(self.network_input(frames, flows), output_hidden_states=output_hidden_states,
                            return_dict=True)
        features = trunk.last_hidden_state
        # The warp runs in float32 at least: half-precision pixel coordinates are off by pixels beyond x = 256.
        output = self.final_flow(features)
        output = output.float() if output.element_size() < 4 else output
        mean, std = self._flow_stats(output)
        motion = 3 * std * output + mean
        source = (frames[:, -2] if self.config.reconstruction else frames[:, -1]).to(motion.dtype)
        kernels = None
        if self.final_kernel is not None:  # the paper's kernels (not in the released code): softmax over k taps
            k = self.config.kernel_size
            logits = self.final_kernel(features).to(motion.dtype)
            kernel_v, kernel_h = logits[:, :k].softmax(dim=1), logits[:, k:].softmax(dim=1)
            predicted = sdc(source, kernel_v, kernel_h, motion)
            kernels = torch.cat((kernel_v, kernel_h), 1)
        else:
            predicted = warp(source, motion)  # grid_sample (align_corners, border) in place of FlowNet2's Resample2d
        loss = None
        if labels is not None:
            loss = sdcnet_loss(predicted, labels, motion, self.config.rgb_max)[0]
        out = SDCNetOutput(loss=loss, predicted_frame=predicted, motion=motion, kernels=kernels,
                           hidden_states=trunk.hidden_states)
        return out if return_dict else out.to_tuple()

    @torch.no_grad()
    def rollout(self, pixel_values_videos: torch.Tensor, num_future_frames: int = 1) -> torch.Tensor:
        """(B, num_future_frames, 3, H, W): predict t+1 from the last T frames, feed the prediction (clamped to
        [0, rgb_max]) back as the newest frame, predict t+2, and so on. Flows between real frames are computed once."""
        if isinstance(num_future_frames, bool) or not isinstance(num_future_frames, int) or num_future_frames < 1:
            raise ValueError(f"num_future_frames={num_future_frames!r} must be an integer >= 1")
        if self.config.reconstruction:
            raise ValueError(f"{type(self).__name__} reconstructs a frame it is given (its input includes the target), "
                             "so it cannot roll out into unseen frames; use propagate_labels with future_frames, or a "
                             "prediction model (SDCNet2D / the full model)")
        frames = self._past_frames(pixel_values_videos)
        flows = self.compute_flows(frames)
        predictions = []
        for _ in range(num_future_frames):
            out = self(frames, input_flows=flows, return_dict=True)
            predicted = out.predicted_frame.clamp(0, self.config.rgb_max)
            predictions.append(predicted)
            if flows is not None:
                newest = self.compute_flows(torch.stack((frames[:, -1], predicted), 1))
                flows = torch.cat((flows[:, 1:], newest), 1)
            frames = torch.cat((frames[:, 1:], predicted[:, None].to(frames.dtype)), 1)
        return torch.stack(predictions, 1)

    @torch.no_grad()
    def propagate_labels(self, pixel_values_videos: torch.Tensor, label_map: torch.Tensor, num_steps: int = 1,
                         future_frames: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint image-label propagation (the reference's `sdcnet/sdc_aug.py`, for segmentation training pairs): the
        motion predicted for the next frame warps the newest frame bilinearly and its label map with nearest
        sampling, so every propagated label is one of the input's labels. Repeated `num_steps` times.

        `label_map` (B, H, W) or (B, 1, H, W) integer labels of the last input frame. A prediction model rolls out
        from its own predictions. A reconstruction model needs the real next frames `future_frames`
        (B, num_steps, 3, H, W): step s reads the real frames up to t+s and warps the frame and labels synthesised
        at step s-1 (the reference keeps I_t first in every step's window and warps images with nearest sampling
        after the first step; here the window of real frames slides and images are warped bilinearly).
        Returns (frames (B, num_steps, 3, H, W), labels (B, num_steps, H, W) in the label map's dtype)."""
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps={num_steps!r} must be an integer >= 1")
        config = self.config
        frames = self._past_frames(pixel_values_videos)
        labels = label_map[:, None] if isinstance(label_map, torch.Tensor) and label_map.dim() == 3 else label_map
        expected = (frames.shape[0], *frames.shape[-2:])
        if not isinstance(labels, torch.Tensor) or labels.dim() != 4 or labels.shape[1] != 1 or \
                (labels.shape[0], *labels.shape[-2:]) != expected:
            got = tuple(label_map.shape) if isinstance(label_map, torch.Tensor) else type(label_map).__name__
            raise ValueError(f"label_map must be {expected}: the labels of the last input frame; got {got}")
        if labels.is_floating_point():
            raise ValueError(f"label_map has dtype {labels.dtype}; pass integer class ids (e.g. .long())")
        if config.reconstruction:
            expected = (frames.shape[0], num_steps, 3, *frames.shape[-2:])
            if not isinstance(future_frames, torch.Tensor) or tuple(future_frames.shape) != expected:
                raise ValueError(f"{type(self).__name__} reads the real next frames: pass future_frames={expected}")
            future_frames = future_frames.to(frames.dtype)
        elif future_frames is not None:
            raise ValueError("future_frames is for reconstruction models; a prediction model rolls out on its own")
        image = frames[:, -1]
        out_frames, out_labels = [], []
        for step in range(num_steps):
            if config.reconstruction:
                window = torch.cat((frames, future_frames[:, :step + 1]), 1)[:, -config.sequence_length - 1:]
                out = self(window[:, :-1], labels=window[:, -1], return_dict=True)
            else:
                out = self(frames, return_dict=True)
            image = warp(image, out.motion) if config.reconstruction else out.predicted_frame
            image = image.clamp(0, config.rgb_max)
            labels = warp(labels, out.motion, mode="nearest")
            out_frames.append(image)
            out_labels.append(labels[:, 0])
            if not config.reconstruction:
                frames = torch.cat((frames[:, 1:], image[:, None].to(frames.dtype)), 1)
        return torch.stack(out_frames, 1), torch.stack(out_labels, 1)


class SDCNet2D(SDCNetForFramePrediction):
    """The reference's released next-frame model: motion only, prediction = bilinear warp of the last frame."""

    def _check_config(self, config: SDCNetConfig) -> None:
        if config.kernel_size or config.reconstruction:
            raise ValueError(f"SDCNet2D is the flow-only prediction model: it needs kernel_size=0 and "
                             f"reconstruction=False (got {config.kernel_size}, {config.reconstruction}); use "
                             "SDCNetForFramePrediction for kernels, SDCNet2DRecon for reconstruction")


class SDCNet2DRecon(SDCNetForFramePrediction):
    """The reference's video-reconstruction model (Cityscapes augmentation): sees the target frame too, flows against
    it, and warps I_t = images[-2] towards it."""

    def _check_config(self, config: SDCNetConfig) -> None:
        if not config.reconstruction or config.kernel_size:
            raise ValueError(f"SDCNet2DRecon needs reconstruction=True and kernel_size=0 (got "
                             f"{config.reconstruction}, {config.kernel_size}); use SDCNet2D or "
                             "SDCNetForFramePrediction for prediction")


__all__ = [
    "SDCNet2D", "SDCNet2DRecon", "SDCNetConv", "SDCNetDeconv", "SDCNetForFramePrediction", "SDCNetModel",
    "SDCNetOutput", "SDCNetPreTrainedModel",
]
