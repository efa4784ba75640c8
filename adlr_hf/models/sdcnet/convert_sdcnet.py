"""Convert a checkpoint of NVIDIA's SDC-Net code (e.g. the released `sdc_cityscapes_vrec.pth.tar`) into an
`SDCNet2DRecon` / `SDCNet2D` model folder.

Paper: Reda et al., "SDC-Net: Video prediction using spatially-displaced convolution", arXiv 1811.00684.
Reference: NVIDIA/semantic-segmentation, branch `sdcnet`: `main.py` saves {"epoch", "arch", "state_dict",
"optimizer"}, the state dict without the FlowNet2 weights (`ignore_keys = ['flownet2']`); `sdcnet/models/sdc_net2d.py`
names the layers `conv1.0.*` … `conv6_1.0.*` (conv2d blocks: index 0 is the conv), `deconv5.0.*` … `deconv0.0.*`,
`final_flow.*`, with buffers `flow_mean`, `flow_std` (the flow statistics) and `rgb_mean` (unused).

Our names: `conv3.0.weight` -> `sdcnet.conv3.conv.weight`, `deconv4.0.bias` -> `sdcnet.deconv4.deconv.bias`,
`final_flow.*` unchanged. The flow statistics become the config's `flow_mean` / `flow_std`; `flownet2.*` keys (if any)
and `rgb_mean` are dropped; `module.` prefixes (DataParallel / DDP) are removed. The architecture comes from the
checkpoint's "arch" entry (or `sdcnet_class`; the released file is a reconstruction model); the number of frames and
base width from conv1's shape. The converted model reads frames as the reference did, BGR
(`input_channel_order="bgr"`), and computes its input flows with `flow_source` (FlowNet2, which it was trained on, is
not available: expect some loss). The checkpoint is read with `torch.load(weights_only=True)`; everything is checked
before the folder is written atomically.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ...conversion import check_out_dir, fitted_model, read_reference_checkpoint, save_model_folder
from .configuration_sdcnet import FLOW_SOURCES, SDCNetConfig
from .modeling_sdcnet import SDCNet2D, SDCNet2DRecon
from .video_processing_sdcnet import SDCNetVideoProcessor

CLASSES = {"SDCNet2D": SDCNet2D, "SDCNet2DRecon": SDCNet2DRecon}
_LAYER = re.compile(r"^(conv\d(?:_1)?|deconv\d)\.0\.(weight|bias)$")
_FINAL = re.compile(r"^final_flow\.(weight|bias)$")


def _stats(state: dict, name: str, path: Path) -> list[float]:
    value = state.pop(name, None)
    if value is None:
        raise ValueError(f"{str(path)!r} has no {name!r} buffer: is it an SDC-Net checkpoint (sdc_net2d.py registers "
                         "flow_mean and flow_std)?")
    if value.numel() != 2:
        raise ValueError(f"{str(path)!r}: {name} has shape {tuple(value.shape)}; expected two values (u, v)")
    return [float(v) for v in value.flatten()]


def reference_to_hf(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Rename the reference's layers to ours; any other key is an error."""
    out, unknown = {}, []
    for key, value in state.items():
        if (match := _LAYER.match(key)) is not None:
            layer, param = match.groups()
            out[f"sdcnet.{layer}.{'deconv' if layer.startswith('deconv') else 'conv'}.{param}"] = value
        elif _FINAL.match(key):
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{str(path)!r} holds keys an SDC-Net checkpoint does not have: {sorted(unknown)[:6]}; is it "
                         "a checkpoint of NVIDIA/semantic-segmentation's sdcnet code?")
    return out


def convert_sdcnet(src, out, overwrite: bool = False, sdcnet_class: str | None = None,
                   flow_source: str | None = None) -> Path:
    """`adlr-hf convert sdcnet SRC OUT`: write the model folder (weights, config, video processor) for the
    reference checkpoint `src`; returns the folder."""
    path = Path(src).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} is not a file; pass the .pth.tar the reference saved "
                                "(e.g. sdc_cityscapes_vrec.pth.tar)")
    if flow_source is not None and flow_source not in FLOW_SOURCES:
        raise ValueError(f"flow_source={flow_source!r} is not one of {FLOW_SOURCES}")
    if sdcnet_class is not None and sdcnet_class not in CLASSES:
        raise ValueError(f"sdcnet_class={sdcnet_class!r} is not one of {sorted(CLASSES)}")
    out_dir = check_out_dir(out, path, overwrite)
    state, arch = read_reference_checkpoint(path, "SDC-Net", "main.py")
    # The reference may save its frozen FlowNet2 too; the converted model computes flows with `flow_source`.
    state = {key: value for key, value in state.items() if not key.startswith("flownet2.")}
    name = sdcnet_class or arch or "SDCNet2DRecon"
    if name not in CLASSES:
        raise ValueError(f"{str(path)!r} was saved by model {name!r}; this converter knows {sorted(CLASSES)} (pass "
                         "--sdcnet-class to override)")
    mean, std = _stats(state, "flow_mean", path), _stats(state, "flow_std", path)
    state.pop("rgb_mean", None)  # registered by the reference but never used
    state = reference_to_hf(state, path)
    first = state.get("sdcnet.conv1.conv.weight")
    if first is None or first.dim() != 4:
        raise ValueError(f"{str(path)!r} has no conv1.0.weight (B, C, 7, 7); it is not an SDC-Net checkpoint")
    reconstruction = name == "SDCNet2DRecon"
    frames, remainder = divmod(first.shape[1] + 2, 5)  # 3 N image + 2 (N - 1) flow channels
    if remainder or frames - int(reconstruction) < 2 or first.shape[0] % 4:
        raise ValueError(f"{str(path)!r}: conv1 has {first.shape[1]} input and {first.shape[0]} output channels, not "
                         "3N + 2(N-1) inputs for N >= 2 frames and a multiple of 4 outputs")
    config = SDCNetConfig(sequence_length=frames - int(reconstruction), reconstruction=reconstruction,
                          flow_source=flow_source or "opencv-dis", flow_mean=mean, flow_std=std,
                          flow_stats_source="flownet2", base_width=int(first.shape[0]), input_channel_order="bgr")
    model = fitted_model(CLASSES[name], config, state, f"checkpoint {str(path)!r}")
    return save_model_folder(out_dir, model, processors=(SDCNetVideoProcessor.for_config(config),))


__all__ = ["convert_sdcnet", "reference_to_hf"]
