"""The interpretable late-fusion relationship detector and RelDN as a transformers model.

Papers: Zhang et al., "An Interpretable Model for Scene Graph Generation", arXiv 1811.09543 (the OpenImages VRD
challenge winner: semantic + spatial + visual modules whose logits are added), and Zhang et al., "Graphical
Contrastive Losses for Scene Graph Parsing" (RelDN), arXiv 1903.02728. Reference: NVIDIA/ContrastiveLosses4VRD
(`lib/modeling_rel/reldn_heads.py`, `model_builder_rel.py`, `sparse_targets_rel.py`, `roi_data_rel/fast_rcnn_rel.py`).

Every pair of boxes of an image gets predicate logits (column 0 = "no relation") from each module that is on:

    visual   MLP on [subject ‖ union ‖ object] box features (3·D → 1.5·D → D, LeakyReLU 0.1) → Linear(D, P)
    subject  Linear(D, P) on the subject's box feature (RelDN's S head)
    object   Linear(D, P) on the object's box feature (RelDN's O head)
    spatial  MLP on the 28-d box-pair feature (28 → 64 → 64, LeakyReLU 0.1) → Linear(64, P)
    semantic log P(predicate | subject class, object class) from the training triplets (trainable or fixed)

and the fused logits are their sum, so each prediction splits into the modules' contributions
(`return_contributions=True`).

Batches are padded: `boxes` [B, n, 4] with `box_labels` [B, n] = -1 on padding rows (lists of per-image tensors are
padded here). The pairs of an image are all ordered pairs (i, j), i ≠ j, of its n box slots, in the fixed order of
`ordered_pairs(n)`; slots with a padding box (or filtered out) are False in `pair_mask`. An image without boxes
therefore has no pairs: it contributes nothing to the loss and no prediction (documented skip, no error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from .boxes_reldn import SPATIAL_FEATURE_DIM, spatial_features, union_boxes
from .configuration_reldn import MODULES, ReldnConfig
from .detector_reldn import ReldnEntityDetector
from .losses_reldn import graphical_contrastive_losses

try:  # one class object per process with adlr_hf installed; a published folder's copy otherwise
    from adlr_hf.models.shared.modeling_adlr import AdlrPreTrainedModel
except ImportError:  # pragma: no cover - a remote-code copy: the published folder carries modeling_adlr.py
    from .modeling_adlr import AdlrPreTrainedModel


@dataclass
class RelationshipDetectionOutput(ModelOutput):
    """Per-pair outputs on the padded pair grid (S = n·(n - 1) slots for n box slots per image).

    - `loss`: cross entropy of the fused logits on the sampled pairs (+ the weighted contrastive losses).
    - `predicate_logits` [B, S, 1 + num_predicates]: fused logits, column 0 "no relation" (0 on empty slots).
    - `pair_index` [B, S, 2]: (subject, object) box index of each slot, -1 on empty slots.
    - `pair_mask` [B, S]: True where the slot is a real pair.
    - `subject_logits` / `object_logits` [B, S, num_object_classes]: the entities' class log-probabilities (the
      detector's softmax over background + classes, background column dropped, in sgcls / sgdet; in predcls 0 at the
      given label and the dtype's minimum elsewhere); `exp` gives the entity score of the triplet score.
    - `boxes` [B, n, 4]: the boxes the pairs index (the given ones; the detections in sgdet), xyxy input pixels.
    - `hidden_states`: the MLPs' last hidden layers ([B, S, spatial_dim], then [B, S, feature_dim]).
    - `contributions`: module name -> [B, S, 1 + num_predicates] logits, summing to `predicate_logits`.
    - `loss_terms`: the unweighted loss terms ("cross_entropy", and the six contrastive ones when on).
    """

    loss: torch.Tensor | None = None
    predicate_logits: torch.Tensor | None = None
    pair_index: torch.Tensor | None = None
    pair_mask: torch.Tensor | None = None
    subject_logits: torch.Tensor | None = None
    object_logits: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    contributions: dict | None = None
    loss_terms: dict | None = None


_CLASSIFY = -2  # an sgdet box whose class the detector's classifier gives (ground truth added in training)


def ordered_pairs(n: int, device=None) -> torch.Tensor:
    """All ordered pairs (i, j), i ≠ j, of n boxes, row-major: [n·(n - 1), 2]."""
    first, second = torch.meshgrid(torch.arange(n, device=device), torch.arange(n, device=device), indexing="ij")
    keep = first != second
    return torch.stack([first[keep], second[keep]], dim=1)


def batched_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of a [B, n, 4] with every box of b [B, m, 4]: [B, n, m] (xyxy; 0 for empty boxes)."""
    lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a[:, :, None] + area_b[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def pad_per_image(values, fill, dtype, width=None, device=None) -> torch.Tensor:
    """A list of per-image tensors [k_i, ...] as one [B, max k_i, ...] tensor filled with `fill`; a tensor as is."""
    if isinstance(values, torch.Tensor):
        return values.to(dtype=dtype, device=device)
    values = [torch.as_tensor(v, dtype=dtype, device=device) for v in values]
    longest = max((len(v) for v in values), default=0)
    tail = values[0].shape[1:] if values and values[0].dim() > 1 else (() if width is None else (width,))
    out = torch.full((len(values), longest, *tail), fill, dtype=dtype, device=device)
    for row, value in enumerate(values):
        if len(value):
            out[row, :len(value)] = value.reshape(len(value), *tail)
    return out


class ReldnBoxHead(nn.Module):
    """The relation branches' box head: fc6 + ReLU, then fc7 taken before its ReLU (the reference's
    `NO_FC7_RELU`, on in every shipped config); parameter names as torchvision's `TwoMLPHead` so the detector's box
    head loads into it."""

    def __init__(self, in_features: int, dim: int):
        super().__init__()
        self.fc6 = nn.Linear(in_features, dim)
        self.fc7 = nn.Linear(dim, dim)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc7(F.relu(self.fc6(pooled.flatten(1))))


class ReldnHead(nn.Module):
    """The predicate modules: each gives logits [.., 1 + num_predicates]; their sum is the fused logit."""

    def __init__(self, config: ReldnConfig):
        super().__init__()
        dim, classes, slope = config.feature_dim, config.num_predicate_logits, config.leaky_relu_slope
        if config.use_visual:
            self.visual_mlp = nn.Sequential(nn.Linear(3 * dim, dim * 3 // 2), nn.LeakyReLU(slope),
                                            nn.Linear(dim * 3 // 2, dim), nn.LeakyReLU(slope))
            self.visual_scores = nn.Linear(dim, classes)
        if config.use_subject_object:
            self.subject_scores = nn.Linear(dim, classes)
            self.object_scores = nn.Linear(dim, classes)
        if config.use_spatial:
            width = config.spatial_dim
            self.spatial_mlp = nn.Sequential(nn.Linear(SPATIAL_FEATURE_DIM, width), nn.LeakyReLU(slope),
                                             nn.Linear(width, width), nn.LeakyReLU(slope))
            self.spatial_scores = nn.Linear(width, classes)
        if config.use_semantic:
            table = config.num_object_classes ** 2
            if config.frequency_bias_trainable:  # RelDN: a plain embedding, initialised from the table, trained
                self.semantic = nn.Embedding(table, classes)
            else:  # 1811.09543: the fixed empirical table (a frozen parameter: saved, loaded and placed as one)
                self.frequency_logits = nn.Parameter(torch.zeros(table, classes), requires_grad=False)
        self.num_object_classes = config.num_object_classes

    def semantic_logits(self, subject_labels: torch.Tensor, object_labels: torch.Tensor) -> torch.Tensor:
        index = subject_labels.clamp(min=0) * self.num_object_classes + object_labels.clamp(min=0)
        if hasattr(self, "semantic"):
            return self.semantic(index)
        return self.frequency_logits[index]

    def forward(self, *, spatial=None, subject_labels=None, object_labels=None, subject_features=None,
                object_features=None, union_features=None):
        """(module name -> logits, hidden states) for the modules that are on."""
        logits, hidden = {}, []
        if hasattr(self, "visual_mlp"):
            visual = self.visual_mlp(torch.cat([subject_features, union_features, object_features], dim=-1))
            logits["visual"] = self.visual_scores(visual)
        if hasattr(self, "spatial_mlp"):
            spatial_hidden = self.spatial_mlp(spatial)
            logits["spatial"] = self.spatial_scores(spatial_hidden)
            hidden.append(spatial_hidden)
        if hasattr(self, "visual_mlp"):
            hidden.append(visual)
        if hasattr(self, "semantic") or hasattr(self, "frequency_logits"):
            logits["semantic"] = self.semantic_logits(subject_labels, object_labels)
        if hasattr(self, "subject_scores"):
            logits["subject"] = self.subject_scores(subject_features)
            logits["object"] = self.object_scores(object_features)
        return {name: logits[name] for name in MODULES if name in logits}, tuple(hidden)


class ReldnPreTrainedModel(AdlrPreTrainedModel):
    config_class = ReldnConfig
    base_model_prefix = "reldn"
    main_input_name = "boxes"
    _no_split_modules = ["ReldnHead", "ReldnEntityDetector"]
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        # The reference's XavierFill (Caffe2: uniform ±sqrt(3 / fan_in)) and zero biases for the head's linears.
        if isinstance(module, nn.Linear):
            bound = math.sqrt(3.0 / module.in_features)
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.zeros_(module.weight)  # uniform over predicates until load_frequency_table fills it
        elif isinstance(module, ReldnHead) and hasattr(module, "frequency_logits"):
            init.zeros_(module.frequency_logits)


class ReldnForRelationshipDetection(ReldnPreTrainedModel):
    """Relationship detection on an image's boxes: predcls (boxes + labels given), sgcls (boxes given), sgdet.

    Inputs: `boxes` [B, n, 4] xyxy pixels (or a list of [n_i, 4]), `box_labels` [B, n] 0-based classes (-1 padding;
    required in predcls), `image_sizes` [B, 2] (height, width) (taken from `pixel_values` when omitted),
    `pixel_values` (list of [3, H_i, W_i] in [0, 1], or [B, 3, H, W] cropped to `image_sizes`) for the visual module,
    and for training `labels` (alias `relations`): [B, r, 3] (subject index, object index, predicate id 0-based;
    -1 rows are padding) or a list of [r_i, 3]. In sgdet `boxes` / `box_labels` are the ground truth the detections
    are matched to (training only).
    """

    def __init__(self, config: ReldnConfig):
        super().__init__(config)
        self.detector = ReldnEntityDetector(config) if config.use_visual else None
        if self.detector is not None:  # trainable copies of the detector's box head (S, O and union branches)
            box_head = self.detector.model.roi_heads.box_head
            in_features = box_head.fc6.in_features
            self.subject_box_head = ReldnBoxHead(in_features, config.feature_dim)
            self.object_box_head = ReldnBoxHead(in_features, config.feature_dim)
            self.union_box_head = ReldnBoxHead(in_features, config.feature_dim)
        self.head = ReldnHead(config)
        self.post_init()

    # -- weights from elsewhere -------------------------------------------------------------------------------------
    def load_frequency_table(self, table: torch.Tensor) -> None:
        """Fill the semantic module with a frequency table [O, O, 1 + P] (or [O·O, 1 + P]) from `frequency_table`."""
        head, config = self.head, self.config
        target = head.semantic.weight if hasattr(head, "semantic") else getattr(head, "frequency_logits", None)
        if target is None:
            raise ValueError("this model has no semantic module (use_semantic=False); there is no table to load")
        table = torch.as_tensor(table, dtype=target.dtype)
        expected = (config.num_object_classes ** 2, config.num_predicate_logits)
        if table.numel() != expected[0] * expected[1]:
            raise ValueError(f"the frequency table has shape {tuple(table.shape)}; expected "
                             f"({config.num_object_classes}, {config.num_object_classes}, {expected[1]})")
        with torch.no_grad():
            target.copy_(table.reshape(expected))

    def load_detector_state_dict(self, state_dict: dict) -> None:
        """Load a torchvision Faster R-CNN state dict into the detector and copy its box head into the subject,
        object and union box heads (as the reference initialises S_Head, O_Head and the predicate branch)."""
        if self.detector is None:
            raise ValueError("this model has no detector (use_visual=False); build it with use_visual=True")
        self.detector.model.load_state_dict(state_dict)
        box_head = self.detector.model.roi_heads.box_head.state_dict()
        for head in (self.subject_box_head, self.object_box_head, self.union_box_head):
            head.load_state_dict(box_head)

    # -- inputs -----------------------------------------------------------------------------------------------------
    def _check_boxes(self, boxes: torch.Tensor, labels: torch.Tensor | None) -> None:
        if boxes.dim() != 3 or boxes.shape[-1] != 4:
            raise ValueError(f"boxes has shape {tuple(boxes.shape)}; expected [batch, boxes, 4] xyxy (or a list of "
                             "[boxes, 4])")
        if labels is not None and labels.shape != boxes.shape[:2]:
            raise ValueError(f"box_labels has shape {tuple(labels.shape)} for boxes of shape {tuple(boxes.shape)}; "
                             "give one class per box (-1 on padding rows)")
        valid = labels >= 0 if labels is not None else torch.ones(boxes.shape[:2], dtype=torch.bool,
                                                                   device=boxes.device)
        bad = valid & ((boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1]))
        if bad.any():
            b, i = bad.nonzero()[0].tolist()
            raise ValueError(f"box {i} of image {b} is {boxes[b, i].tolist()}: x2 < x1 or y2 < y1. Boxes are xyxy "
                             "pixels (VRD files store [ymin, ymax, xmin, xmax]; convert them first)")
        if labels is not None:
            high = labels >= self.config.num_object_classes
            if high.any():
                b, i = high.nonzero()[0].tolist()
                raise ValueError(f"box {i} of image {b} has class {labels[b, i].item()}, beyond the "
                                 f"{self.config.num_object_classes} object classes (0-based ids; -1 marks padding)")

    def _images(self, pixel_values, image_sizes):
        """The images as a list of [3, h, w] tensors, cropped to their sizes."""
        if pixel_values is None:
            return None
        if isinstance(pixel_values, torch.Tensor) and pixel_values.dim() == 3:
            pixel_values = pixel_values[None]
        images = [image.to(self.dtype) for image in pixel_values]  # bf16 / fp16 engines cast the weights only
        if image_sizes is not None and isinstance(pixel_values, torch.Tensor):
            images = [image[:, :int(h), :int(w)] for image, (h, w) in zip(images, image_sizes.tolist())]
        return images

    def _visual_features(self, images, boxes, pairs):
        """(entity class logits [B, n, O], subject, object [B, n, D] and union features [B, S, D]) of the boxes."""
        maps, image_list, scales = self.detector.features(images)
        batch, n = boxes.shape[:2]
        scaled = [boxes[b] * scales[b].flip(0).repeat(2).to(boxes) for b in range(batch)]
        union = [union_boxes(s[pairs[:, 0]], s[pairs[:, 1]]) for s in scaled]
        pooled = self.detector.pool(maps, scaled, image_list)  # float32
        dim = self.config.feature_dim  # explicit sizes: a batch may have no boxes at all (sgdet found nothing)
        class_logits = self.detector.class_log_probabilities(pooled).view(batch, n, self.config.num_object_classes)
        pooled = pooled.to(self.dtype)
        subject = self.subject_box_head(pooled).view(batch, n, dim)
        object_ = self.object_box_head(pooled).view(batch, n, dim)
        union_pooled = self.detector.pool(maps, union, image_list).to(self.dtype)
        union_features = self.union_box_head(union_pooled).view(batch, len(pairs), dim)
        return class_logits, subject, object_, union_features

    def _detect(self, images):
        """Detected boxes [B, n, 4] (input pixels) and their labels [B, n] (-1 padding)."""
        maps, image_list, scales = self.detector.features(images)
        detections = self.detector.detect(maps, image_list)
        boxes = [d["boxes"].float() / scales[b].flip(0).repeat(2).to(d["boxes"].device) for b, d in
                 enumerate(detections)]
        return pad_per_image(boxes, 0.0, torch.float32), pad_per_image([d["labels"] for d in detections], -1,
                                                                       torch.long)

    @staticmethod
    def _with_ground_truth(boxes, entity, gt_boxes, gt_labels):
        """Detections followed by the image's ground-truth boxes (sgdet training: the reference's Detectron adds the
        ground truth to the proposals, so every annotated pair is among the candidates). The added boxes are marked
        for the detector's classifier to label."""
        gt_valid = gt_labels >= 0 if gt_labels is not None else torch.ones(gt_boxes.shape[:2], dtype=torch.bool,
                                                                           device=gt_boxes.device)
        merged_boxes, merged_entity = [], []
        for b in range(len(boxes)):
            detected = entity[b] >= 0
            merged_boxes.append(torch.cat([boxes[b][detected], gt_boxes[b][gt_valid[b]]]))
            merged_entity.append(torch.cat([entity[b][detected],
                                            torch.full((int(gt_valid[b].sum()),), _CLASSIFY, device=entity.device)]))
        return (pad_per_image(merged_boxes, 0.0, torch.float32, width=4, device=boxes.device),
                pad_per_image(merged_entity, -1, torch.long, device=boxes.device))

    # -- targets ----------------------------------------------------------------------------------------------------
    def _pair_targets(self, boxes, pairs, pair_mask, gt_boxes, relations):
        """Per-slot predicate column: that of the ground-truth relation the pair overlaps best, by min(IoU subject,
        IoU object) as the reference's pair sampling (ties: the first listed relation), when that overlap reaches
        `fg_iou_threshold`; else 0 ("no relation")."""
        batch, slots = pair_mask.shape
        if relations.numel() == 0 or slots == 0:
            return torch.zeros(batch, slots, dtype=torch.long, device=boxes.device)
        present = relations[..., 0] >= 0
        index = relations.clamp(min=0)
        subject_gt = torch.gather(gt_boxes, 1, index[..., 0:1].expand(-1, -1, 4))
        object_gt = torch.gather(gt_boxes, 1, index[..., 1:2].expand(-1, -1, 4))
        overlap = torch.minimum(batched_iou(boxes, subject_gt)[:, pairs[:, 0]],
                                batched_iou(boxes, object_gt)[:, pairs[:, 1]])  # [B, S, r]
        overlap = overlap.masked_fill(~present[:, None, :], -1.0)
        best, which = overlap.amax(-1), overlap.argmax(-1)  # argmax: the first of tied maxima
        predicate = torch.gather(relations[..., 2], 1, which) + 1
        fg = pair_mask & (best >= self.config.fg_iou_threshold)
        return torch.where(fg, predicate, torch.zeros_like(predicate))

    def _sample_for_loss(self, targets, pair_mask):
        """The reference's per-image pair sample: at most `fg_pairs_per_image` foreground pairs and
        `pairs_per_image` in all (random subsets when an image has more; all pairs otherwise)."""
        config, chosen = self.config, pair_mask.clone()
        if not self.training:
            return chosen
        for b in range(pair_mask.shape[0]):
            fg = (pair_mask[b] & (targets[b] > 0)).nonzero().flatten()
            bg = (pair_mask[b] & (targets[b] == 0)).nonzero().flatten()
            if len(fg) > config.fg_pairs_per_image:
                drop = fg[torch.randperm(len(fg), device=fg.device)[config.fg_pairs_per_image:]]
                chosen[b, drop] = False
            kept_fg = min(len(fg), config.fg_pairs_per_image)
            if len(bg) > config.pairs_per_image - kept_fg:
                drop = bg[torch.randperm(len(bg), device=bg.device)[config.pairs_per_image - kept_fg:]]
                chosen[b, drop] = False
        return chosen

    def _contrastive(self, logits, pairs, pair_mask, targets, entity_labels):
        config = self.config
        rows = [pair_mask[b].nonzero().flatten() for b in range(len(pair_mask))]
        return graphical_contrastive_losses(
            torch.cat([logits[b, r] for b, r in enumerate(rows)]), [pairs[r] for r in rows],
            [targets[b, r] for b, r in enumerate(rows)], list(entity_labels),
            margins=tuple(config.contrastive_margins), weights=tuple(config.contrastive_weights))

    # -- forward ----------------------------------------------------------------------------------------------------
    def forward(self, boxes=None, box_labels=None, image_sizes=None, pixel_values=None, labels=None, relations=None,
                return_contributions: bool = False, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        _, output_hidden_states, return_dict = self.output_options(output_attentions, output_hidden_states,
                                                                   return_dict)
        config = self.config
        relations = labels if labels is not None else relations
        device = next(self.parameters()).device
        if image_sizes is None and pixel_values is not None:
            image_sizes = [tuple(image.shape[-2:]) for image in pixel_values]
        if image_sizes is not None:
            image_sizes = torch.as_tensor(image_sizes, dtype=torch.float32, device=device).reshape(-1, 2)
        images = self._images(pixel_values, image_sizes)
        if config.use_visual and images is None:
            raise ValueError("the visual module (use_visual=True) needs pixel_values; pass the images, or use a "
                             "model built with use_visual=False (spatial + semantic modules need only boxes)")
        gt_boxes = pad_per_image(boxes, 0.0, torch.float32, width=4, device=device) if boxes is not None else None
        gt_labels = None
        if box_labels is not None:
            gt_labels = pad_per_image(box_labels, -1, torch.long, device=device)
        elif gt_boxes is not None and not isinstance(boxes, torch.Tensor):  # a list: rows beyond each n_i are padding
            gt_labels = pad_per_image([torch.zeros(len(b), dtype=torch.long) for b in boxes], -1, torch.long,
                                      device=device)
        if gt_boxes is not None:
            self._check_boxes(gt_boxes, gt_labels)

        if config.mode == "sgdet":
            pair_boxes, entity = self._detect(images)
            pair_boxes, entity = pair_boxes.to(device), entity.to(device)
            if self.training and gt_boxes is not None:
                pair_boxes, entity = self._with_ground_truth(pair_boxes, entity, gt_boxes, gt_labels)
            box_valid = entity != -1
        else:
            if gt_boxes is None:
                raise ValueError(f"mode={config.mode!r} takes the boxes as input: pass boxes (xyxy pixels)")
            if config.mode == "predcls" and gt_labels is None:
                raise ValueError("mode='predcls' takes the boxes' classes: pass box_labels (0-based; -1 padding)")
            pair_boxes = gt_boxes
            box_valid = gt_labels >= 0 if gt_labels is not None else torch.ones(gt_boxes.shape[:2], dtype=torch.bool,
                                                                               device=gt_boxes.device)
        if image_sizes is None:
            if config.use_spatial:
                raise ValueError("the spatial module needs each image's size: pass image_sizes [(height, width)] "
                                 "(or pixel_values)")
            image_sizes = torch.ones(len(pair_boxes), 2, device=pair_boxes.device)
        batch, n = pair_boxes.shape[:2]
        pairs = ordered_pairs(n, device=pair_boxes.device)
        pair_mask = box_valid[:, pairs[:, 0]] & box_valid[:, pairs[:, 1]]
        if config.overlap_filter and len(pairs):
            iou = batched_iou(pair_boxes, pair_boxes)
            pair_mask &= iou[:, pairs[:, 0], pairs[:, 1]] > 0

        subject_features = object_features = union_features = None
        if config.use_visual:
            entity_logits, subject_box, object_box, union_features = self._visual_features(images, pair_boxes, pairs)
            subject_features, object_features = subject_box[:, pairs[:, 0]], object_box[:, pairs[:, 1]]
        if config.mode == "predcls":
            entity = gt_labels
            entity_logits = torch.full((batch, n, config.num_object_classes), torch.finfo(torch.float32).min,
                                       device=pair_boxes.device)
            entity_logits.scatter_(2, entity.clamp(min=0)[..., None], 0.0)
        elif config.mode == "sgcls":
            entity = entity_logits.argmax(-1).masked_fill(~box_valid, -1)
        else:  # the detector's labels; ground-truth boxes added in training take the classifier's
            entity = torch.where(entity == _CLASSIFY, entity_logits.argmax(-1), entity).masked_fill(~box_valid, -1)
        entity_logits = entity_logits.masked_fill(~box_valid[..., None], 0.0)

        spatial = None
        if config.use_spatial:
            spatial = spatial_features(pair_boxes[:, pairs[:, 0]], pair_boxes[:, pairs[:, 1]],
                                       image_sizes[:, None, :]).to(self.dtype)
        contributions, hidden = self.head(spatial=spatial, subject_labels=entity[:, pairs[:, 0]],
                                          object_labels=entity[:, pairs[:, 1]], subject_features=subject_features,
                                          object_features=object_features, union_features=union_features)
        fused = None
        for value in contributions.values():  # late fusion: the sum of the modules' logits
            fused = value if fused is None else fused + value
        keep = pair_mask[..., None]
        fused = fused.masked_fill(~keep, 0.0)
        contributions = {k: v.masked_fill(~keep, 0.0) for k, v in contributions.items()}

        loss = loss_terms = None
        if relations is not None:
            if gt_boxes is None:
                raise ValueError("training targets (labels / relations) need the ground-truth boxes they index")
            relations = pad_per_image(relations, -1, torch.long, width=3, device=pair_boxes.device)
            if relations.dim() != 3 or relations.shape[-1] != 3:
                raise ValueError(f"relations have shape {tuple(relations.shape)}; expected [batch, r, 3] (subject "
                                 "index, object index, predicate id) or a list of [r, 3]")
            present = relations[..., 0] >= 0
            beyond = (relations[..., 2] >= config.num_predicates) | (relations[..., :2].amax(-1) >= gt_boxes.shape[1])
            if gt_labels is not None and not beyond[present].any():  # a relation on a padding box (label -1)
                real = gt_labels >= 0
                index = relations[..., :2].clamp(min=0, max=gt_boxes.shape[1] - 1)
                beyond |= ~(torch.gather(real, 1, index[..., 0]) & torch.gather(real, 1, index[..., 1]))
            if (present & beyond).any():
                raise ValueError(f"a relation names a predicate beyond the {config.num_predicates} predicates or a "
                                 "box index beyond the image's boxes (0-based ids; -1 rows are padding)")
            targets = self._pair_targets(pair_boxes, pairs, pair_mask, gt_boxes, relations)
            chosen = self._sample_for_loss(targets, pair_mask)
            if chosen.any():
                ce = F.cross_entropy(fused[chosen].float(), targets[chosen])
            else:  # no image has two boxes: nothing to learn from this batch
                ce = fused.sum() * 0.0
            loss, loss_terms = ce, {"cross_entropy": ce.detach()}
            if config.use_contrastive_losses:
                if config.mode == "sgdet" and gt_labels is None:
                    raise ValueError("sgdet training with the contrastive losses matches detections to the ground "
                                     "truth's classes: pass box_labels with the boxes")
                if config.mode == "sgdet":  # entities matching no ground-truth box take no part (class -1)
                    iou = batched_iou(pair_boxes, gt_boxes).masked_fill(~(gt_labels >= 0)[:, None, :], -1.0)
                    best, which = iou.max(-1)
                    matched = torch.gather(gt_labels, 1, which).masked_fill(best < config.fg_iou_threshold, -1)
                else:
                    matched = gt_labels if gt_labels is not None else entity
                contrastive = self._contrastive(fused, pairs, pair_mask, targets, matched.masked_fill(~box_valid, -1))
                loss = loss + contrastive.loss
                loss_terms.update({k: v.detach() for k, v in contrastive.terms.items()})

        pair_index = pairs[None].expand(batch, -1, -1).masked_fill(~pair_mask[..., None], -1)
        out = RelationshipDetectionOutput(
            loss=loss, predicate_logits=fused, pair_index=pair_index, pair_mask=pair_mask,
            subject_logits=entity_logits[:, pairs[:, 0]], object_logits=entity_logits[:, pairs[:, 1]],
            boxes=pair_boxes, hidden_states=tuple(h.masked_fill(~keep, 0.0) for h in hidden)
            if output_hidden_states else None,
            contributions=contributions if return_contributions else None, loss_terms=loss_terms)
        return out if return_dict else out.to_tuple()


__all__ = ["RelationshipDetectionOutput", "ReldnBoxHead", "ReldnForRelationshipDetection", "ReldnHead",
           "ReldnPreTrainedModel", "batched_iou", "ordered_pairs", "pad_per_image"]
