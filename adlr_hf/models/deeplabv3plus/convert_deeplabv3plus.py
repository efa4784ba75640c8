"""Convert NVIDIA/semantic-segmentation checkpoints (arXiv 1812.01593; branch `sdcnet`) into
`DeepLabV3PlusForSemanticSegmentation` folders: `adlr-hf convert seg-relax SRC OUT`.

What it reads (`torch.load(weights_only=True)`; a `{"state_dict": ...}` training checkpoint as `utils/misc.py` saves
it, or a bare state dict; DataParallel / DDP `module.` and torch.compile `_orig_mod.` prefixes are dropped):
- a trained segmentation model: `DeepWV3Plus` (`mod1.conv1.weight`, `mod2.block1.bn1.0.weight`, ...) or
  `DeepR50V3PlusD_m1` and its ResNet-101 sibling (`layer0.0` = conv1, `layer0.1` = bn1, `layer1..4`), with the head's
  `aspp.*`, `bot_aspp`, `bot_fine` and `final.{0,1,3,4}` (decoder) / `final.6` (classifier);
- a trunk only: the reference's ImageNet `wider_resnet38.pth.tar` (`mod*`, plus `bn_out` / `classifier.fc`, which
  the segmentation model does not use) or a torchvision ResNet-50/101 state dict (`conv1`, `bn1`, `layer*`, `fc`); the
  head is then initialised as the model initialises it (seeded), with `num_labels` classes.

The trunk is inferred from the keys (or given); ResNet checkpoints get output stride 8 unless told otherwise (the
reference's `D` variant). Everything is checked before anything is written: an unreadable file, unknown keys, a
missing or mis-shaped weight each give one error naming them.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ...conversion import check_out_dir, check_state_fits, fitted_model, read_reference_checkpoint, save_model_folder
from .configuration_deeplabv3plus import BACKBONES, CAMVID_CLASSES, CITYSCAPES_CLASSES, DeepLabV3PlusConfig
from .image_processing_deeplabv3plus import DeepLabV3PlusImageProcessor
from .modeling_deeplabv3plus import DeepLabV3PlusForSemanticSegmentation

_WRAPPERS = ("module.", "_orig_mod.")
# Keys of a trunk's ImageNet classifier, which the segmentation model leaves out.
_CLASSIFIER = re.compile(r"^(fc|bn_out|classifier)\.")


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPERS:
            if key.startswith(prefix):
                key, changed = key.removeprefix(prefix), True
    return key


def to_hf_key(key: str) -> str | None:
    """Our name of one reference key (after dropping wrapper prefixes); None for unknown keys."""
    for old, new in (("layer0.0.", "model.backbone.conv1."), ("layer0.1.", "model.backbone.bn1."),
                     ("final.6.", "classifier.")):
        if key.startswith(old):
            return new + key.removeprefix(old)
    if re.match(r"^final\.[0134]\.", key):
        return "model.decoder." + key.removeprefix("final.")
    if re.match(r"^(conv1|bn1|layer[1-4]|mod[1-7]|pool[23])\.", key):
        return "model.backbone." + key
    if re.match(r"^(aspp|bot_aspp|bot_fine)\.", key):
        return "model." + key
    return None


def _infer_backbone(state: dict[str, torch.Tensor]) -> tuple[str, list[int] | None]:
    """(backbone, WideResNet depths or None) from the keys."""
    if any(k.startswith("model.backbone.mod") for k in state):
        depths = []
        for mod in range(2, 8):
            blocks = {int(m.group(1)) for k in state if (m := re.match(rf"model\.backbone\.mod{mod}\.block(\d+)\.", k))}
            if not blocks:
                raise ValueError(f"the checkpoint has WideResNet keys but no mod{mod}.block*; it is not a "
                                 "WideResNet-38-A2 trunk")
            depths.append(max(blocks))
        return "wider_resnet38_a2", (None if depths == list(BACKBONES["wider_resnet38_a2"][1]) else depths)
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.backbone\.layer3\.(\d+)\.", k))}
    for name, (kind, depths) in BACKBONES.items():
        if kind == "resnet" and blocks and max(blocks) + 1 == depths[2]:
            return name, None
    raise ValueError("cannot tell the trunk from the checkpoint's keys (no mod*/layer3 blocks of a WideResNet-38-A2, "
                     "ResNet-50 or ResNet-101); pass backbone= (--backbone)")


def _widths(state: dict[str, torch.Tensor], backbone: str) -> dict:
    """The config's widths read from the weights (so small models of the same layout convert too)."""
    widths = {}
    if backbone == "wider_resnet38_a2":
        widths["base_width"] = state["model.backbone.mod1.conv1.weight"].shape[0]
    for name, key in (("aspp_channels", "model.aspp.features.0.0.weight"), ("skip_channels", "model.bot_fine.weight"),
                      ("decoder_channels", "model.decoder.0.weight")):
        if key in state:
            widths[name] = state[key].shape[0]
    return widths


