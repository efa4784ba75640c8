"""PD-ResNet / PD-VGG: torchvision parity in zero-padding mode, partial padding near borders only, checkpoint
conversion, Auto classes, remote code, the image-classification pipeline on a real CIFAR-10 JPEG."""

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

from adlr_hf import PDResNetConfig, PDResNetForImageClassification, PDResNetImageProcessor, get_config
from adlr_hf.layers import PartialConv2d
from adlr_hf.models.pd_resnet.convert_pd_resnet import convert_partialconv, convert_torchvision, to_hf_state_dict

CIFAR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cifar10-jpeg-subset"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def from_torchvision(tv_model, name, **overrides):
    """Our model with a torchvision model's weights (built on the meta device: no init cost)."""
    config = get_config(name, **overrides)
    with torch.device("meta"):
        model = PDResNetForImageClassification(config)
    model.load_state_dict(to_hf_state_dict(tv_model.state_dict(), config), strict=True, assign=True)
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return PDResNetForImageClassification(get_config("pd-resnet-tiny", id2label=dict(enumerate(CIFAR_CLASSES)))).eval()


def test_zero_padding_resnet50_reproduces_torchvision_logits():
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None).eval()
    ours = from_torchvision(tv, "resnet50-zeros")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, tv(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters()) == 25_557_032


def test_zero_padding_vgg16_bn_reproduces_torchvision_logits():
    torch.manual_seed(0)
    tv = torchvision.models.vgg16_bn(weights=None).eval()
    ours = from_torchvision(tv, "vgg16-bn-zeros")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, tv(x), rtol=1e-5, atol=1e-5)


def test_partial_padding_differs_from_zero_padding_only_near_borders():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None).eval()
    zeros, partial = from_torchvision(tv, "resnet18-zeros"), from_torchvision(tv, "pd-resnet18")
    assert type(partial.model.conv1) is PartialConv2d and type(partial.model.layer1[0].conv2) is PartialConv2d
    assert type(partial.model.layer2[0].downsample[0]) is nn.Conv2d  # 1×1, unpadded: plain conv (ratio is 1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(partial(x).logits, zeros(x).logits, atol=1e-4)
        a, b = zeros.model.conv1(x), partial.model.conv1(x)
    # 7×7 stride 2 pad 3 on 64 pixels: outputs 2..30 never see the padding
    torch.testing.assert_close(a[..., 2:31, 2:31], b[..., 2:31, 2:31], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[..., 0, :], b[..., 0, :])


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_ablation_padding_modes_build_plain_convs(mode):
    model = PDResNetForImageClassification(get_config("pd-resnet-tiny", padding_mode=mode)).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert not any(isinstance(m, PartialConv2d) for m in convs)
    assert {m.padding_mode for m in convs if m.padding != (0, 0)} == {mode}
    # reflect/replicate need padding < size: 64 pixels keep the last stage at 2×2
    assert model(torch.randn(1, 3, 64, 64)).logits.shape == (1, 10)


def test_any_input_size_hidden_states_and_pooling(tiny):
    for size in [(32, 32), (37, 45), (64, 48)]:
        out = tiny(torch.randn(2, 3, *size), output_hidden_states=True)
        assert out.logits.shape == (2, 10)
        assert len(out.hidden_states) == 5  # stem + 4 stages
    base = tiny.model(torch.randn(2, 3, 40, 40))
    assert base.pooler_output.shape == (2, tiny.config.hidden_size)
    vgg = PDResNetForImageClassification(get_config("pd-vgg-tiny")).eval()
    out = vgg(torch.randn(1, 3, 40, 40), output_hidden_states=True)
    assert out.logits.shape == (1, 10) and len(out.hidden_states) == 5  # one per max-pool
    assert vgg.model(torch.randn(1, 3, 40, 40)).pooler_output.shape == (1, vgg.config.hidden_size * 49)


def test_whole_model_traces_without_graph_breaks(tiny):
    compiled = torch.compile(tiny, backend="eager", fullgraph=True)  # inductor itself: tests/layers
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x).logits, tiny(x).logits)


def test_loss_is_first_and_is_cross_entropy(tiny):
    x, labels = torch.randn(3, 3, 32, 32), torch.tensor([1, 4, 9])
    out = tiny(x, labels=labels)
    assert list(out.keys())[0] == "loss"
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert tiny(x, return_dict=False)[0].shape == (3, 10)


