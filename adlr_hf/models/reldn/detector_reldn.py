"""The entity detector of the relationship model: torchvision's Faster R-CNN, frozen by default, exposing per-box
features (arXiv 1903.02728 §3 and arXiv 1811.09543's f_det; reference NVIDIA/ContrastiveLosses4VRD
`lib/modeling_rel/model_builder_rel.py`, whose Detectron Faster R-CNN this replaces).

The reference's S_Head / O_Head and the predicate branch's box head are trainable copies of the detector's box head
(`subject_box_head`, `object_box_head`, `union_box_head` of the model); here they read the detector's (frozen) feature
maps. Deviation: the reference's predicate branch also copies the conv body (a second, trainable backbone); this
model shares the detector's backbone, so the union features come from the same feature maps through their own box
head. The detector's RPN and box losses are not computed (the detector is frozen; train it with torchvision first).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, fasterrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign


class TinyTrunk(nn.Sequential):
    """A three-conv trunk (stride 8) for tests and demos: Faster R-CNN's smallest backbone that still runs it all."""

    def __init__(self, channels: int):
        super().__init__(nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.out_channels = channels


def build_faster_rcnn(config) -> FasterRCNN:
    """Faster R-CNN for `config.num_object_classes` classes (+ background), never downloading weights."""
    options = dict(min_size=config.detector_min_size,
                   max_size=config.detector_max_size, box_detections_per_img=config.detections_per_image,
                   box_score_thresh=config.detector_score_threshold)
    if config.detector_backbone == "resnet50_fpn":
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                        num_classes=config.num_object_classes + 1, **options)
        if model.roi_heads.box_head.fc7.out_features != config.feature_dim:
            raise ValueError(f"the ResNet-50-FPN box head gives 1024 features; set feature_dim=1024, not "
                             f"{config.feature_dim}")
        return model
    channels, size = config.detector_channels, config.roi_output_size
    return FasterRCNN(
        TinyTrunk(channels),
        rpn_anchor_generator=AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=size, sampling_ratio=2),
        box_head=TwoMLPHead(channels * size * size, config.feature_dim),
        box_predictor=FastRCNNPredictor(config.feature_dim, config.num_object_classes + 1),
        rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=50, **options)


class ReldnEntityDetector(nn.Module):
    """Wraps a torchvision Faster R-CNN (`self.model`): image features, detections and per-box class logits.

    Always runs the detector's parts in inference mode (its RPN and box heads sample training targets otherwise); with
    `freeze_detector` its parameters take no gradient. The RPN, RoIAlign and box heads run in float32 whatever the
    model's dtype (torchvision's CPU RoIAlign and NMS kernels have no bfloat16; an engine that casts the model to
    bf16 / fp16 changes only the backbone here), and the pooled features come out in float32."""

    def __init__(self, config):
        super().__init__()
        self.model = build_faster_rcnn(config).eval()
        if config.freeze_detector:
            self.model.requires_grad_(False)
        self.frozen = config.freeze_detector

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # RPN / RoI heads in training mode expect detection targets
        return self

    def features(self, images: list[torch.Tensor]):
        """(feature maps by level, the resized batch (an ImageList), scale per image (sy, sx) from input to resized
        pixels)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            image_list, _ = self.model.transform(images)
            maps = self.model.backbone(image_list.tensors)
        if isinstance(maps, torch.Tensor):
            maps = OrderedDict([("0", maps)])
        scales = [torch.tensor([r[0] / i.shape[-2], r[1] / i.shape[-1]], dtype=torch.float32)
                  for r, i in zip(image_list.image_sizes, images)]
        return maps, image_list, scales

    def _float32_heads(self, maps):
        if self.model.roi_heads.box_predictor.cls_score.weight.dtype != torch.float32:
            self.model.rpn.float()
            self.model.roi_heads.float()
        return OrderedDict((k, v.float()) for k, v in maps.items())

    def pool(self, maps, boxes: list[torch.Tensor], image_list) -> torch.Tensor:
        """RoIAlign (float32) of every box (already in resized pixels) on the feature maps: [sum n_i, C, k, k]."""
        maps = self._float32_heads(maps)
        return self.model.roi_heads.box_roi_pool(maps, [b.float() for b in boxes], image_list.image_sizes)

    def class_log_probabilities(self, pooled: torch.Tensor) -> torch.Tensor:
        """log softmax of the detector's class scores over background + classes, background dropped:
        [boxes, num_object_classes] (the reference scores an entity by its softmax including background)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            logits, _ = self.model.roi_heads.box_predictor(self.model.roi_heads.box_head(pooled))
        return logits.log_softmax(-1)[:, 1:]

    def detect(self, maps, image_list) -> list[dict]:
        """Detections per image in resized pixels: {"boxes", "labels" (0-based), "scores"}."""
        maps = self._float32_heads(maps)
        image_list.tensors = image_list.tensors.float()
        with torch.no_grad():
            proposals, _ = self.model.rpn(image_list, maps)
            detections, _ = self.model.roi_heads(maps, proposals, image_list.image_sizes)
        return [{"boxes": d["boxes"], "labels": d["labels"] - 1, "scores": d["scores"]} for d in detections]
