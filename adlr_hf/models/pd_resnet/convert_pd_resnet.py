"""Convert torchvision and NVIDIA partialconv ResNet / VGG checkpoints into `PDResNetForImageClassification` folders.

Paper: Liu et al., "Partial Convolution based Padding", arXiv 1811.11718. Reference: NVIDIA/partialconv (`main.py`
saves `{"epoch", "arch", "state_dict", "best_prec1", "optimizer"}`; the model is wrapped in `DataParallel`, or only
`model.features` for VGG, so keys read `module.conv1.weight` / `features.module.0.weight`), torchvision
(`resnet*.pth` / `vgg*.pth` are bare state dicts).

Our names are torchvision's under the backbone prefix `model.` (`conv1.weight` -> `model.conv1.weight`, `features.0.*`
-> `model.features.0.*`); the heads keep theirs (`fc.*`, `classifier.*`). `module.` / `_orig_mod.` (DataParallel /
DDP / torch.compile) path components are dropped, and `num_batches_tracked` (absent from pre-0.4.1 checkpoints) is
filled with 0. The architecture is read from the checkpoint's "arch" entry or inferred from the keys and shapes (block
type, blocks per stage, widths, classes), so non-standard depths/widths convert too. With 1000 classes the labels
are torchvision's ImageNet class names. Everything is validated before anything is written; the folder (weights,
config, image processor) is written to a temporary sibling and renamed.

CLI kinds: `partialconv` -> `convert_partialconv`, `torchvision` -> `convert_torchvision`.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import re
import zipfile
from pathlib import Path

import torch

from ...conversion import check_out_dir, fitted_model, save_model_folder
from .configuration_pd_resnet import PADDING_MODES, RESNET_ARCHS, VGG_ARCHS, PDResNetConfig
from .image_processing_pd_resnet import PDResNetImageProcessor

logger = logging.getLogger(__name__)

_WRAPPERS = ("module", "_orig_mod")  # DataParallel / DistributedDataParallel, torch.compile


# ----------------------------------------------------------------------------------------------------------- loading
def _load(src) -> tuple[Path, object]:
    path = Path(src).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass the .pth/.pth.tar file")
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not a file; pass the .pth/.pth.tar file itself")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # torchvision's reference scripts save args
            return path, torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise ValueError(f"{str(path)!r} is not a checkpoint torch.load(weights_only=True) can read: "
                         f"{type(err).__name__}: {str(err)[:300]}") from None


def _state_dict_of(obj, path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """(state dict, the checkpoint's "arch" entry or None) from a bare state dict or a training checkpoint."""
    arch = None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{str(path)!r} holds no state dict: expected a dict of tensors or a checkpoint with a "
                         f"'state_dict' entry, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{str(path)!r}: state dict entries {bad[:5]} are not tensors; is this a model checkpoint?")
    state = {}
    for key, value in obj.items():
        name = ".".join(part for part in key.split(".") if part not in _WRAPPERS)
        if name in state:
            raise ValueError(f"{str(path)!r}: keys collide after dropping wrapper prefixes: {key!r} -> {name!r}")
        state[name] = value
    return state, arch


# ---------------------------------------------------------------------------------------------------- architecture
def _parse_arch(arch: str) -> tuple[str, bool | None, bool]:
    """"pdresnet50" / "resnet50" / "vgg16_bn" / "pd-vgg16-bn" -> (our arch, batch_norm or None, partial-named)."""
    name = arch.strip().lower().replace("-", "_")
    partial = name.startswith("pd")
    name = name.removeprefix("pd").lstrip("_")
    batch_norm = None
    if name.endswith("_bn"):
        name, batch_norm = name[:-3], True
    elif name in VGG_ARCHS:
        batch_norm = False
    if name not in RESNET_ARCHS and name not in VGG_ARCHS:
        raise ValueError(f"arch={arch!r} is not a ResNet/VGG this converter knows; use one of "
                         f"{sorted(RESNET_ARCHS)} or {sorted(VGG_ARCHS)} (optionally 'pd' prefix / '_bn' suffix)")
    return name, batch_norm, partial