def test_training_step_gives_finite_gradients():
    torch.manual_seed(0)
    model = PDResNetForImageClassification(get_config("pd-vgg-tiny", classifier_dropout=0.0)).train()
    loss = model(torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 2, 3])).loss
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_init_follows_torchvision():
    torch.manual_seed(0)
    model = PDResNetForImageClassification(get_config("pd-resnet-tiny", zero_init_residual=True))
    block = model.model.layer1[0]
    assert block.bn2.weight.eq(0).all() and model.model.bn1.weight.eq(1).all()
    std = model.model.layer2[0].conv1.weight.std().item()  # kaiming fan_out: sqrt(2 / (16·9))
    assert abs(std - (2 / (16 * 9)) ** 0.5) < 0.03
    vgg = PDResNetForImageClassification(get_config("pd-vgg-tiny"))
    assert abs(vgg.classifier[0].weight.std().item() - 0.01) < 0.002 and vgg.classifier[0].bias.eq(0).all()


def test_save_and_auto_load_round_trip(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, PDResNetConfig) and config.model_type == "adlr_pd_resnet"
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is PDResNetForImageClassification
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, tiny(x).logits)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "PDResNetModel"
    assert loaded.config.id2label[3] == "cat"
    assert {"modeling_pd_resnet.py", "configuration_pd_resnet.py", "partial_conv.py"} <= set(os.listdir(tmp_path))
    vgg = PDResNetForImageClassification(get_config("pd-vgg-tiny")).eval()
    vgg.save_pretrained(tmp_path / "vgg")
    with torch.no_grad():
        assert torch.equal(AutoModelForImageClassification.from_pretrained(tmp_path / "vgg").eval()(x).logits,
                           vgg(x).logits)


@pytest.mark.skipif(not CIFAR.is_dir(), reason=f"CIFAR-10 JPEG subset not found at {CIFAR}")
def test_pipeline_classifies_a_real_cifar_jpeg_with_id2label(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    processor = PDResNetImageProcessor.for_config(tiny.config)
    processor.save_pretrained(tmp_path)
    assert type(AutoImageProcessor.from_pretrained(tmp_path)).__name__ == "BitImageProcessor"  # plain transformers
    image = sorted((CIFAR / "test" / "cat").glob("*.jpg"))[0]
    classify = pipeline("image-classification", model=str(tmp_path), device="cpu")
    result = classify(str(image), top_k=3)
    assert len(result) == 3 and all(r["label"] in CIFAR_CLASSES for r in result)
    # the pipeline's top label is the model's argmax on the processor's pixels
    from PIL import Image

    pixels = processor(Image.open(image), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)
    with torch.no_grad():
        assert result[0]["label"] == CIFAR_CLASSES[tiny(pixels).logits.argmax(-1).item()]


def test_processor_defaults_are_the_reference_eval_transform():
    processor = PDResNetImageProcessor()
    assert processor.size == {"shortest_edge": 256} and processor.crop_size == {"height": 224, "width": 224}
    assert list(processor.image_mean) == [0.485, 0.456, 0.406] and list(processor.image_std) == [0.229, 0.224, 0.225]
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert processor(image, return_tensors="pt")["pixel_values"].shape == (1, 3, 224, 224)


# ----------------------------------------------------------------------------------------------- conversion
def test_torchvision_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None).eval()
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    out = convert_torchvision(tmp_path / "resnet18.pth", tmp_path / "hf", arch="resnet18")
    assert out == (tmp_path / "hf").absolute()
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert model.config.arch == "resnet18" and model.config.padding_mode == "zeros"
    assert model.config.id2label[0] == "tench"  # 1000 classes: torchvision's ImageNet names
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, tv(x), rtol=1e-5, atol=1e-5)
    assert (out / "preprocessor_config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    partial = convert_torchvision(tmp_path / "resnet18.pth", tmp_path / "pd", padding_mode="partial")
    assert AutoConfig.from_pretrained(partial).padding_mode == "partial"


def test_nvidia_partialconv_checkpoints_convert(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None).eval()
    # main.py: DataParallel(model) -> "module." keys, plus epoch/arch/best_prec1/optimizer
    optimizer = torch.optim.SGD(tv.parameters(), lr=0.1, momentum=0.9)
    torch.save({"epoch": 90, "arch": "pdresnet18", "best_prec1": torch.tensor(12.5),
                "state_dict": {f"module.{k}": v for k, v in tv.state_dict().items()},
                "optimizer": optimizer.state_dict()}, tmp_path / "ck.pth.tar")
    model = AutoModelForImageClassification.from_pretrained(convert_partialconv(tmp_path / "ck.pth.tar",
                                                                               tmp_path / "hf")).eval()
    assert (model.config.arch, model.config.padding_mode) == ("resnet18", "partial")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, from_torchvision(tv, "pd-resnet18")(x).logits)
    # the script's baseline archs ("resnet18") convert with zero padding
    torch.save({"arch": "resnet18", "state_dict": tv.state_dict()}, tmp_path / "base.pth.tar")
    assert AutoConfig.from_pretrained(convert_partialconv(tmp_path / "base.pth.tar", tmp_path / "base")) \
        .padding_mode == "zeros"

    # no "arch" entry: inferred from the keys, including non-standard depths and widths
    source = PDResNetForImageClassification(get_config("pd-resnet-tiny")).eval()
    torch.save({"state_dict": {f"module.{k.removeprefix('model.')}": v for k, v in source.state_dict().items()}},
               tmp_path / "tiny.pth.tar")
    tiny = AutoModelForImageClassification.from_pretrained(convert_partialconv(tmp_path / "tiny.pth.tar",
                                                                              tmp_path / "tiny")).eval()
    config = tiny.config
    assert (config.padding_mode, config.depths, config.base_width) == ("partial", [1, 1, 1, 1], 8)
    assert config.num_labels == 10
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tiny(x).logits, source(x).logits)

    # VGG: main.py wraps only `features` -> "features.module.N"; old checkpoints lack num_batches_tracked
    vgg = PDResNetForImageClassification(get_config("pd-vgg-tiny")).eval()
    state = {k.removeprefix("model.").replace("features.", "features.module."): v for k, v in vgg.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state}, tmp_path / "vgg.pth.tar")
    vgg_out = AutoModelForImageClassification.from_pretrained(convert_partialconv(tmp_path / "vgg.pth.tar",
                                                                                  tmp_path / "vgg")).eval()
    assert vgg_out.config.arch == "vgg11" and vgg_out.config.batch_norm and vgg_out.config.padding_mode == "partial"
    with torch.no_grad():
        torch.testing.assert_close(vgg_out(x).logits, vgg(x).logits)
    # an "arch" entry that contradicts the weights is refused
    torch.save({"arch": "pdvgg11", "state_dict": state}, tmp_path / "vgg_nobn.pth.tar")
    with pytest.raises(ValueError, match="'arch' entry 'pdvgg11' does not match the weights.*vgg11_bn"):
        convert_partialconv(tmp_path / "vgg_nobn.pth.tar", tmp_path / "bad")


