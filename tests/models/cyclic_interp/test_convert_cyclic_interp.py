"""`adlr-hf convert uvi`: a checkpoint written in the layout of NVIDIA/unsupervised-video-interpolation's `train.py`
(`{"epoch", "arch", "state_dict", "optimizer"}`, `HJSuperSloMo`'s layer names in `nn.Sequential` indices, the
`mean_pix` buffer, a `CycleHJSuperSloMo`'s saved `teacher.*`) converts into a model with the same weights, mean and
predictions; DataParallel prefixes and bare state dicts work; bad checkpoints fail with one clear error and write
nothing."""

import pytest
import torch
from transformers import AutoModel, AutoVideoProcessor

from adlr_hf import CyclicInterpForFrameInterpolation, get_config
from adlr_hf.cli import main as cli
from adlr_hf.models.cyclic_interp.convert_cyclic_interp import convert_uvi
from models.convert_utils import assert_bad_checkpoints_fail, save_reference_checkpoint

MEAN_PIX = [109.93, 109.167, 101.455]


def reference_name(key: str, prefix: str) -> str:
    """Our parameter name under the reference's (`HJSuperSloMo`) naming."""
    net, rest = key.split(".", 1)
    head = {"flow_net": "flow_pred", "interp_net": "flow_interp"}[net]
    heads = {"flow_net": {"flow_01": "forward_flow_conv", "flow_10": "backward_flow_conv"},
             "interp_net": {"delta_t1": "flow_interp_forward_out_layer", "delta_t0": "flow_interp_backward_out_layer",
                            "visibility": "flow_interp_vis_layer"}}[net]
    parts = rest.split(".")
    if parts[0] == "heads":
        return f"{prefix}{heads[parts[1]]}.{parts[2]}"
    if parts[0] == "refine":
        return f"{prefix}{head}_refine_layer.0.{parts[1]}"
    if parts[0] == "bottleneck":
        return f"{prefix}{head}_bottleneck.{'0' if parts[1] == 'conv1' else '2'}.{parts[2]}"
    level, conv, param = int(parts[1]), parts[2], parts[3]
    if parts[0] == "encoder":  # conv, relu, conv, relu
        return f"{prefix}{head}_encoder_layer{level + 1}.{'0' if conv == 'conv1' else '2'}.{param}"
    return f"{prefix}{head}_decoder_layer{5 - level}.{'1' if conv == 'conv1' else '3'}.{param}"  # upsample first


def reference_state(model, prefix: str = "") -> dict:
    state = {reference_name(k, prefix): v.clone() for k, v in model.state_dict().items()}
    state[f"{prefix}mean_pix"] = torch.tensor(MEAN_PIX).view(1, 3, 1, 1)
    return state


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory):
    """A CycleHJSuperSloMo checkpoint (base width 4) with its saved teacher, as train.py writes it."""
    torch.manual_seed(3)
    model = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny")).eval()
    teacher = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny"))
    state = {**reference_state(model), **reference_state(teacher, "teacher.")}
    state["tlinespace"] = torch.linspace(0, 1, 9)
    assert "flow_pred_decoder_layer5.1.weight" in state and "flow_interp_vis_layer.bias" in state
    path = tmp_path_factory.mktemp("ref") / "unsupervised_adobe2slowflow.pth"
    return save_reference_checkpoint(path, model, state, "CycleHJSuperSloMo", epoch=160), model


def test_reference_checkpoint_converts_with_its_weights_and_predictions(reference_checkpoint, tmp_path):
    path, original = reference_checkpoint
    assert cli(["convert", "uvi", str(path), str(tmp_path / "out"), "--flow-scale", "1"]) == 0
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert type(model) is CyclicInterpForFrameInterpolation and model.config.base_width == 4
    assert model.config.mean_pix == pytest.approx(MEAN_PIX) and model.config.flow_scale == 1
    converted = model.state_dict()
    assert converted.keys() == original.state_dict().keys()  # the teacher is not part of the converted model
    for key, value in original.state_dict().items():
        assert torch.equal(converted[key], value), key
    processor = AutoVideoProcessor.from_pretrained(tmp_path / "out")
    assert processor.size_divisor == 64
    frames = torch.rand(1, 2, 3, 32, 64, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        torch.testing.assert_close(model(frames).interpolated_frames, original(frames).interpolated_frames)


def test_bare_state_dict_with_prefixes_and_flow_scale(tmp_path):
    torch.manual_seed(1)
    model = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny"))
    state = {f"module.{k}": v for k, v in reference_state(model).items() if k != "mean_pix"}  # DataParallel, no mean
    torch.save(state, tmp_path / "bare.pth")
    out = convert_uvi(tmp_path / "bare.pth", tmp_path / "out", flow_scale=2.0)
    loaded = AutoModel.from_pretrained(out)
    assert loaded.config.flow_scale == 2 and loaded.config.mean_pix == pytest.approx(MEAN_PIX)  # the default
    assert torch.equal(loaded.interp_net.heads["visibility"].weight, model.interp_net.heads["visibility"].weight)


def test_bad_checkpoints_fail_clearly_and_write_nothing(reference_checkpoint, tmp_path):
    path, original = reference_checkpoint
    with pytest.raises(ValueError, match="--flow-scale 1.5 must be a whole number"):
        convert_uvi(path, tmp_path / "out", flow_scale=1.5)
    state = reference_state(original)
    cases = {
        "no_state": ({"epoch": 1, "state_dict": {"x": "not a tensor"}}, "holds no Super SloMo state dict"),
        "unknown": ({"state_dict": {**state, "encoder.layer.weight": torch.zeros(1)}}, "keys a Super SloMo"),
        "level": ({"state_dict": {**state, "flow_pred_encoder_layer7.0.weight": torch.zeros(1)}}, "keys a Super"),
        "arch": ({"arch": "SDCNet2D", "state_dict": state}, "saved by model 'SDCNet2D'"),
        "mean": ({"state_dict": {**state, "mean_pix": torch.zeros(4)}}, "mean_pix has shape \\(4,\\)"),
        "first": ({"state_dict": {k: v for k, v in state.items() if "encoder_layer1.0.weight" not in k}},
                  "has no flow_pred_encoder_layer1.0.weight"),
        "shapes": ({"state_dict": {**state, "flow_interp_vis_layer.weight": torch.zeros(2, 4, 1, 1)}},
                   "does not fit CyclicInterpForFrameInterpolation"),
    }
    assert_bad_checkpoints_fail(convert_uvi, "uvi", path, cases, tmp_path)