def _labels_for(num_labels: int) -> dict:
    names = {len(CAMVID_CLASSES): CAMVID_CLASSES, len(CITYSCAPES_CLASSES): CITYSCAPES_CLASSES}.get(num_labels)
    return {"id2label": dict(enumerate(names))} if names else {"num_labels": num_labels}


def _fill_batch_counters(state: dict[str, torch.Tensor]) -> None:
    """Checkpoints from before PyTorch 0.4.1 have no `num_batches_tracked`: count 0, as a fresh BatchNorm."""
    for key in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(key.removesuffix("running_mean") + "num_batches_tracked", torch.tensor(0, dtype=torch.long))


def convert_seg_relax(src, out, overwrite: bool = False, backbone: str | None = None,
                      num_labels: int | None = None, output_stride: int | None = None) -> Path:
    """A reference segmentation checkpoint, or a trunk's weights, -> HF folder `out` (model + image processor)."""
    path = Path(src).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} is not a file; pass the .pth / .pth.tar file")
    out = check_out_dir(out, path.parent, overwrite)
    raw, _ = read_reference_checkpoint(path, "DeepLabV3+ / trunk", "utils/misc.py save_best_model")
    state, unknown = {}, []
    trunk_only = not any(_strip(k).startswith("final.") for k in raw)
    for key, value in raw.items():
        key = _strip(key)
        if trunk_only and _CLASSIFIER.match(key):
            continue
        new = to_hf_key(key)
        if new is None:
            unknown.append(key)
        else:
            state[new] = value
    if unknown:
        raise ValueError(f"{str(path)!r} has keys that are not part of a DeepLabV3+ model or its trunk: "
                         f"{sorted(unknown)[:8]}; expected NVIDIA/semantic-segmentation DeepWV3Plus / DeepV3Plus keys "
                         "or a torchvision ResNet / wider_resnet38 state dict")
    _fill_batch_counters(state)
    inferred, depths = _infer_backbone(state)
    if backbone is not None and backbone != inferred:
        raise ValueError(f"backbone={backbone!r} does not match the checkpoint, whose keys are those of {inferred}")
    head_classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else None
    if num_labels is not None and head_classes is not None and num_labels != head_classes:
        raise ValueError(f"num_labels={num_labels} does not match the checkpoint's classifier, which has "
                         f"{head_classes} classes; leave num_labels unset")
    classes = head_classes or num_labels or len(CAMVID_CLASSES)
    stride = output_stride or 8
    config = DeepLabV3PlusConfig(backbone=inferred, depths=depths, output_stride=stride, **_widths(state, inferred),
                                 **_labels_for(classes))
    what = f"{str(path)!r} ({inferred})"
    if trunk_only:
        torch.manual_seed(0)  # the new head's initialisation
        model = DeepLabV3PlusForSemanticSegmentation(config).eval()
        trunk = {k.removeprefix("model.backbone."): v for k, v in state.items()}
        check_state_fits(model.model.backbone, trunk, what)
        model.model.backbone.load_state_dict(trunk)
    else:
        model = fitted_model(DeepLabV3PlusForSemanticSegmentation, config, state, what)
    processor = DeepLabV3PlusImageProcessor.for_config(config)
    return save_model_folder(out, model, processors=(processor,))


__all__ = ["convert_seg_relax", "to_hf_key"]
