"""DeepLabV3+ semantic segmentation as transformers models.

Paper: Zhu et al., "Improving Semantic Segmentation via Video Propagation and Label Relaxation", arXiv 1812.01593
(the head is Chen et al.'s DeepLabV3+, arXiv 1802.02611). Reference: NVIDIA/semantic-segmentation, branch `sdcnet`,
`network/deepv3.py` (`DeepV3Plus`, `DeepWV3Plus`).

The head as the reference builds it: an ASPP (image pooling, a 1×1 conv and three 3×3 atrous convs, 256 channels
each with BN+ReLU, concatenated image-pooling first) → 1×1 `bot_aspp` (no BN) → bilinear upsampling to the
low-level features, concatenated after their 48-channel 1×1 projection `bot_fine` → two 3×3 convs with BN+ReLU
(`decoder`) → 1×1 `classifier` → bilinear upsampling to the input size (align_corners=True, as the reference).

Trunks: torchvision's ResNet-50/101 dilated with `replace_stride_with_dilation` (output stride 8 or 16; skip from
`layer1`), or the WideResNet-38-A2 (`wider_resnet.py`; output stride 8; skip from `mod2` at stride 2).
Deviations from the reference, on purpose:
- the ASPP rates follow the configured output stride (the reference's ResNet `D16` variant keeps the stride-8 rates);
- torchvision dilates the first block of a dilated stage by the previous stage's rate (1, then 2) where the
  reference dilates every block of `layer3` by 2 and of `layer4` by 4, so a reference ResNet checkpoint loads with
  the same weights but slightly different receptive fields in two blocks;
- the classifier keeps PyTorch's default initialisation (see `_init_weights`);
- batch norms are `nn.BatchNorm2d`, made `nn.SyncBatchNorm` when the model is built inside a NCCL (GPU) process group
  (the reference uses apex's SyncBN); built on CPU or in a gloo group they stay `nn.BatchNorm2d`.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithNoAttention, SemanticSegmenterOutput

from .configuration_deeplabv3plus import DeepLabV3PlusConfig
from .wider_resnet import WiderResNetA2Trunk

try:  # adlr_hf's shared base and loss (one class object per process)
    from adlr_hf.layers.relaxed_boundary import relaxed_boundary_loss
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel
except ImportError:  # a remote-code copy: the published folder carries these files (symlinked in)
    from .modeling_adlr import AdlrPreTrainedModel
    from .relaxed_boundary import relaxed_boundary_loss


def upsample(x: torch.Tensor, size) -> torch.Tensor:
    """The reference's `Upsample`: bilinear with align_corners=True."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                                   bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def default_group_on_gpu() -> bool:
    """Whether the default process group communicates over GPUs (NCCL): only then can SyncBatchNorm run."""
    return dist.is_available() and dist.is_initialized() and "nccl" in str(dist.get_backend()).lower()


