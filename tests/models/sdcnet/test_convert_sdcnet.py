"""`adlr-hf convert sdcnet`: a checkpoint written in the layout of NVIDIA/semantic-segmentation's sdcnet `main.py`
(`{"epoch", "arch", "state_dict", "optimizer"}`, reference layer names `conv1.0.weight` …, buffers flow_mean /
flow_std / rgb_mean) converts into a model with the same weights and flow statistics that reads BGR like the
reference; FlowNet2 keys are dropped; bad checkpoints fail with one clear error and write nothing."""

import pytest
import torch
from transformers import AutoModel, AutoVideoProcessor

from adlr_hf import SDCNet2D, SDCNet2DRecon, get_config
from adlr_hf.cli import main as cli
from adlr_hf.models.sdcnet.convert_sdcnet import convert_sdcnet
from models.convert_utils import assert_bad_checkpoints_fail, save_reference_checkpoint

FLOW_MEAN, FLOW_STD = [-0.94427323, -1.23077035], [13.77204132, 7.47463894]


def reference_state(model) -> dict:
    """Our model's weights under the reference's names, plus its buffers."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("sdcnet."):
            layer, _, rest = key.removeprefix("sdcnet.").partition(".")
            state[f"{layer}.0.{rest.split('.', 1)[1]}"] = value.clone()
        else:
            state[key] = value.clone()
    state["flow_mean"] = torch.tensor(FLOW_MEAN).view(1, 2, 1, 1)
    state["flow_std"] = torch.tensor(FLOW_STD).view(1, 2, 1, 1)
    state["rgb_mean"] = torch.tensor([106.7747911, 96.13649598, 76.61428884]).view(1, 3, 1, 1)
    return state


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory):
    """A reference-layout SDCNet2DRecon checkpoint (base width 8, sequence_length 2 -> 13 input channels)."""
    torch.manual_seed(3)
    model = SDCNet2DRecon(get_config("sdcnet2d-recon", base_width=8)).eval()
    state = reference_state(model)
    state["flownet2.conv1.weight"] = torch.zeros(2, 2)  # the reference may leave FlowNet2 keys in
    path = tmp_path_factory.mktemp("ref") / "sdc_cityscapes_vrec.pth.tar"
    return save_reference_checkpoint(path, model, state, "SDCNet2DRecon", epoch=400), model


def test_reference_checkpoint_converts_with_its_weights_statistics_and_bgr_input(reference_checkpoint, tmp_path):
    path, original = reference_checkpoint
    assert cli(["convert", "sdcnet", str(path), str(tmp_path / "out")]) == 0
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert type(model) is SDCNet2DRecon
    config = model.config
    assert (config.sequence_length, config.reconstruction, config.base_width) == (2, True, 8)
    assert config.flow_mean == pytest.approx(FLOW_MEAN) and config.flow_std == pytest.approx(FLOW_STD)
    assert config.flow_stats_source == "flownet2" and config.input_channel_order == "bgr"
    converted = model.state_dict()
    for key, value in original.state_dict().items():
        assert torch.equal(converted[key], value), key
    assert isinstance(AutoVideoProcessor.from_pretrained(tmp_path / "out").size_divisor, int)
    # The converted model sees BGR images: the same motion as an RGB model given channel-flipped frames.
    g = torch.Generator().manual_seed(0)
    past, target = torch.rand(1, 2, 3, 64, 64, generator=g) * 255, torch.rand(1, 3, 64, 64, generator=g) * 255
    flows = torch.randn(1, 2, 2, 64, 64, generator=g)
    rgb = SDCNet2DRecon(get_config("sdcnet2d-recon", base_width=8, flow_mean=FLOW_MEAN, flow_std=FLOW_STD)).eval()
    rgb.load_state_dict(original.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(past, labels=target, input_flows=flows).motion,
                                   rgb(past.flip(2), labels=target.flip(1), input_flows=flows).motion)


def test_arch_option_bare_state_dict_and_flow_source(tmp_path):
    torch.manual_seed(1)
    model = SDCNet2D(get_config("sdcnet2d-tiny"))
    path = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in reference_state(model).items()}, path)  # DataParallel prefixes
    out = convert_sdcnet(path, tmp_path / "out", sdcnet_class="SDCNet2D", flow_source="opencv-farneback")
    loaded = AutoModel.from_pretrained(out)
    assert type(loaded) is SDCNet2D and loaded.config.flow_source == "opencv-farneback"
    assert loaded.config.sequence_length == 2 and not loaded.config.reconstruction
    assert torch.equal(loaded.final_flow.weight, model.final_flow.weight)


def test_bad_checkpoints_fail_clearly_and_write_nothing(reference_checkpoint, tmp_path):
    path, original = reference_checkpoint
    state = reference_state(original)
    cases = {
        "no_state": ({"epoch": 1, "state_dict": {"x": "not a tensor"}}, "holds no SDC-Net state dict"),
        "unknown": ({"state_dict": {**state, "encoder.layer.weight": torch.zeros(1)}}, "keys an SDC-Net"),
        "no_stats": ({"state_dict": {k: v for k, v in state.items() if k != "flow_mean"}}, "no 'flow_mean' buffer"),
        "arch": ({"arch": "SDCNet3D", "state_dict": state}, "saved by model 'SDCNet3D'"),
        "channels": ({"state_dict": {**state, "conv1.0.weight": torch.zeros(8, 12, 7, 7)}}, "not 3N \\+ 2\\(N-1\\)"),
        "shapes": ({"state_dict": {**state, "final_flow.weight": torch.zeros(2, 5, 3, 3)}},
                   "does not fit SDCNet2DRecon"),
    }
    assert_bad_checkpoints_fail(convert_sdcnet, "sdcnet", path, cases, tmp_path)
