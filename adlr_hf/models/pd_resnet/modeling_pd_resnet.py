"""PD-ResNet and PD-VGG image classifiers as transformers models.

Paper: Liu et al., "Partial Convolution based Padding", arXiv 1811.11718. Reference: NVIDIA/partialconv
(`models/pd_resnet.py`, `models/pd_vgg.py`, `models/partialconv2d.py`), itself adapted from torchvision.

Module names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`; VGG `features.N`,
`classifier.N`), under the base model's prefix `model.` for the classification heads' backbone, so torchvision and
NVIDIA partialconv state dicts map one to one (see `convert_pd_resnet.py`). Deviations from the reference:
- only convolutions that pad are `PartialConv2d`; the reference also wraps the unpadded 1×1 convs, where the ratio is
  exactly 1, so the outputs are the same and those layers skip the extra multiply;
- adaptive average pooling (as torchvision) instead of `AvgPool2d(7)`, so any input size works; identical at 224×224;
- `padding_mode` "zeros" / "reflect" / "replicate" build plain `nn.Conv2d`s (the paper's padding ablation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention, ImageClassifierOutput

from .configuration_pd_resnet import PDResNetConfig

try:  # adlr_hf's layer (one class object for isinstance checks and tensor-parallel plans)
    from adlr_hf.layers.partial_conv import PartialConv2d
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries partial_conv.py
    from .partial_conv import PartialConv2d

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel, tp_rng_fork
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries modeling_adlr.py
    from .modeling_adlr import AdlrPreTrainedModel, tp_rng_fork


def pd_conv(config: PDResNetConfig, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
            padding: int = 0, bias: bool = False) -> nn.Conv2d:
    """A conv whose padding follows `config.padding_mode`: `PartialConv2d` for "partial" (when it pads at all),
    else `nn.Conv2d` with that padding mode."""
    if padding > 0 and config.padding_mode == "partial":
        return PartialConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
    mode = "zeros" if config.padding_mode == "partial" else config.padding_mode
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias,
                     padding_mode=mode)


class PDResNetDownsample(nn.Sequential):
    """Projection shortcut: 1×1 conv (stride s) + BN, as `downsample.0` / `downsample.1`."""

    def __init__(self, config: PDResNetConfig, in_channels: int, out_channels: int, stride: int):
        super().__init__(pd_conv(config, in_channels, out_channels, 1, stride=stride),
                         nn.BatchNorm2d(out_channels))


class _PDResidualBlock(nn.Module):
    """relu(residual(x) + shortcut(x)); the shortcut projects (`downsample`) when the stride or width changes."""

    def _add_shortcut(self, config: PDResNetConfig, in_channels: int, out_channels: int, stride: int) -> None:
        self.relu = nn.ReLU(inplace=True)
        self.downsample = PDResNetDownsample(config, in_channels, out_channels, stride) \
            if stride != 1 or in_channels != out_channels else None
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.residual(x)
        out += identity
        return self.relu(out)


class PDResNetBasicBlock(_PDResidualBlock):
    """Two 3×3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, config: PDResNetConfig, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = pd_conv(config, in_channels, planes, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = pd_conv(config, planes, planes, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.bn2._is_residual_last_bn = True  # zeroed at init with config.zero_init_residual
        self._add_shortcut(config, in_channels, out_channels, stride)

    def residual(self, x):
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class PDResNetBottleneck(_PDResidualBlock):
    """1×1 reduce, 3×3 (carries the stride, ResNet v1.5 as torchvision and the reference), 1×1 expand ×4."""

    expansion = 4

    def __init__(self, config: PDResNetConfig, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = pd_conv(config, in_channels, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = pd_conv(config, planes, planes, 3, stride=stride, padding=1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = pd_conv(config, planes, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.bn3._is_residual_last_bn = True  # zeroed at init with config.zero_init_residual
        self._add_shortcut(config, in_channels, out_channels, stride)

    def residual(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class PDVGGFeatures(nn.Sequential):
    """VGG's conv stack as torchvision numbers it: conv, [BN], ReLU per width, MaxPool(2) per "M"."""

    def __init__(self, config: PDResNetConfig):
        layers, in_channels = [], config.num_channels
        for value in config.vgg_layers:
            if value == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(pd_conv(config, in_channels, value, 3, padding=1, bias=True))
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(value))
            layers.append(nn.ReLU(inplace=True))
            in_channels = value
        super().__init__(*layers)


class PDVGGClassifier(nn.Sequential):
    """VGG's head as torchvision numbers it: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear.

    The first dropout acts on `classifier.0`'s output, which the TP plan leaves split over the TP ranks, so it draws
    from the per-TP-rank RNG stream (Megatron's rule for dropout inside a parallel region; a no-op outside training
    set-ups that seed it)."""

    def __init__(self, config: PDResNetConfig):
        hidden = config.vgg_hidden_size
        super().__init__(
            nn.Linear(config.hidden_size * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(config.classifier_dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(config.classifier_dropout),
            nn.Linear(hidden, config.num_labels),
        )

    def forward(self, x):
        x = self[1](self[0](x))
        with tp_rng_fork():
            x = self[2](x)
        for layer in list(self)[3:]:
            x = layer(x)
        return x


class PDResNetPreTrainedModel(AdlrPreTrainedModel):
    config_class = PDResNetConfig
    config: PDResNetConfig
    base_model_prefix = "model"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False
    _no_split_modules = ["PDResNetBasicBlock", "PDResNetBottleneck"]

    @torch.no_grad()
    def _init_weights(self, module):
        """torchvision's init (also the reference's): Kaiming-normal fan-out convs, BN 1/0, VGG linears N(0, 0.01)
        with zero bias, the ResNet `fc` PyTorch's default; optionally zero-init the last BN of each residual block."""
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            if self.config.zero_init_residual and getattr(module, "_is_residual_last_bn", False):
                init.zeros_(module.weight)
            else:
                init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            if module.num_batches_tracked is not None:
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Linear):
            if self.config.is_vgg:
                init.normal_(module.weight, 0.0, 0.01)
                init.zeros_(module.bias)
            else:
                init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                bound = 1 / math.sqrt(module.weight.shape[1]) if module.weight.shape[1] > 0 else 0
                init.uniform_(module.bias, -bound, bound)


class PDResNetModel(PDResNetPreTrainedModel):
    """The feature extractor: ResNet stem + 4 stages, or VGG's conv stack; then adaptive average pooling.

    `last_hidden_state` is the last feature map (N, C, h, w); `pooler_output` the pooled features: (N, C) for ResNets
    (global average), (N, C·7·7) for VGG (adaptive 7×7 average, flattened, as VGG's classifier expects).
    `hidden_states` (with `output_hidden_states`): the stem output and each stage's output (ResNet) or each
    max-pool's output (VGG).
    """

    def __init__(self, config: PDResNetConfig):
        super().__init__(config)
        if config.is_vgg:
            self.features = PDVGGFeatures(config)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        else:
            block = PDResNetBottleneck if config.block_type == "bottleneck" else PDResNetBasicBlock
            width = config.base_width
            if config.stem == "cifar":  # 32×32 inputs: keep the resolution (not in the paper; a common variant)
                self.conv1 = pd_conv(config, config.num_channels, width, 3, stride=1, padding=1)
            else:
                self.conv1 = pd_conv(config, config.num_channels, width, 7, stride=2, padding=3)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity() if config.stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            in_channels = width
            for index, depth in enumerate(config.stage_depths):
                planes = width * 2 ** index
                blocks = []
                for i in range(depth):
                    blocks.append(block(config, in_channels, planes, stride=2 if index > 0 and i == 0 else 1))
                    in_channels = planes * block.expansion
                setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.post_init()

    def _stages(self):
        if self.config.is_vgg:
            stage = []
            for layer in self.features:
                stage.append(layer)
                if isinstance(layer, nn.MaxPool2d):
                    yield stage
                    stage = []
            if stage:
                yield stage
        else:
            yield [self.conv1, self.bn1, self.relu, self.maxpool]
            for index in range(len(self.config.stage_depths)):
                yield [getattr(self, f"layer{index + 1}")]

    def forward(self, pixel_values: torch.Tensor, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs):
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"pixel_values has shape {tuple(pixel_values.shape)}; expected (batch, "
                             f"{self.config.num_channels}, height, width)")
        hidden, all_hidden = pixel_values, []
        for stage in self._stages():
            for layer in stage:
                hidden = layer(hidden)
            if output_hidden_states:
                all_hidden.append(hidden)
        pooled = torch.flatten(self.avgpool(hidden), 1)
        out = BaseModelOutputWithPoolingAndNoAttention(last_hidden_state=hidden, pooler_output=pooled,
                                                       hidden_states=tuple(all_hidden) if output_hidden_states
                                                       else None)
        return out if return_dict else out.to_tuple()


class PDResNetForImageClassification(PDResNetPreTrainedModel):
    """`PDResNetModel` + torchvision's head: `fc` (ResNet) or `classifier` (VGG's three linears)."""

    accepts_loss_kwargs = False
    # The heads' tensor-parallel plan (the backbone's is `config.base_model_tp_plan`); names absent from a model (the
    # other architecture's head) match nothing. Row-parallel last layers on a split input work for any class count.
    _tp_plan = {"fc": "rowwise_split_input", "classifier.0": "colwise", "classifier.3": "rowwise",
                "classifier.6": "rowwise_split_input"}

    def __init__(self, config: PDResNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = PDResNetModel(config)
        if config.is_vgg:
            self.classifier = PDVGGClassifier(config)
        else:
            self.fc = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs):
        """`labels`: class ids (N,) for single-label classification (cross entropy), floats (N, num_labels) for
        multi-label (BCE), or (N,) floats with num_labels=1 for regression (MSE); `config.problem_type` decides
        when set."""
        output_attentions, output_hidden_states, return_dict = self.output_options(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.model(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        head = self.classifier if self.config.is_vgg else self.fc
        logits = head(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = self._classification_loss(logits, labels.to(logits.device))
        out = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return out if return_dict else out.to_tuple()

    def _classification_loss(self, logits, labels):
        problem = self.config.problem_type
        if problem is None:
            if self.num_labels == 1:
                problem = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
            self.config.problem_type = problem
        if problem == "regression":
            return F.mse_loss(logits.squeeze(-1), labels.float().view(-1)) if self.num_labels == 1 else \
                F.mse_loss(logits, labels.float())
        if problem == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.num_labels).float(), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


__all__ = [
    "PDResNetBasicBlock", "PDResNetBottleneck", "PDResNetDownsample", "PDResNetForImageClassification",
    "PDResNetModel", "PDResNetPreTrainedModel", "PDVGGClassifier", "PDVGGFeatures", "pd_conv",
]
