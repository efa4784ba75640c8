"""Convert a checkpoint of NVIDIA's unsupervised-video-interpolation code (e.g. the released
`unsupervised_adobe2slowflow.pth` or `baseline_superslomo_adobe.pth`) into a `CyclicInterpForFrameInterpolation`
model folder.

Paper: Reda et al., "Unsupervised Video Interpolation Using Cycle Consistency", arXiv 1906.05928 (Super SloMo, arXiv
1712.00080). Reference: NVIDIA/unsupervised-video-interpolation: `train.py` saves {"epoch", "arch", "state_dict",
"optimizer"}, the state dict without keys containing 'vgg', 'grid_w', 'grid_h', 'tlinespace', 'resample2d'
(`ignore_keys`); `models/HJSuperSloMo.py` names the layers

    flow_pred_encoder_layer{1..5}.{0,2}    flow_pred_bottleneck.{0,2}    flow_pred_decoder_layer{5..1}.{1,3}
    flow_pred_refine_layer.0               forward_flow_conv             backward_flow_conv
    flow_interp_* (the same, for the flow-interpolation net)             flow_interp_forward_out_layer,
    flow_interp_backward_out_layer, flow_interp_vis_layer                 buffer mean_pix (1, 3, 1, 1)

and a `CycleHJSuperSloMo` trained with pseudo-supervision also saves its frozen teacher (`teacher.*`).

Our names: `flow_pred_encoder_layer3.2.weight` -> `flow_net.encoder.2.conv2.weight`,
`flow_pred_decoder_layer5.1.bias` -> `flow_net.decoder.0.conv1.bias`, `flow_pred_refine_layer.0` -> `flow_net.refine`,
`forward_flow_conv` / `backward_flow_conv` -> `flow_net.heads.flow_01` / `flow_10`, `flow_interp_forward_out_layer` /
`backward_out_layer` / `vis_layer` -> `interp_net.heads.delta_t1` / `delta_t0` / `visibility`. `mean_pix` becomes
the config's; `teacher.*`, `vgg16_features.*`, `tlinespace` and `module.` prefixes are dropped. The width comes from
the first conv's shape; `flow_scale` is not stored in the checkpoint (a command-line setting of the reference: 1 by
default and for UCF101, 2 for its SlowFlow / Sintel models): pass it. Read with `torch.load(weights_only=True)`;
everything is checked before the folder is written atomically.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ...conversion import check_out_dir, fitted_model, read_reference_checkpoint, save_model_folder
from .configuration_cyclic_interp import REFERENCE_MEAN_PIX, CyclicInterpConfig
from .modeling_cyclic_interp import CyclicInterpForFrameInterpolation
from .video_processing_cyclic_interp import CyclicInterpVideoProcessor

logger = logging.getLogger(__name__)

ARCHES = ("HJSuperSloMo", "CycleHJSuperSloMo")
_NETS = {"flow_pred": "flow_net", "flow_interp": "interp_net"}
_BLOCK = re.compile(r"^(flow_pred|flow_interp)_(encoder_layer|decoder_layer|bottleneck)(\d?)\.(\d)\.(weight|bias)$")
_SINGLE = {"flow_pred_refine_layer.0": "flow_net.refine", "forward_flow_conv": "flow_net.heads.flow_01",
           "backward_flow_conv": "flow_net.heads.flow_10", "flow_interp_refine_layer.0": "interp_net.refine",
           "flow_interp_forward_out_layer": "interp_net.heads.delta_t1",
           "flow_interp_backward_out_layer": "interp_net.heads.delta_t0",
           "flow_interp_vis_layer": "interp_net.heads.visibility"}
_DROPPED = ("teacher.", "vgg16_features.", "tlinespace", "grid_w", "grid_h", "resample2d")
# Position of each conv in the reference's nn.Sequential: encoder (conv, relu, conv, relu), decoder (upsample, conv,
# relu, conv, relu).
_CONV_INDEX = {"encoder_layer": {"0": "conv1", "2": "conv2"}, "bottleneck": {"0": "conv1", "2": "conv2"},
               "decoder_layer": {"1": "conv1", "3": "conv2"}}


def reference_to_hf(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """(our state dict, number of dropped teacher/VGG/grid entries); any key of neither kind is an error."""
    out, unknown, dropped = {}, [], 0
    for key, value in state.items():
        if key.startswith(_DROPPED) or key == "mean_pix":
            dropped += key != "mean_pix"
            continue
        if (match := _BLOCK.match(key)) is not None:
            net, kind, level, index, param = match.groups()
            conv = _CONV_INDEX[kind].get(index)
            if conv is None or (kind == "bottleneck") == bool(level) or (level and not 1 <= int(level) <= 5):
                unknown.append(key)
                continue
            where = {"encoder_layer": f"encoder.{int(level or 1) - 1}", "bottleneck": "bottleneck",
                     "decoder_layer": f"decoder.{5 - int(level or 5)}"}[kind]
            out[f"{_NETS[net]}.{where}.{conv}.{param}"] = value
            continue
        module, _, param = key.rpartition(".")
        if module in _SINGLE and param in ("weight", "bias"):
            out[f"{_SINGLE[module]}.{param}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{str(path)!r} holds keys a Super SloMo checkpoint does not have: {sorted(unknown)[:6]}; is "
                         "it a checkpoint of NVIDIA/unsupervised-video-interpolation?")
    return out, dropped


def _mean_pix(state: dict, path: Path) -> list[float]:
    value = state.get("mean_pix")
    if value is None:
        logger.info("%s has no mean_pix buffer; using the reference's default %s", path, REFERENCE_MEAN_PIX)
        return list(REFERENCE_MEAN_PIX)
    if value.numel() != 3:
        raise ValueError(f"{str(path)!r}: mean_pix has shape {tuple(value.shape)}; expected three values (R, G, B)")
    return [float(v) for v in value.flatten()]


def convert_uvi(src, out, overwrite: bool = False, flow_scale: float | None = None) -> Path:
    """`adlr-hf convert uvi SRC OUT [--flow-scale N]`: write the model folder (weights, config, video processor) of
    the reference checkpoint `src`; returns the folder."""
    path = Path(src).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} is not a file; pass the .pth / .pth.tar the reference "
                                "saved (e.g. unsupervised_adobe2slowflow.pth)")
    scale = 1 if flow_scale is None else flow_scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 1 or float(scale) != int(scale):
        raise ValueError(f"--flow-scale {flow_scale!r} must be a whole number >= 1 (1 for UCF101-style frames, 2 "
                         "for the reference's SlowFlow / Sintel models)")
    out_dir = check_out_dir(out, path, overwrite)
    state, arch = read_reference_checkpoint(path, "Super SloMo", "train.py")
    if arch is not None and arch not in ARCHES:
        raise ValueError(f"{str(path)!r} was saved by model {arch!r}; this converter knows {list(ARCHES)}")
    mean = _mean_pix(state, path)
    state, dropped = reference_to_hf(state, path)
    first = state.get("flow_net.encoder.0.conv1.weight")
    if first is None or first.dim() != 4 or first.shape[1] != 6:
        raise ValueError(f"{str(path)!r} has no flow_pred_encoder_layer1.0.weight of shape (C, 6, 7, 7); it is not a "
                         "Super SloMo checkpoint")
    if dropped:
        logger.info("dropped %d teacher / VGG / grid entries of %s (not part of the interpolation model)", dropped,
                    path)
    config = CyclicInterpConfig(base_width=int(first.shape[0]), flow_scale=int(scale), mean_pix=mean)
    model = fitted_model(CyclicInterpForFrameInterpolation, config, state, f"checkpoint {str(path)!r}")
    return save_model_folder(out_dir, model, processors=(CyclicInterpVideoProcessor.for_config(config),))


__all__ = ["convert_uvi", "reference_to_hf"]
