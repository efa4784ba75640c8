"""Configuration of the relationship detector (Zhang et al., "Graphical Contrastive Losses for Scene Graph Parsing",
arXiv 1903.02728, and its predecessor "An Interpretable Model for Scene Graph Generation", arXiv 1811.09543; reference
NVIDIA/ContrastiveLosses4VRD `lib/modeling_rel/reldn_heads.py`, `model_builder_rel.py`)."""

from transformers import PretrainedConfig

MODES = ("predcls", "sgcls", "sgdet")
MODULES = ("visual", "spatial", "semantic", "subject", "object")
DETECTOR_BACKBONES = ("resnet50_fpn", "tiny")


class ReldnConfig(PretrainedConfig):
    """A relationship head on an entity detector; each module's predicate logits are added (late fusion).

    - `num_object_classes` / `num_predicates`: entity classes and predicates without background (VRD 100 / 70).
      The predicate logits have `num_predicates + 1` columns, column 0 is "no relation" (the reference's `USE_BG`).
    - `object_names` / `predicate_names`: optional vocabularies (pipelines print them).
    - `use_visual`, `use_spatial`, `use_semantic`, `use_subject_object`: the modules that add their logits. The
      visual module needs images and a detector; spatial and semantic need only boxes and labels;
      `use_subject_object` (the S/O heads, RelDN's `ADD_SO_SCORES`) needs the visual features too. The
      language-bias baseline is `use_semantic` alone.
    - `frequency_bias_trainable`: True (RelDN: an `nn.Embedding` initialised from the frequency table and trained);
      False (1811.09543: the fixed table, a parameter that takes no gradient). Either way the table is part of the
      weights, not the config: `model.load_frequency_table(frequency_table(train_triplets, ...))` fills it (zeros,
      i.e. uniform, until then).
    - `feature_dim`: D, the box head's output size (1024 for the reference's FPN heads); the visual MLP maps 3·D to
      1.5·D to D; `spatial_dim` the spatial MLP's width (64); `leaky_relu_slope` 0.1 as the reference.
    - `mode`: "predcls" (GT boxes and labels in), "sgcls" (GT boxes, labels from the detector), "sgdet" (boxes and
      labels from the detector). sgcls / sgdet need `use_visual`-style images and the detector.
    - `overlap_filter`: pair only boxes that overlap (IoU > 0), the reference's `USE_OVLP_FILTER`; off by default
      here because with ground-truth boxes it drops annotated pairs that do not touch.
    - `fg_pairs_per_image` / `pairs_per_image`: training pair sampling (512 foreground of 2048 pairs, as the
      reference's fast_rcnn_rel); the loss sees a random subset when an image has more.
    - `fg_iou_threshold`: a detected pair is foreground when both boxes overlap a ground-truth pair by this IoU.
    - `use_contrastive_losses`: add RelDN's three graphical contrastive losses to the cross entropy;
      `contrastive_margins` / `contrastive_weights`: (class-agnostic, entity-aware, predicate-aware).
    - Detector: `detector_backbone` ("resnet50_fpn", torchvision's Faster R-CNN, or "tiny", a small conv trunk for
      tests), `detector_min_size` / `detector_max_size` (resize), `roi_output_size` (7), `freeze_detector` (True as
      the reference), `detections_per_image`, `detector_score_threshold`.
    """

    model_type = "adlr_reldn"
    keys_to_ignore_at_inference = ["loss_terms"]  # per-batch scalars, not per-example outputs

    def __init__(
        self,
        num_object_classes=100,
        num_predicates=70,
        object_names=None,
        predicate_names=None,
        use_visual=True,
        use_spatial=True,
        use_semantic=True,
        use_subject_object=True,
        frequency_bias_trainable=True,
        feature_dim=1024,
        spatial_dim=64,
        leaky_relu_slope=0.1,
        mode="predcls",
        overlap_filter=False,
        fg_pairs_per_image=512,
        pairs_per_image=2048,
        fg_iou_threshold=0.5,
        use_contrastive_losses=False,
        contrastive_margins=(0.2, 0.2, 0.2),
        contrastive_weights=(1.0, 0.5, 0.1),
        detector_backbone="resnet50_fpn",
        detector_channels=256,
        detector_min_size=800,
        detector_max_size=1333,
        roi_output_size=7,
        freeze_detector=True,
        detections_per_image=100,
        detector_score_threshold=0.05,
        **kwargs,
    ):
        for name, value in (("num_object_classes", num_object_classes), ("num_predicates", num_predicates),
                            ("feature_dim", feature_dim), ("spatial_dim", spatial_dim),
                            ("detector_channels", detector_channels), ("roi_output_size", roi_output_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive int")
        if feature_dim % 2:
            raise ValueError(f"feature_dim={feature_dim} must be even: the visual MLP's middle layer is "
                             "1.5·feature_dim")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}")
        if detector_backbone not in DETECTOR_BACKBONES:
            raise ValueError(f"detector_backbone={detector_backbone!r} is not one of {DETECTOR_BACKBONES}")
        if not (use_visual or use_spatial or use_semantic or use_subject_object):
            raise ValueError("every module is off (use_visual, use_spatial, use_semantic, use_subject_object); "
                             "turn at least one on")
        if use_subject_object and not use_visual:
            raise ValueError("use_subject_object=True needs the visual features: set use_visual=True as well, or "
                             "use_subject_object=False")
        if mode != "predcls" and not use_visual:
            raise ValueError(f"mode={mode!r} takes entity labels (and boxes) from the detector, which runs with the "
                             "visual module: set use_visual=True or mode='predcls'")
        for name, names, size in (("object_names", object_names, num_object_classes),
                                  ("predicate_names", predicate_names, num_predicates)):
            if names is not None and len(names) != size:
                raise ValueError(f"{name} lists {len(names)} names but the config has {size} classes")
        if not 0 < fg_pairs_per_image <= pairs_per_image:
            raise ValueError(f"fg_pairs_per_image={fg_pairs_per_image} must be in (0, pairs_per_image="
                             f"{pairs_per_image}]")
        self.num_object_classes = num_object_classes
        self.num_predicates = num_predicates
        self.object_names = list(object_names) if object_names is not None else None
        self.predicate_names = list(predicate_names) if predicate_names is not None else None
        self.use_visual = use_visual
        self.use_spatial = use_spatial
        self.use_semantic = use_semantic
        self.use_subject_object = use_subject_object
        self.frequency_bias_trainable = frequency_bias_trainable
        self.feature_dim = feature_dim
        self.spatial_dim = spatial_dim
        self.leaky_relu_slope = leaky_relu_slope
        self.mode = mode
        self.overlap_filter = overlap_filter
        self.fg_pairs_per_image = fg_pairs_per_image
        self.pairs_per_image = pairs_per_image
        self.fg_iou_threshold = fg_iou_threshold
        self.use_contrastive_losses = use_contrastive_losses
        self.contrastive_margins = list(contrastive_margins)
        self.contrastive_weights = list(contrastive_weights)
        self.detector_backbone = detector_backbone
        self.detector_channels = detector_channels
        self.detector_min_size = detector_min_size
        self.detector_max_size = detector_max_size
        self.roi_output_size = roi_output_size
        self.freeze_detector = freeze_detector
        self.detections_per_image = detections_per_image
        self.detector_score_threshold = detector_score_threshold
        super().__init__(**kwargs)

    @property
    def num_predicate_logits(self) -> int:
        """Predicates plus the background ("no relation") column 0."""
        return self.num_predicates + 1

    @property
    def enabled_modules(self) -> tuple[str, ...]:
        """The modules whose logits the fused logits add, in `MODULES` order."""
        on = {"visual": self.use_visual, "spatial": self.use_spatial, "semantic": self.use_semantic,
              "subject": self.use_subject_object, "object": self.use_subject_object}
        return tuple(name for name in MODULES if on[name])

    @property
    def base_model_tp_plan(self) -> dict[str, str]:
        """Megatron's column → row pair on each MLP of the head (the visual and the spatial one): the hidden units are
        split, the row-parallel layer all-reduces, so every module's logits are whole on every rank."""
        plan = {}
        if self.use_visual:
            plan.update({"head.visual_mlp.0": "colwise", "head.visual_mlp.2": "rowwise"})
        if self.use_spatial:
            plan.update({"head.spatial_mlp.0": "colwise", "head.spatial_mlp.2": "rowwise"})
        return plan

    def check_tp_size(self, tp_size: int) -> None:
        if isinstance(tp_size, bool) or not isinstance(tp_size, int) or tp_size < 1:
            raise ValueError(f"tp_size={tp_size!r} must be a positive int")
        sizes = {}
        if self.use_visual:
            sizes[f"the visual MLP's hidden size 1.5·feature_dim = {self.feature_dim * 3 // 2}"] = \
                self.feature_dim * 3 // 2
        if self.use_spatial:
            sizes[f"spatial_dim={self.spatial_dim}"] = self.spatial_dim
        for what, size in sizes.items():
            if size % tp_size:
                raise ValueError(f"tp_size={tp_size} does not divide {what}; choose a tp_size that divides it")