def test_conversion_errors_name_the_input_and_write_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        convert_torchvision(tmp_path / "missing.pth", out)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth.*weights_only"):
        convert_torchvision(tmp_path / "junk.pth", out)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="neither a torchvision-style ResNet"):
        convert_partialconv(tmp_path / "other.pth", out)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="arch 'resnet34' does not match.*resnet18"):
        convert_torchvision(tmp_path / "r18.pth", out, arch="resnet34")
    with pytest.raises(ValueError, match="arch='densenet121'"):
        convert_torchvision(tmp_path / "r18.pth", out, arch="densenet121")
    with pytest.raises(ValueError, match="padding_mode='circular'"):
        convert_torchvision(tmp_path / "r18.pth", out, padding_mode="circular")
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty; pass overwrite=True"):
        convert_torchvision(tmp_path / "r18.pth", out)
    convert_torchvision(tmp_path / "r18.pth", out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match="arch='resnet20'"):
        PDResNetConfig(arch="resnet20")
    with pytest.raises(ValueError, match="padding_mode='circular'"):
        PDResNetConfig(padding_mode="circular")
    with pytest.raises(ValueError, match="batch_norm=False is only possible for VGG"):
        PDResNetConfig(arch="resnet50", batch_norm=False)
    with pytest.raises(ValueError, match="depths"):
        PDResNetConfig(arch="vgg11", depths=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="pixel_values has shape"):
        PDResNetForImageClassification(get_config("pd-resnet-tiny"))(torch.randn(1, 1, 32, 32))
    assert PDResNetConfig().num_labels == 1000 and PDResNetConfig(arch="vgg16").batch_norm is False


def test_registered_variants():
    from adlr_hf.registry import list_models

    rows = {r["name"]: r for r in list_models() if r["family"] == "pd_resnet"}
    for name in ["pd-resnet18", "pd-resnet50", "pd-resnet152", "pd-vgg16-bn", "pd-vgg19-bn", "resnet50-zeros",
                 "resnet50-reflect", "vgg16-bn-replicate", "pd-resnet-tiny"]:
        assert name in rows
    assert get_config("pd-vgg16-bn").batch_norm and get_config("vgg16-zeros").padding_mode == "zeros"
    with torch.device("meta"):
        full = PDResNetForImageClassification(get_config("pd-vgg16-bn"))
    assert sum(p.numel() for p in full.parameters()) == 138_365_992  # torchvision's vgg16_bn


def _plan_matches(name, **overrides):
    from adlr_hf.parallel.plan import full_tp_plan, match_plan

    with torch.device("meta"):
        model = PDResNetForImageClassification(get_config(name, **overrides))
    modules = dict(model.named_modules())
    return {k: (style, type(modules[k]).__name__) for k, style in match_plan(modules, full_tp_plan(model)).items()}