def _indices(state, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def _infer_config(state: dict[str, torch.Tensor], path: Path) -> dict:
    """Config kwargs (arch, depths, widths, classes, batch_norm) read from the keys and shapes."""
    if any(k.startswith("features.") for k in state):
        convs = [i for i in _indices(state, r"^features\.(\d+)\.weight$") if state[f"features.{i}.weight"].dim() == 4]
        by_count = {sum(v != "M" for v in layers): name for name, layers in VGG_ARCHS.items()}
        if len(convs) not in by_count or "classifier.6.weight" not in state or "classifier.0.weight" not in state:
            raise ValueError(f"{str(path)!r} looks like a VGG (features.*) but has {len(convs)} convs and classifier "
                             f"keys {sorted(k for k in state if k.startswith('classifier.'))[:6]}; expected "
                             f"{sorted(by_count)} convs and classifier.0/3/6")
        first = state[f"features.{convs[0]}.weight"]
        return dict(arch=by_count[len(convs)], batch_norm=any(k.endswith("running_mean") for k in state),
                    num_channels=first.shape[1], base_width=first.shape[0],
                    vgg_hidden_size=state["classifier.0.weight"].shape[0],
                    num_labels=state["classifier.6.weight"].shape[0])
    if "conv1.weight" not in state or "fc.weight" not in state:
        raise ValueError(f"{str(path)!r} is neither a torchvision-style ResNet (conv1.*, layer1-4.*, fc.*) nor a VGG "
                         f"(features.*, classifier.*); its first keys are {list(state)[:6]}")
    bottleneck = "layer1.0.conv3.weight" in state
    depths = [len(_indices(state, rf"^layer{s}\.(\d+)\.conv1\.weight$")) for s in (1, 2, 3, 4)]
    if min(depths) == 0:
        raise ValueError(f"{str(path)!r}: a ResNet needs blocks in layer1-4, found {depths} blocks per stage")
    block = "bottleneck" if bottleneck else "basic"
    matches = [name for name, (b, d) in RESNET_ARCHS.items() if b == block and list(d) == depths]
    arch = matches[0] if matches else ("resnet50" if bottleneck else "resnet18")
    stem = state["conv1.weight"]
    kwargs = dict(arch=arch, num_channels=stem.shape[1], base_width=stem.shape[0],
                  num_labels=state["fc.weight"].shape[0])
    if not matches:
        kwargs["depths"] = depths
    return kwargs


def _build_config(state, path: Path, arch: str | None, ckpt_arch: str | None, padding_mode: str | None,
                  default_padding: str) -> PDResNetConfig:
    inferred = _infer_config(state, path)
    named = arch or ckpt_arch
    partial_named = False
    if named is not None:
        name, batch_norm, partial_named = _parse_arch(named)
        if name != inferred["arch"] or (batch_norm is not None and inferred.get("batch_norm", True) != batch_norm) \
                or "depths" in inferred:
            got = inferred["arch"] + ("_bn" if inferred.get("batch_norm") else "") + \
                (f" with depths {inferred['depths']}" if "depths" in inferred else "")
            source = "arch" if arch is not None else "the checkpoint's 'arch' entry"
            raise ValueError(f"{source} {named!r} does not match the weights in {str(path)!r}, which are a {got}; "
                             "pass the matching arch (or none, to infer it)")
    if padding_mode is None:
        # "pdresnet50" -> partial; a named baseline ("resnet50") -> zeros; no name -> the converter's default
        padding_mode = "partial" if partial_named else ("zeros" if named is not None else default_padding)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode={padding_mode!r} is not one of {PADDING_MODES}")
    kwargs = dict(inferred, padding_mode=padding_mode)
    num_labels = kwargs.pop("num_labels")
    if num_labels == 1000:
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        kwargs["id2label"] = dict(enumerate(_IMAGENET_CATEGORIES))
    else:
        kwargs["num_labels"] = num_labels
    return PDResNetConfig(**kwargs)


# ------------------------------------------------------------------------------------------------------- conversion
def to_hf_state_dict(state: dict[str, torch.Tensor], config: PDResNetConfig) -> dict[str, torch.Tensor]:
    """torchvision names -> `PDResNetForImageClassification` names (backbone under `model.`, heads unchanged)."""
    head = "classifier." if config.is_vgg else "fc."
    return {(key if key.startswith(head) else f"model.{key}"): value for key, value in state.items()}


def _fitted_model(config: PDResNetConfig, state: dict[str, torch.Tensor], path: Path):
    from .modeling_pd_resnet import PDResNetForImageClassification

    with torch.device("meta"):
        expected = PDResNetForImageClassification(config).state_dict()
    for key in expected:  # pre-0.4.1 BN has no counter
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.tensor(0, dtype=torch.long)
    return fitted_model(PDResNetForImageClassification, config, state,
                        f"{str(path)!r} ({config.arch}, {config.padding_mode} padding)")


def _convert(src, out, arch, padding_mode, overwrite: bool, default_padding: str) -> Path:
    path, obj = _load(src)
    out_dir = check_out_dir(out, path, overwrite)
    state, ckpt_arch = _state_dict_of(obj, path)
    config = _build_config(state, path, arch, ckpt_arch, padding_mode, default_padding)
    model = _fitted_model(config, to_hf_state_dict(state, config), path)
    save_model_folder(out_dir, model, (PDResNetImageProcessor.for_config(model.config),))
    logger.info("wrote %s (%s, %s padding, %d classes)", out_dir, config.arch + ("_bn" if config.is_vgg and
                config.batch_norm else ""), config.padding_mode, config.num_labels)
    return out_dir


def convert_partialconv(src, out, arch: str | None = None, overwrite: bool = False,
                        padding_mode: str | None = None) -> Path:
    """An NVIDIA/partialconv `main.py` checkpoint (`{"state_dict": ..., "arch": "pdresnet50", ...}`, DataParallel
    `module.` prefixes) or a bare state dict -> HF folder `out`. `arch` ("pdresnet50", "resnet50", "pdvgg16_bn", ...)
    defaults to the checkpoint's "arch" entry, else to what the weights show. `padding_mode` defaults to "partial"
    for "pd*" archs and checkpoints without an arch, "zeros" for the baseline archs the same script trains."""
    return _convert(src, out, arch, padding_mode, overwrite, default_padding="partial")


def convert_torchvision(src, out, arch: str | None = None, overwrite: bool = False,
                        padding_mode: str | None = None) -> Path:
    """A torchvision ResNet/VGG state dict file (e.g. `resnet50-0676ba61.pth`) -> HF folder `out`. `arch`
    ("resnet50", "vgg16_bn", ...) is checked against the weights, or inferred when None. `padding_mode` defaults to
    "zeros" (the weights' own; identical logits to torchvision); "partial" gives a PD model to fine-tune from them."""
    return _convert(src, out, arch, padding_mode, overwrite, default_padding="zeros")


__all__ = ["convert_partialconv", "convert_torchvision", "to_hf_state_dict"]
