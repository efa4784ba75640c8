"""Configuration of DeepLabV3+ semantic segmentation (Zhu et al., "Improving Semantic Segmentation via Video
Propagation and Label Relaxation", arXiv 1812.01593; reference NVIDIA/semantic-segmentation, branch `sdcnet`,
`network/deepv3.py`, `network/wider_resnet.py`)."""

from transformers import PretrainedConfig

# backbone -> (kind, blocks per stage): torchvision ResNets (stages layer1..layer4) or the WideResNet-A2 (mod2..mod7)
BACKBONES = {
    "resnet50": ("resnet", (3, 4, 6, 3)),
    "resnet101": ("resnet", (3, 4, 23, 3)),
    "wider_resnet38_a2": ("wider_resnet", (3, 3, 6, 3, 1, 1)),
}
# WideResNet-A2 channels of mod2..mod7 at base_width 64 (a 2-tuple: two 3×3 convs; a 3-tuple: 1×1, 3×3, 1×1)
WIDER_RESNET_CHANNELS = ((128, 128), (256, 256), (512, 512), (512, 1024), (512, 1024, 2048), (1024, 2048, 4096))
# CamVid's 11 classes as SegNet names them (stored 11 = unlabelled maps to ignore_index 255)
CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
                  "Bicyclist")
# Cityscapes' 19 evaluated classes (trainIds 0..18)
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")


