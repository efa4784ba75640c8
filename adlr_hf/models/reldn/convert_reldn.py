"""`adlr-hf convert reldn SRC OUT`: a NVIDIA/ContrastiveLosses4VRD relationship checkpoint as a model folder
(arXiv 1903.02728; the reference saves {"step", "train_size", "batch_size", "model": state dict, "optimizer"} from
`tools/train_net_step_rel.py`, module names from `lib/modeling_rel/model_builder_rel.py` and `reldn_heads.py`).

What maps (reference -> this model):

    RelDN.prd_cls_feats.{0,2}         head.visual_mlp.{0,2}       visual MLP on [subject ‖ union ‖ object]
    RelDN.prd_cls_scores              head.visual_scores
    RelDN.prd_sbj_scores / _obj_      head.subject_scores / head.object_scores
    RelDN.spt_cls_feats.{0,2}         head.spatial_mlp.{0,2}      spatial MLP on the 28-d feature
    RelDN.spt_cls_scores              head.spatial_scores
    RelDN.freq_bias.rel_baseline      head.semantic               the (trained) frequency bias
    S_Head.fc1 / fc2                  subject_box_head.fc6 / fc7
    O_Head.fc1 / fc2                  object_box_head.fc6 / fc7
    Prd_RCNN.Box_Head.fc1 / fc2       union_box_head.fc6 / fc7

The detector (`Conv_Body`, `RPN`, `Box_Head`, `Box_Outs`, and the predicate branch's conv body) is Detectron's
X-101-FPN or VGG16, which torchvision's Faster R-CNN cannot hold: it is not converted. Pass `--detector` with a
torchvision Faster R-CNN state dict trained on the same classes (else the detector keeps its random
initialisation and the folder is only usable for the spatial and semantic modules). The box heads read 256·7·7 FPN
features (X-101-FPN checkpoints, D = 1024) like torchvision's ResNet-50-FPN; VGG16 checkpoints (D = 4096, 512·7·7
inputs) do not fit, and `--drop-visual` converts their spatial and semantic modules alone (a PredCls model that
needs no image).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from ...conversion import check_out_dir, check_state_fits, read_torch_file, save_model_folder
from ...registry import get_config
from .modeling_reldn import ReldnForRelationshipDetection

logger = logging.getLogger(__name__)

HEAD_KEYS = {
    "RelDN.prd_cls_feats.0": "head.visual_mlp.0", "RelDN.prd_cls_feats.2": "head.visual_mlp.2",
    "RelDN.prd_cls_scores": "head.visual_scores", "RelDN.prd_sbj_scores": "head.subject_scores",
    "RelDN.prd_obj_scores": "head.object_scores", "RelDN.spt_cls_feats.0": "head.spatial_mlp.0",
    "RelDN.spt_cls_feats.2": "head.spatial_mlp.2", "RelDN.spt_cls_scores": "head.spatial_scores",
    "RelDN.freq_bias.rel_baseline": "head.semantic",
    "S_Head.fc1": "subject_box_head.fc6", "S_Head.fc2": "subject_box_head.fc7",
    "O_Head.fc1": "object_box_head.fc6", "O_Head.fc2": "object_box_head.fc7",
    "Prd_RCNN.Box_Head.fc1": "union_box_head.fc6", "Prd_RCNN.Box_Head.fc2": "union_box_head.fc7",
}
VISUAL_PREFIXES = ("RelDN.prd_cls_", "RelDN.prd_sbj_", "RelDN.prd_obj_", "S_Head.", "O_Head.", "Prd_RCNN.Box_Head.")
DATASET_VARIANTS = {100: "reldn-vrd", 150: "reldn-vg", 57: "reldn-oi"}  # objects -> the variant with that detector


def read_reldn_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The relationship model's state dict of a reference checkpoint ({"model": ...} or a bare state dict)."""
    obj = read_torch_file(path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not any(isinstance(k, str) and k.removeprefix("module.").startswith("RelDN.")
                                            for k in obj):
        raise ValueError(f"{str(path)!r} holds no RelDN head (no 'RelDN.*' weights): expected the checkpoint that "
                         "ContrastiveLosses4VRD's tools/train_net_step_rel.py saves ({'model': state dict, ...})")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def reference_to_hf(state: dict[str, torch.Tensor], drop_visual: bool = False) -> dict[str, torch.Tensor]:
    """Rename the relationship modules' weights (see the table above); everything else is left out."""
    out = {}
    for key, value in state.items():
        if drop_visual and key.startswith(VISUAL_PREFIXES):
            continue
        module, _, param = key.rpartition(".")
        if module in HEAD_KEYS:
            out[f"{HEAD_KEYS[module]}.{param}"] = value
    return out


def _config_for(state: dict[str, torch.Tensor], path: Path, variant: str | None, drop_visual: bool):
    """The config the checkpoint's shapes give, on the variant's detector."""
    scores = next((state[k] for k in ("RelDN.prd_cls_scores.weight", "RelDN.spt_cls_scores.weight",
                                      "RelDN.freq_bias.rel_baseline.weight") if k in state), None)
    if scores is None:
        raise ValueError(f"{str(path)!r} has no predicate scores (RelDN.prd_cls_scores / spt_cls_scores / "
                         "freq_bias.rel_baseline): it is not a RelDN relationship checkpoint")
    table = state.get("RelDN.freq_bias.rel_baseline.weight")
    num_objects = round(math.sqrt(table.shape[0])) if table is not None else None
    if table is not None and num_objects ** 2 != table.shape[0]:
        raise ValueError(f"{str(path)!r}: the frequency bias has {table.shape[0]} rows, not (#objects)²")
    visual = "RelDN.prd_cls_feats.0.weight" in state and not drop_visual
    name = variant or DATASET_VARIANTS.get(num_objects, "reldn-vrd")
    config = get_config(name)
    config.num_predicates = scores.shape[0] - 1
    if num_objects is not None:
        config.num_object_classes = num_objects
    config.use_semantic = table is not None
    config.frequency_bias_trainable = True  # the reference's frequency bias is a trained embedding
    config.use_spatial = "RelDN.spt_cls_feats.0.weight" in state
    if config.use_spatial:
        config.spatial_dim = state["RelDN.spt_cls_feats.0.weight"].shape[0]
    config.use_visual = visual
    config.use_subject_object = visual and "RelDN.prd_sbj_scores.weight" in state
    config.use_contrastive_losses = visual and config.use_contrastive_losses
    if visual:
        dim = state["RelDN.prd_cls_feats.2.weight"].shape[0]
        box_head = state.get("Prd_RCNN.Box_Head.fc1.weight")
        expected = config.detector_channels * config.roi_output_size ** 2 \
            if config.detector_backbone == "tiny" else 256 * 7 * 7
        if box_head is None or box_head.shape[1] != expected or (config.detector_backbone == "resnet50_fpn"
                                                                 and dim != 1024):
            got = "none" if box_head is None else f"{box_head.shape[1]} inputs"
            raise ValueError(f"{str(path)!r}: the predicate branch's box head has {got} and D = {dim}, but the "
                             f"{name} detector gives {expected} RoI inputs"
                             + (" and D = 1024" if config.detector_backbone == "resnet50_fpn" else "")
                             + " (a VGG16 checkpoint?); pass --drop-visual to convert the spatial and semantic "
                             "modules only")
        config.feature_dim = dim
    if not (config.use_visual or config.use_spatial or config.use_semantic):
        raise ValueError(f"{str(path)!r}: with the visual module dropped nothing is left to convert")
    return config


def load_detector_weights(model: ReldnForRelationshipDetection, path) -> None:
    """Load a torchvision Faster R-CNN state dict (a local file, read with `weights_only=True`) into the model's
    entity detector and copy its box head into the subject, object and union box heads, as the reference initialises
    its S / O heads and predicate branch from the detector."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"detector weights {str(path)!r} are not a file; pass a torchvision Faster R-CNN "
                                "state dict (torch.save(detector.state_dict(), path))")
    state = read_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    model.load_detector_state_dict(state)


def convert_reldn(src, out, overwrite: bool = False, variant: str | None = None, drop_visual: bool = False,
                  detector: str | None = None) -> Path:
    """Write the model folder for the reference checkpoint `src`; returns the folder."""
    path = Path(src).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} is not a file; pass the .pth a ContrastiveLosses4VRD "
                                "training run saved (e.g. model_step7559.pth)")
    if detector is not None and not Path(detector).expanduser().is_file():
        raise FileNotFoundError(f"--detector {detector!r} is not a file; pass a torchvision Faster R-CNN state dict")
    out_dir = check_out_dir(out, path, overwrite)
    state = read_reldn_checkpoint(path)
    config = _config_for(state, path, variant, drop_visual)
    converted = reference_to_hf(state, drop_visual=drop_visual or not config.use_visual)
    torch.manual_seed(0)
    model = ReldnForRelationshipDetection(config).eval()
    if config.use_visual:
        if detector:  # only the detector: the relation box heads come from the checkpoint below
            model.detector.model.load_state_dict(read_torch_file(Path(detector).expanduser()))
        else:
            logger.warning("no --detector given: the entity detector keeps its random initialisation")
        converted.update({k: v for k, v in model.state_dict().items() if k.startswith("detector.")})
    check_state_fits(model, converted, f"checkpoint {str(path)!r}")
    model.load_state_dict(converted)
    return save_model_folder(out_dir, model)


__all__ = ["HEAD_KEYS", "convert_reldn", "load_detector_weights", "read_reldn_checkpoint", "reference_to_hf"]
