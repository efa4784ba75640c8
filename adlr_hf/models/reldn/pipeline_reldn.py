"""The `relationship-detection` pipeline: an image (and, for predcls / sgcls models, its boxes) in, ranked
(subject, predicate, object) triplets out, each with the modules' logit contributions that explain it.

Papers: arXiv 1811.09543 (the interpretable late-fusion model), arXiv 1903.02728 (RelDN); reference
NVIDIA/ContrastiveLosses4VRD (`lib/core/test_rel.py`: triplet score = subject score · object score · predicate
probability, top predicates per pair, top triplets per image).

    detect = pipeline("relationship-detection", model="reldn-folder", trust_remote_code=True)
    detect("street.jpg", boxes=[[x1, y1, x2, y2], ...], labels=[3, 7, ...], top_k=20)

Each result: {"subject", "predicate", "object", "score", "subject_box", "object_box", "contributions"} where
`contributions` maps each module (visual, spatial, semantic, subject, object) to its logit for that predicate; they
add up to the fused logit whose softmax over the predicates (and "no relation") gives the predicate probability.
One image per call (a list of images runs one by one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import Pipeline


def _image_array(image) -> np.ndarray:
    """(H, W, 3) uint8 from a path, a PIL image or an array."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise ValueError(f"image {str(image)!r} is not a file")
        image = Image.open(image)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"the image has shape {array.shape}; expected (height, width, 3) RGB")
    return array


class RelationshipDetectionPipeline(Pipeline):
    """`pipeline("relationship-detection")`; see the module docstring."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, boxes=None, labels=None, top_k=None, predicates_per_pair=None, **kwargs):
        if kwargs:
            raise ValueError(f"unknown options {sorted(kwargs)}; relationship-detection takes boxes, labels, top_k "
                             "and predicates_per_pair")
        post = {}
        for name, value in (("top_k", top_k), ("predicates_per_pair", predicates_per_pair)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name}={value!r} must be an integer >= 1")
                post[name] = value
        return {"boxes": boxes, "labels": labels}, {}, post

    def preprocess(self, image, boxes=None, labels=None):
        config = self.model.config
        array = _image_array(image)
        height, width = array.shape[:2]
        inputs = {"image_sizes": torch.tensor([[height, width]])}
        if config.use_visual:
            inputs["pixel_values"] = [torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0]
        if config.mode != "sgdet":
            if boxes is None:
                raise ValueError(f"a {config.mode} model classifies the relations of given boxes: pass boxes=[[x1, y1, "
                                 "x2, y2], ...] (pixels)")
            boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
            outside = (boxes[:, :2] < 0).any(1) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
            if outside.any():
                raise ValueError(f"box {int(outside.nonzero()[0])} {boxes[outside][0].tolist()} lies outside the "
                                 f"{width}×{height} image; boxes are xyxy pixels")
            inputs["boxes"] = boxes[None]
            if config.mode == "predcls":
                if labels is None:
                    raise ValueError("a predcls model takes the boxes' classes: pass labels=[class id, ...]")
                inputs["box_labels"] = torch.as_tensor(labels, dtype=torch.long).reshape(1, -1)
                if inputs["box_labels"].shape[1] != len(boxes):
                    raise ValueError(f"{inputs['box_labels'].shape[1]} labels for {len(boxes)} boxes")
        return inputs

    def _forward(self, model_inputs):
        return self.model(**model_inputs, return_contributions=True)

    def postprocess(self, outputs, top_k: int = 100, predicates_per_pair: int = 1):
        config = self.model.config
        objects = config.object_names or [f"object_{i}" for i in range(config.num_object_classes)]
        predicates = config.predicate_names or [f"predicate_{i}" for i in range(config.num_predicates)]
        mask = outputs["pair_mask"][0]
        slots = mask.nonzero().flatten()
        if len(slots) == 0:
            return []
        probabilities = outputs["predicate_logits"][0, slots].float().softmax(-1)[:, 1:]
        subject_probs = outputs["subject_logits"][0, slots].float().exp()  # log-probabilities
        object_probs = outputs["object_logits"][0, slots].float().exp()
        subject_score, subject_class = subject_probs.max(-1)
        object_score, object_class = object_probs.max(-1)
        k = min(predicates_per_pair, config.num_predicates)
        top_p, top_predicate = probabilities.topk(k, dim=-1)
        scores = (subject_score * object_score)[:, None] * top_p  # [pairs, k]
        order = scores.flatten().argsort(descending=True)[:top_k]
        pair_index, boxes = outputs["pair_index"][0], outputs["boxes"][0]
        results = []
        for flat in order.tolist():
            row, column = divmod(flat, k)
            slot, predicate = slots[row], int(top_predicate[row, column])
            subject, obj = pair_index[slot].tolist()
            results.append({
                "subject": objects[int(subject_class[row])], "predicate": predicates[predicate],
                "object": objects[int(object_class[row])], "score": float(scores[row, column]),
                "subject_box": boxes[subject].tolist(), "object_box": boxes[obj].tolist(),
                "contributions": {name: float(value[0, slot, predicate + 1])
                                  for name, value in outputs["contributions"].items()},
            })
        return results


__all__ = ["RelationshipDetectionPipeline"]
