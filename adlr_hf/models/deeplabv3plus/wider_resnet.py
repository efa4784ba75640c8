"""The WideResNet-38-A2 trunk of DeepLabV3+ (arXiv 1812.01593, the paper's headline segmentation model; the network is
Wu et al.'s "Wider or Deeper", arXiv 1611.10080, as in NVIDIA/semantic-segmentation branch `sdcnet`,
`network/wider_resnet.py`, itself from mapillary/inplace_abn).

Pre-activation ("identity mapping") residual blocks: BN+ReLU first, then two 3×3 convs (mod2..mod5) or a 1×1, 3×3,
1×1 bottleneck (mod6, mod7), with a 1×1 projection shortcut of the pre-activated input where the width or stride
changes. The dilated A2 layout: 3×3 conv `mod1`, max-pool, `mod2` (stride 2, the decoder's skip), max-pool, `mod3`,
`mod4` (first block strided: output stride 8), `mod5` (dilation 2), `mod6`, `mod7` (dilation 4); Dropout2d before
the last conv of mod6 (0.3) and mod7 (0.5). Module names follow the reference (`mod2.block1.bn1.0`, `convs.conv1`,
`proj_conv`), so its checkpoints map one to one; the ImageNet classifier (`bn_out`, `classifier`) is left out, since
the segmentation head reads mod7's output directly, as the reference's `DeepWV3Plus` does.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class WiderResNetBlock(nn.Module):
    """One pre-activation residual block: out = convs(bn1(x)) + shortcut, the shortcut being x or proj_conv(bn1(x))."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], stride: int = 1, dilation: int = 1,
                 dropout: float | None = None):
        super().__init__()
        if len(channels) not in (2, 3):
            raise ValueError(f"channels={channels!r} must hold 2 (two 3×3 convs) or 3 (bottleneck) widths")
        self.bn1 = bn_relu(in_channels)
        if len(channels) == 2:
            layers = [("conv1", nn.Conv2d(in_channels, channels[0], 3, stride=stride, padding=dilation,
                                          dilation=dilation, bias=False)),
                      ("bn2", bn_relu(channels[0])),
                      ("conv2", nn.Conv2d(channels[0], channels[1], 3, padding=dilation, dilation=dilation,
                                          bias=False))]
        else:
            layers = [("conv1", nn.Conv2d(in_channels, channels[0], 1, stride=stride, bias=False)),
                      ("bn2", bn_relu(channels[0])),
                      ("conv2", nn.Conv2d(channels[0], channels[1], 3, padding=dilation, dilation=dilation,
                                          bias=False)),
                      ("bn3", bn_relu(channels[1])),
                      ("conv3", nn.Conv2d(channels[1], channels[2], 1, bias=False))]
        if dropout is not None:  # before the last conv, as the reference (a parameter-free layer: names unchanged)
            layers.insert(len(layers) - 1, ("dropout", nn.Dropout2d(dropout)))
        self.convs = nn.Sequential(OrderedDict(layers))
        if stride != 1 or in_channels != channels[-1]:
            self.proj_conv = nn.Conv2d(in_channels, channels[-1], 1, stride=stride, bias=False)
        else:
            self.proj_conv = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.bn1(x)
        shortcut = x if self.proj_conv is None else self.proj_conv(pre)
        return self.convs(pre) + shortcut


class WiderResNetA2Trunk(nn.Module):
    """mod1..mod7 of the dilated WideResNet-A2 (output stride 8). `forward` returns (skip features of mod2, mod7's
    output, every module's output)."""

    def __init__(self, config):
        super().__init__()
        self.mod1 = nn.Sequential(OrderedDict(conv1=nn.Conv2d(config.num_channels, config.base_width, 3, padding=1,
                                                              bias=False)))
        dropouts = {4: config.mod6_dropout, 5: config.mod7_dropout}
        in_channels = config.base_width
        for index, (depth, channels) in enumerate(zip(config.stage_depths, config.wider_resnet_channels)):
            dilation = 1 if index < 3 else 2 if index == 3 else 4
            blocks = []
            for block in range(depth):
                stride = 2 if index == 2 and block == 0 else 1
                blocks.append((f"block{block + 1}", WiderResNetBlock(in_channels, channels, stride, dilation,
                                                                     dropouts.get(index))))
                in_channels = channels[-1]
            if index < 2:
                self.add_module(f"pool{index + 2}", nn.MaxPool2d(3, stride=2, padding=1))
            self.add_module(f"mod{index + 2}", nn.Sequential(OrderedDict(blocks)))

    def forward(self, x: torch.Tensor):
        stages = [self.mod1(x)]
        stages.append(self.mod2(self.pool2(stages[-1])))
        stages.append(self.mod3(self.pool3(stages[-1])))
        for index in range(4, 8):
            stages.append(getattr(self, f"mod{index}")(stages[-1]))
        return stages[1], stages[-1], stages


__all__ = ["WiderResNetA2Trunk", "WiderResNetBlock", "bn_relu"]