class DeepLabV3PlusConfig(PretrainedConfig):
    """DeepLabV3+ (ASPP + a low-level skip decoder) on a dilated trunk.

    - `backbone`: "resnet50" / "resnet101" (torchvision's ResNet, dilated with `replace_stride_with_dilation`) or
      "wider_resnet38_a2" (the paper's WideResNet-38-A2, pre-activation blocks; output stride 8 only).
    - `output_stride`: 8 or 16, the trunk's total stride. The ASPP's atrous rates are `aspp_rates` at stride 16 and
      twice them at stride 8 (6, 12, 18 → 12, 24, 36), as the reference's ASPP does.
    - `base_width`: first-stage width (64 in every paper model; other widths scale with it); with `depths` (blocks per
      stage) it makes small models of the same layout for tests.
    - `aspp_channels` (256), `skip_channels` (48: the 1×1 projection of the low-level features: ResNet `layer1`,
      WideResNet `mod2`), `decoder_channels` (256: the two 3×3 decoder convs).
    - `mod6_dropout` / `mod7_dropout`: the WideResNet's Dropout2d before the last 1×1 conv of each mod6 / mod7 block
      (0.3 / 0.5, as the reference); ResNet trunks have no dropout.
    - `num_labels` / `id2label` (CamVid's 11 classes by default), `ignore_index` (255): label value the loss skips.
    - `image_size`: the processor's (square) resize and a hint for training crops; the model takes any size.
    - `wt_bound` (1.0, the reference's): the relaxed-boundary loss weighs a class present in an image by
      1 + wt_bound × (1 - its share of the image's target); 0 leaves the classes unweighted.

    Tensor parallelism (`base_model_tp_plan`): the head's convolutions split their output channels across GPUs and
    gather them (`conv_colwise_gather`): the four ASPP branches, the image-pooling conv, the 1×1 ASPP projection and
    the two 3×3 decoder convs. Their batch norms stay whole, so a multi-GPU run may swap them for SyncBatchNorm. The
    trunk stays replicated.
    """

    model_type = "adlr_deeplabv3plus"

    def __init__(
        self,
        backbone="wider_resnet38_a2",
        output_stride=8,
        num_channels=3,
        base_width=64,
        depths=None,
        aspp_channels=256,
        aspp_rates=(6, 12, 18),
        skip_channels=48,
        decoder_channels=256,
        mod6_dropout=0.3,
        mod7_dropout=0.5,
        ignore_index=255,
        image_size=512,
        wt_bound=1.0,
        **kwargs,
    ):
        if backbone not in BACKBONES:
            raise ValueError(f"backbone={backbone!r} is not supported; choose one of {sorted(BACKBONES)}")
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride={output_stride!r} must be 8 or 16")
        if BACKBONES[backbone][0] == "wider_resnet" and output_stride != 8:
            raise ValueError(f"output_stride={output_stride} is not available for {backbone}: its dilated form has "
                             "output stride 8 (as the reference's); use output_stride=8")
        default_depths = BACKBONES[backbone][1]
        if depths is not None:
            depths = [int(d) for d in depths]
            if len(depths) != len(default_depths) or min(depths) < 1:
                raise ValueError(f"depths={depths!r} must list {len(default_depths)} stages of at least one block "
                                 f"each for {backbone}")
            if BACKBONES[backbone][0] == "resnet":
                raise ValueError(f"depths={depths!r} applies to wider_resnet38_a2 only: torchvision's {backbone} "
                                 "has fixed depths")
        for name, value in (("base_width", base_width), ("num_channels", num_channels),
                            ("aspp_channels", aspp_channels), ("skip_channels", skip_channels),
                            ("decoder_channels", decoder_channels), ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive int")
        if BACKBONES[backbone][0] == "resnet" and base_width != 64:
            raise ValueError(f"base_width={base_width} applies to wider_resnet38_a2 only: torchvision's {backbone} "
                             "has base width 64")
        if base_width % 4:
            raise ValueError(f"base_width={base_width} must be a multiple of 4 (the WideResNet widths scale with it)")
        aspp_rates = [int(r) for r in aspp_rates]
        if len(aspp_rates) != 3 or min(aspp_rates) < 1:
            raise ValueError(f"aspp_rates={aspp_rates!r} must be three positive atrous rates (at output stride 16)")
        for name, value in (("mod6_dropout", mod6_dropout), ("mod7_dropout", mod7_dropout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name}={value!r} must be a probability in [0, 1)")
        if isinstance(wt_bound, bool) or not isinstance(wt_bound, (int, float)) or not wt_bound >= 0:
            raise ValueError(f"wt_bound={wt_bound!r} must be a number >= 0 (the reference's 1.0; 0: unweighted)")
        if not isinstance(ignore_index, int) or ignore_index < 0:
            raise ValueError(f"ignore_index={ignore_index!r} must be a non-negative int (255 by default)")
        if kwargs.get("id2label") is None and kwargs.get("num_labels") is None:
            kwargs["id2label"] = dict(enumerate(CAMVID_CLASSES))
        if kwargs.get("id2label") is not None and kwargs.get("label2id") is None:  # names given alone: the inverse too
            kwargs["label2id"] = {name: int(i) for i, name in kwargs["id2label"].items()}
        self.backbone = backbone
        self.output_stride = output_stride
        self.num_channels = num_channels
        self.base_width = base_width
        self.depths = depths
        self.aspp_channels = aspp_channels
        self.aspp_rates = aspp_rates
        self.skip_channels = skip_channels
        self.decoder_channels = decoder_channels
        self.mod6_dropout = float(mod6_dropout)
        self.mod7_dropout = float(mod7_dropout)
        self.ignore_index = ignore_index
        self.image_size = image_size
        self.wt_bound = float(wt_bound)
        super().__init__(**kwargs)
        if self.ignore_index < self.num_labels:
            raise ValueError(f"ignore_index={self.ignore_index} is a class id (num_labels={self.num_labels}); use a "
                             "value of at least num_labels (255 by default)")

    @property
    def backbone_kind(self) -> str:
        return BACKBONES[self.backbone][0]

    @property
    def stage_depths(self) -> list[int]:
        return list(self.depths) if self.depths is not None else list(BACKBONES[self.backbone][1])

    @property
    def wider_resnet_channels(self) -> list[tuple[int, ...]]:
        """mod2..mod7 channels scaled by base_width / 64."""
        return [tuple(c * self.base_width // 64 for c in stage) for stage in WIDER_RESNET_CHANNELS]

    @property
    def low_level_channels(self) -> int:
        """Channels of the decoder's skip input: ResNet `layer1` (256), WideResNet `mod2` (128·base_width/64)."""
        return 256 if self.backbone_kind == "resnet" else self.wider_resnet_channels[0][-1]

    @property
    def trunk_channels(self) -> int:
        """Channels the ASPP reads: ResNet `layer4` (2048), WideResNet `mod7` (4096·base_width/64)."""
        return 2048 if self.backbone_kind == "resnet" else self.wider_resnet_channels[-1][-1]

    @property
    def atrous_rates(self) -> list[int]:
        """The ASPP's dilations at this output stride."""
        return [r * (16 // self.output_stride) for r in self.aspp_rates]

    @property
    def hidden_size(self) -> int:
        """Channels of the decoder's output (the base model's `last_hidden_state`)."""
        return self.decoder_channels

    @property
    def base_model_tp_plan(self) -> dict[str, str]:
        """Output-channel split with gather on the head's convolutions (globs relative to `DeepLabV3PlusModel`)."""
        return {"aspp.features.*.0": "conv_colwise_gather", "aspp.img_conv.0": "conv_colwise_gather",
                "bot_aspp": "conv_colwise_gather", "decoder.0": "conv_colwise_gather",
                "decoder.3": "conv_colwise_gather"}

    def check_tp_size(self, tp_size: int) -> None:
        """The split output channels (aspp_channels, decoder_channels) must divide by the TP degree."""
        if isinstance(tp_size, bool) or not isinstance(tp_size, int) or tp_size < 1:
            raise ValueError(f"tp_size={tp_size!r} must be a positive int")
        for name in ("aspp_channels", "decoder_channels"):
            if getattr(self, name) % tp_size:
                raise ValueError(f"tp_size={tp_size} does not divide {name}={getattr(self, name)}: the tensor-parallel "
                                 f"plan splits those channels; choose a tp_size that divides it")


__all__ = ["BACKBONES", "CAMVID_CLASSES", "CITYSCAPES_CLASSES", "DeepLabV3PlusConfig", "WIDER_RESNET_CHANNELS"]