def test_tp_plan_pairs_column_and_row_convs_in_every_block_and_splits_the_heads():
    basic = _plan_matches("pd-resnet18")
    assert basic["model.layer1.0.conv1"] == ("conv_colwise", "PartialConv2d")
    assert basic["model.layer1.0.bn1"] == ("bn_colwise", "BatchNorm2d")
    assert basic["model.layer4.1.conv2"] == ("conv_rowwise", "PartialConv2d")
    assert basic["fc"] == ("rowwise_split_input", "Linear")
    assert len(basic) == 8 * 3 + 1 and not any(".downsample" in k or k == "model.conv1" for k in basic)
    bottleneck = _plan_matches("pd-resnet50")
    assert bottleneck["model.layer3.5.conv2"] == ("conv_colwise", "PartialConv2d")
    assert bottleneck["model.layer3.5.conv3"] == ("conv_rowwise", "Conv2d")  # 1×1, unpadded: a plain conv
    assert bottleneck["model.layer3.5.bn2"] == ("bn_colwise", "BatchNorm2d")
    assert len(bottleneck) == 16 * 3 + 1 and "model.layer1.0.conv1" not in bottleneck
    vgg = _plan_matches("pd-vgg16-bn")  # 13 convs: 6 column/row pairs, the last conv stays whole
    convs = {k: v for k, v in vgg.items() if k.startswith("model.features")}
    assert sum(v[0] == "conv_colwise" for v in convs.values()) == 6 == sum(v[0] == "conv_rowwise" for v in convs.values())
    assert convs["model.features.0"] == ("conv_colwise", "PartialConv2d") and convs["model.features.1"][0] == "bn_colwise"
    assert convs["model.features.3"] == ("conv_rowwise", "PartialConv2d") and "model.features.40" not in convs
    assert (vgg["classifier.0"][0], vgg["classifier.3"][0], vgg["classifier.6"][0]) == \
        ("colwise", "rowwise", "rowwise_split_input")
    plain_vgg = _plan_matches("pd-vgg11")  # no batch norm: conv, ReLU, [pool] indices
    assert plain_vgg["model.features.0"][0] == "conv_colwise" and plain_vgg["model.features.3"][0] == "conv_rowwise"


def test_check_tp_size_names_what_a_tp_degree_does_not_divide():
    get_config("pd-resnet-tiny").check_tp_size(8)
    get_config("pd-resnet50").check_tp_size(8)
    with pytest.raises(ValueError, match="tp_size=3 does not divide stage 1 width"):
        get_config("pd-resnet-tiny").check_tp_size(3)
    with pytest.raises(ValueError, match="vgg_hidden_size=60"):
        get_config("pd-vgg-tiny", vgg_hidden_size=60).check_tp_size(8)
    with pytest.raises(ValueError, match="positive int"):
        get_config("pd-resnet-tiny").check_tp_size(0)
    # Any class count: the heads split their input features, not the classes.
    get_config("pd-resnet-tiny", num_labels=37).check_tp_size(2)


@pytest.mark.parametrize("name", ["pd-resnet-tiny", "pd-vgg-tiny"])
def test_plan_applied_on_one_process_is_the_identity(name):
    from adlr_hf.parallel import apply_tp_plan, gather_state_dict

    torch.manual_seed(0)
    model = PDResNetForImageClassification(get_config(name, classifier_dropout=0.0)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).logits
        state = model.state_dict()
        apply_tp_plan(model, None)
        assert type(model.fc if hasattr(model, "fc") else model.classifier[6]).__name__ == "RowParallelLinear"
        torch.testing.assert_close(model(x).logits, expected, rtol=0, atol=0)
    gathered = gather_state_dict(model)
    assert gathered.keys() == state.keys() and all(torch.equal(gathered[k], state[k]) for k in state)


def test_cifar_stem_keeps_the_resolution_and_the_parameter_names():
    imagenet = PDResNetForImageClassification(get_config("pd-resnet-tiny")).eval()
    cifar = PDResNetForImageClassification(get_config("pd-resnet-tiny", stem="cifar")).eval()
    assert isinstance(cifar.model.conv1, PartialConv2d) and cifar.model.conv1.kernel_size == (3, 3)
    assert cifar.model.conv1.stride == (1, 1) and isinstance(cifar.model.maxpool, nn.Identity)
    assert set(cifar.state_dict()) == set(imagenet.state_dict())
    with torch.no_grad():
        hidden = cifar(torch.randn(1, 3, 32, 32), output_hidden_states=True).hidden_states
    assert hidden[0].shape[-1] == 32 and hidden[-1].shape[-1] == 4  # stem keeps 32; three stride-2 stages
    with pytest.raises(ValueError, match="stem='tiny'"):
        get_config("pd-resnet-tiny", stem="tiny")
    with pytest.raises(ValueError, match="applies to ResNets only"):
        get_config("pd-vgg-tiny", stem="cifar")
