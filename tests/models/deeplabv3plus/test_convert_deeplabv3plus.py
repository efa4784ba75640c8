"""`adlr-hf convert seg-relax`: a torchvision ResNet-50 state dict becomes the dilated trunk (its features equal
torchvision's own dilated ResNet's); the reference's DeepR50V3PlusD_m1 (`layer0.*`, `final.*`) and DeepWV3Plus
(`mod*`) checkpoints, and its ImageNet wider_resnet38 trunk file, load with the same outputs; broken checkpoints fail
with one clear error and write nothing."""

import json

import pytest
import torch
import torchvision
from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

from adlr_hf import get_config
from adlr_hf.cli import main as cli
from adlr_hf.models.deeplabv3plus import DeepLabV3PlusForSemanticSegmentation
from adlr_hf.models.deeplabv3plus.convert_deeplabv3plus import convert_seg_relax
from models.convert_utils import assert_bad_checkpoints_fail


def reference_key(key: str, resnet: bool) -> str:
    """The name NVIDIA/semantic-segmentation's DeepV3Plus / DeepWV3Plus give our weight `key` (DataParallel
    `module.` prefix included), written from `network/deepv3.py`."""
    if key.startswith("classifier."):
        return "module.final.6." + key.removeprefix("classifier.")
    if key.startswith("model.decoder."):
        return "module.final." + key.removeprefix("model.decoder.")
    if resnet:
        for ours, theirs in (("model.backbone.conv1.", "layer0.0."), ("model.backbone.bn1.", "layer0.1.")):
            if key.startswith(ours):
                return "module." + theirs + key.removeprefix(ours)
    return "module." + key.removeprefix("model.backbone.").removeprefix("model.")


def _randomise(model):
    """Non-trivial BN statistics, so a swapped or missing buffer shows in the outputs."""
    g = torch.Generator().manual_seed(7)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(torch.randn(buffer.shape, generator=g) * 0.1)
        elif name.endswith("running_var"):
            buffer.copy_(torch.rand(buffer.shape, generator=g) + 0.5)
    return model


def test_torchvision_resnet50_becomes_the_dilated_trunk_and_the_reference_layout_loads(tmp_path):
    torch.manual_seed(0)
    resnet = _randomise(torchvision.models.resnet50()).eval()
    torch.save(resnet.state_dict(), tmp_path / "resnet50.pth")
    assert cli(["convert", "seg-relax", str(tmp_path / "resnet50.pth"), str(tmp_path / "from-tv")]) == 0
    model = AutoModelForSemanticSegmentation.from_pretrained(tmp_path / "from-tv").eval()
    assert (model.config.backbone, model.config.output_stride, model.config.num_labels) == ("resnet50", 8, 11)
    # torchvision's own dilated ResNet-50 with the same weights gives the same layer1 / layer4 features
    dilated = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    dilated.load_state_dict(resnet.state_dict())
    dilated.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        low, high, _ = model.model.backbone(x)
        stem = dilated.maxpool(dilated.relu(dilated.bn1(dilated.conv1(x))))
        layer1 = dilated.layer1(stem)
        layer4 = dilated.layer4(dilated.layer3(dilated.layer2(layer1)))
    torch.testing.assert_close(low, layer1, rtol=0, atol=0)
    torch.testing.assert_close(high, layer4, rtol=0, atol=0)
    processor = json.loads((tmp_path / "from-tv" / "preprocessor_config.json").read_text())
    assert processor["image_processor_type"] == "SegformerImageProcessor"
    assert processor["image_mean"] == [0.485, 0.456, 0.406] and processor["image_std"] == [0.229, 0.224, 0.225]
    assert AutoImageProcessor.from_pretrained(tmp_path / "from-tv") is not None

    # The whole model in the reference's DeepR50V3PlusD_m1 names, as its training script saves it.
    _randomise(model)
    state = {reference_key(k, resnet=True): v for k, v in model.state_dict().items()}
    assert "module.layer0.0.weight" in state and "module.final.6.weight" in state
    torch.save({"state_dict": state, "epoch": 3, "mean_iu": 0.5}, tmp_path / "best.pth")
    converted = convert_seg_relax(tmp_path / "best.pth", tmp_path / "from-ref", output_stride=8)
    loaded = AutoModelForSemanticSegmentation.from_pretrained(converted).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)


def _tiny_reference_checkpoint(tmp_path, num_labels=19):
    torch.manual_seed(0)
    model = _randomise(DeepLabV3PlusForSemanticSegmentation(
        get_config("deeplabv3plus-tiny", num_labels=num_labels))).eval()
    state = {reference_key(k, resnet=False): v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}  # as a checkpoint from before PyTorch 0.4.1
    path = tmp_path / "cityscapes_best.pth"
    torch.save({"state_dict": state, "epoch": 10}, path)
    return model, state, path


def test_a_deepwv3plus_checkpoint_converts_with_equal_outputs_and_cityscapes_labels(tmp_path):
    model, state, path = _tiny_reference_checkpoint(tmp_path)
    assert "module.mod2.block1.bn1.0.running_var" in state and "module.aspp.img_conv.0.weight" in state
    loaded = AutoModelForSemanticSegmentation.from_pretrained(convert_seg_relax(path, tmp_path / "out")).eval()
    assert loaded.config.backbone == "wider_resnet38_a2" and loaded.config.depths == [1] * 6
    assert loaded.config.id2label[18] == "bicycle" and loaded.config.ignore_index == 255
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)


def test_an_imagenet_wider_resnet_trunk_gets_a_new_head(tmp_path):
    model, state, _ = _tiny_reference_checkpoint(tmp_path)
    trunk = {k: v for k, v in state.items() if k.startswith("module.mod")}
    trunk["module.bn_out.0.weight"] = torch.ones(256)  # the ImageNet classifier the segmentation model leaves out
    trunk["module.classifier.fc.weight"] = torch.zeros(1000, 256)
    torch.save({"state_dict": trunk, "epoch": 100}, tmp_path / "wider_resnet38.pth.tar")
    loaded = AutoModelForSemanticSegmentation.from_pretrained(
        convert_seg_relax(tmp_path / "wider_resnet38.pth.tar", tmp_path / "out", num_labels=5)).eval()
    assert loaded.config.num_labels == 5
    for key, value in model.model.backbone.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.model.backbone.state_dict()[key], value), key


def test_broken_checkpoints_fail_with_one_clear_error(tmp_path):
    _, state, good = _tiny_reference_checkpoint(tmp_path)
    missing = dict(state)
    del missing["module.final.3.weight"]
    wrong = dict(state)
    wrong["module.bot_fine.weight"] = torch.zeros(3, 3, 1, 1)
    cases = {
        "unknown": ({"state_dict": {**state, "module.extra.weight": torch.zeros(1)}}, "module.extra|extra.weight"),
        "missing": ({"state_dict": missing}, r"missing \['model.decoder.3.weight'\]"),
        "shapes": ({"state_dict": wrong}, "wrong shapes"),
        "no_tensors": ({"state_dict": {"a": 1}}, "holds no DeepLabV3\\+ / trunk state dict"),
        "no_trunk": ({"state_dict": {"module.aspp.img_conv.0.weight": torch.zeros(1), "module.final.6.weight":
                                     torch.zeros(1)}}, "cannot tell the trunk"),
    }
    assert_bad_checkpoints_fail(convert_seg_relax, "seg-relax", good, cases, tmp_path)
    with pytest.raises(ValueError, match="does not match the checkpoint"):
        convert_seg_relax(good, tmp_path / "other", backbone="resnet50")
    assert not (tmp_path / "other").exists()
