"""Configuration of the PD-ResNet / PD-VGG classifiers (Liu et al., "Partial Convolution based Padding",
arXiv 1811.11718; reference NVIDIA/partialconv `models/pd_resnet.py`, `models/pd_vgg.py`)."""

from transformers import PretrainedConfig

# arch -> (block type, blocks per stage), as torchvision's resnet18 ... resnet152
RESNET_ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
# arch -> conv widths with "M" for a 2×2 max-pool, as torchvision's vgg configurations A, B, D, E
VGG_ARCHS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
PADDING_MODES = ("partial", "zeros", "reflect", "replicate")


class PDResNetConfig(PretrainedConfig):
    """ResNet or VGG image classifier whose padded convolutions use partial-convolution padding (or another mode).

    - `arch`: "resnet18" | "resnet34" | "resnet50" | "resnet101" | "resnet152" | "vgg11" | "vgg13" | "vgg16" | "vgg19".
    - `padding_mode`: "partial" (the paper: every padded conv is a `PartialConv2d`), or "zeros" (torchvision's
      models, bit-identical), "reflect", "replicate" (the paper's padding ablation; plain `nn.Conv2d` padding modes).
    - `batch_norm`: VGG only, BN after every conv ("vgg16_bn"); ResNets always have BN (None picks the default).
    - `num_labels` / `id2label`: classes (default 1000, ImageNet).
    - `base_width`: channels of the first stage (64 in every paper model); other widths scale with it. With `depths`
      (ResNet blocks per stage) and `vgg_hidden_size` it makes small test models with torchvision's parameter names.
    - `classifier_dropout`: dropout between VGG's fully connected layers (0.5 as torchvision).
    - `zero_init_residual`: zero the last BN of every residual block at init (torchvision's option; off by default).
    - `stem`: "imagenet" (torchvision's 7×7/2 conv + 3×3/2 max-pool, every paper model) or "cifar" (a 3×3/1 conv
      and no max-pool, the usual ResNet stem for 32×32 inputs); ResNets only. Same parameter names either way.
    - `image_size` / `resize_size`: the training crop and the evaluation shorter-side resize (224 / 256); hints for
      the image processor and the data pipeline. The model itself takes any input size (adaptive pooling).

    Tensor parallelism (`base_model_tp_plan`, applied by `adlr_hf.parallel.apply_tp_plan`): Megatron's column → row
    pair on channels inside every residual block — bottleneck: `conv2` column-parallel (output channels split),
    `bn2` on the local channels, `conv3` row-parallel (input channels split, all-reduce after); basic block: `conv1`
    column, `bn1` local, `conv2` row. The stem, `conv1`/`bn1` of bottlenecks, the last BN and the downsample stay
    replicated, so every block starts and ends on whole feature maps. VGG pairs consecutive convs the same way
    (column, [BN local], ReLU, [max-pool], row; an odd last conv stays replicated). The heads are in the model class's
    `_tp_plan`: VGG's classifier column → row → row-on-a-split-input, ResNet's `fc` row-on-a-split-input, so any
    number of classes works. `check_tp_size` names what a TP degree does not divide.
    """

    model_type = "adlr_pd_resnet"

    def __init__(
        self,
        arch="resnet50",
        padding_mode="partial",
        batch_norm=None,
        num_channels=3,
        base_width=64,
        depths=None,
        vgg_hidden_size=4096,
        classifier_dropout=0.5,
        zero_init_residual=False,
        stem="imagenet",
        image_size=224,
        resize_size=256,
        **kwargs,
    ):
        if arch not in RESNET_ARCHS and arch not in VGG_ARCHS:
            raise ValueError(f"arch={arch!r} is not supported; choose one of "
                             f"{sorted(RESNET_ARCHS) + sorted(VGG_ARCHS)}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode={padding_mode!r} is not one of {PADDING_MODES}")
        is_vgg = arch in VGG_ARCHS
        if batch_norm is None:
            batch_norm = not is_vgg
        if not is_vgg and not batch_norm:
            raise ValueError(f"batch_norm=False is only possible for VGG; {arch} always has batch norm")
        if depths is not None:
            if is_vgg:
                raise ValueError(f"depths={depths!r} applies to ResNets only; arch={arch!r} is a VGG")
            depths = [int(d) for d in depths]
            if len(depths) != 4 or min(depths) < 1:
                raise ValueError(f"depths={depths!r} must list 4 stages of at least one block each")
        for name, value in (("base_width", base_width), ("num_channels", num_channels),
                            ("vgg_hidden_size", vgg_hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive int")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem={stem!r} is not 'imagenet' (7×7/2 conv + max-pool) or 'cifar' (3×3/1 conv)")
        if is_vgg and stem != "imagenet":
            raise ValueError(f"stem={stem!r} applies to ResNets only; arch={arch!r} is a VGG")
        if kwargs.get("id2label") is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = 1000
        self.arch = arch
        self.padding_mode = padding_mode
        self.batch_norm = bool(batch_norm)
        self.num_channels = num_channels
        self.base_width = base_width
        self.depths = depths
        self.vgg_hidden_size = vgg_hidden_size
        self.classifier_dropout = classifier_dropout
        self.zero_init_residual = zero_init_residual
        self.image_size = image_size
        self.resize_size = resize_size
        self.stem = stem
        super().__init__(**kwargs)

    @property
    def is_vgg(self) -> bool:
        return self.arch in VGG_ARCHS

    @property
    def block_type(self) -> str | None:
        """"basic" or "bottleneck" for ResNets, None for VGG."""
        return None if self.is_vgg else RESNET_ARCHS[self.arch][0]

    @property
    def stage_depths(self) -> list[int]:
        """Blocks per ResNet stage (`depths` if set, else the arch's)."""
        return list(self.depths) if self.depths is not None else list(RESNET_ARCHS[self.arch][1])

    @property
    def vgg_layers(self) -> list:
        """VGG conv widths (scaled by base_width / 64) with "M" for max-pools."""
        return [v if v == "M" else v * self.base_width // 64 for v in VGG_ARCHS[self.arch]]

    @property
    def hidden_size(self) -> int:
        """Channels of the last feature map (the pooled feature size for ResNets)."""
        if self.is_vgg:
            return self.vgg_layers[-2]
        return self.base_width * 8 * (4 if self.block_type == "bottleneck" else 1)

    @property
    def base_model_tp_plan(self) -> dict[str, str]:
        """The backbone's channel-parallel plan (module globs relative to `PDResNetModel`)."""
        if self.is_vgg:
            plan, index, convs = {}, 0, []
            for value in self.vgg_layers:
                if value == "M":
                    index += 1
                    continue
                convs.append(index)
                index += 3 if self.batch_norm else 2
            for pair in range(len(convs) // 2):
                column, row = convs[2 * pair], convs[2 * pair + 1]
                plan[f"features.{column}"] = "conv_colwise"
                if self.batch_norm:
                    plan[f"features.{column + 1}"] = "bn_colwise"
                plan[f"features.{row}"] = "conv_rowwise"
            return plan
        if self.block_type == "bottleneck":
            return {"layer*.*.conv2": "conv_colwise", "layer*.*.bn2": "bn_colwise", "layer*.*.conv3": "conv_rowwise"}
        return {"layer*.*.conv1": "conv_colwise", "layer*.*.bn1": "bn_colwise", "layer*.*.conv2": "conv_rowwise"}

    def check_tp_size(self, tp_size: int) -> None:
        """Every split layer must divide evenly: the channels of the column-parallel convs (and the inputs of the
        row-parallel ones), and the features the heads split."""
        if isinstance(tp_size, bool) or not isinstance(tp_size, int) or tp_size < 1:
            raise ValueError(f"tp_size={tp_size!r} must be a positive int")
        if self.is_vgg:
            widths = [v for v in self.vgg_layers if v != "M"]
            split = {f"VGG conv width {w}": w for w in widths[: len(widths) // 2 * 2]}
            split[f"vgg_hidden_size={self.vgg_hidden_size}"] = self.vgg_hidden_size
        else:
            split = {f"stage {i + 1} width base_width·2^{i} = {self.base_width * 2 ** i}": self.base_width * 2 ** i
                     for i in range(4)}
            split[f"hidden_size={self.hidden_size} (the fc input)"] = self.hidden_size
        for what, size in split.items():
            if size % tp_size:
                raise ValueError(f"tp_size={tp_size} does not divide {what}: the tensor-parallel plan splits those "
                                 "channels; choose a tp_size that divides it (or a base_width that is a multiple of "
                                 "tp_size).")