class DeepLabV3PlusResNetTrunk(nn.Module):
    """torchvision's ResNet (Bottleneck) without its classifier, dilated to output stride 8 (layer3, layer4) or 16
    (layer4). Module names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, ...), so its state dicts load as
    they are. `forward` returns (layer1's output, layer4's output, [stem, layer1..layer4])."""

    def __init__(self, config: DeepLabV3PlusConfig):
        super().__init__()
        dilate = [False, True, True] if config.output_stride == 8 else [False, False, True]
        resnet = ResNet(Bottleneck, config.stage_depths, replace_stride_with_dilation=dilate)
        if config.num_channels != 3:
            resnet.conv1 = nn.Conv2d(config.num_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4

    def forward(self, x: torch.Tensor):
        stages = [self.maxpool(self.relu(self.bn1(self.conv1(x))))]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            stages.append(layer(stages[-1]))
        return stages[1], stages[-1], stages


class DeepLabV3PlusASPP(nn.Module):
    """Atrous spatial pyramid pooling: [image pooling, 1×1, three 3×3 atrous convs], concatenated in that order."""

    def __init__(self, in_channels: int, channels: int, rates):
        super().__init__()
        self.features = nn.ModuleList([conv_bn_relu(in_channels, channels, 1)] +
                                      [conv_bn_relu(in_channels, channels, 3, dilation=r) for r in rates])
        self.img_conv = conv_bn_relu(in_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.img_conv(x.mean((2, 3), keepdim=True))  # bilinear upsampling of a 1×1 map is a broadcast
        return torch.cat([pooled.expand(-1, -1, *x.shape[2:]), *(branch(x) for branch in self.features)], 1)


class DeepLabV3PlusPreTrainedModel(AdlrPreTrainedModel):
    config_class = DeepLabV3PlusConfig
    config: DeepLabV3PlusConfig
    base_model_prefix = "model"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False
    _no_split_modules = ["Bottleneck", "WiderResNetBlock", "DeepLabV3PlusASPP"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The reference's `initialize_weights`: Kaiming-normal (fan-in) convolutions, zero biases, BN 1/0; except
        the 1×1 classifier, which keeps PyTorch's default (Kaiming-uniform, a=√5, as torchvision's segmentation
        heads): with untrained batch-norm statistics the reference's init gives logits of std ~4 and a first loss
        near 7 instead of ~ln(C)."""
        if getattr(module, "_is_classifier", False):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        elif isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            if module.num_batches_tracked is not None:
                init.zeros_(module.num_batches_tracked)


class DeepLabV3PlusModel(DeepLabV3PlusPreTrainedModel):
    """Trunk + ASPP + decoder. `last_hidden_state`: the decoder's features (N, decoder_channels, h, w) at the skip
    features' resolution (stride 4 for ResNets, 2 for the WideResNet); `hidden_states` (with `output_hidden_states`):
    every trunk stage's output, then the decoder's features."""

    def __init__(self, config: DeepLabV3PlusConfig):
        super().__init__(config)
        self.backbone = DeepLabV3PlusResNetTrunk(config) if config.backbone_kind == "resnet" else \
            WiderResNetA2Trunk(config)
        self.aspp = DeepLabV3PlusASPP(config.trunk_channels, config.aspp_channels, config.atrous_rates)
        self.bot_aspp = nn.Conv2d(5 * config.aspp_channels, config.aspp_channels, 1, bias=False)
        self.bot_fine = nn.Conv2d(config.low_level_channels, config.skip_channels, 1, bias=False)
        self.decoder = nn.Sequential(*conv_bn_relu(config.aspp_channels + config.skip_channels,
                                                   config.decoder_channels, 3),
                                     *conv_bn_relu(config.decoder_channels, config.decoder_channels, 3))
        if default_group_on_gpu():
            nn.SyncBatchNorm.convert_sync_batchnorm(self)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs):
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states, return_dict)
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"pixel_values has shape {tuple(pixel_values.shape)}; expected (batch, "
                             f"{self.config.num_channels}, height, width)")
        low, high, stages = self.backbone(pixel_values)
        coarse = self.bot_aspp(self.aspp(high))
        fused = torch.cat([self.bot_fine(low), upsample(coarse, low.shape[2:])], 1)
        hidden = self.decoder(fused)
        out = BaseModelOutputWithNoAttention(last_hidden_state=hidden,
                                             hidden_states=(*stages, hidden) if output_hidden_states else None)
        return out if return_dict else out.to_tuple()


class DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusPreTrainedModel):
    """`DeepLabV3PlusModel` + a 1×1 `classifier` (no bias, as the reference), upsampled to the input size.

    `labels`: (N, H, W) class ids with `config.ignore_index` → cross entropy; (N, num_labels + 1, H, W) float
    multi-hot (the boundary-relaxation target of `adlr_hf.layers.relaxed_boundary.relaxed_boundary_target`, last
    channel = ignore) → `relaxed_boundary_loss`."""

    accepts_loss_kwargs = False

    def __init__(self, config: DeepLabV3PlusConfig):
        super().__init__(config)
        self.model = DeepLabV3PlusModel(config)
        self.classifier = nn.Conv2d(config.decoder_channels, config.num_labels, 1, bias=False)
        self.classifier._is_classifier = True
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs):
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states, return_dict)
        outputs = self.model(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = upsample(self.classifier(outputs.last_hidden_state), pixel_values.shape[2:])
        loss = None if labels is None else self.segmentation_loss(logits, labels.to(logits.device))
        out = SemanticSegmenterOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return out if return_dict else out.to_tuple()

    def segmentation_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, c, h, w = logits.shape
        if labels.dim() == 3 and not labels.is_floating_point():
            if labels.shape != (n, h, w):
                raise ValueError(f"labels of shape {tuple(labels.shape)} do not match the logits' (N, H, W) = "
                                 f"{(n, h, w)}; give one class-id map per image at the input size")
            return F.cross_entropy(logits.float(), labels.long(), ignore_index=self.config.ignore_index)
        if labels.dim() == 4 and labels.is_floating_point():
            return relaxed_boundary_loss(logits, labels, wt_bound=self.config.wt_bound)
        raise ValueError(f"labels of shape {tuple(labels.shape)} and dtype {labels.dtype} are neither (N, H, W) "
                         f"integer class ids (ignore_index={self.config.ignore_index}) nor the (N, {c + 1}, H, W) "
                         "float boundary-relaxation target (last channel = ignore)")


__all__ = ["DeepLabV3PlusASPP", "DeepLabV3PlusForSemanticSegmentation", "DeepLabV3PlusModel",
           "DeepLabV3PlusPreTrainedModel", "DeepLabV3PlusResNetTrunk", "default_group_on_gpu", "upsample"]
