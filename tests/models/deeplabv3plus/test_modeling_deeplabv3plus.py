"""DeepLabV3+: output shapes and strides of each trunk, the reference's head layout, the two losses of the interface
(cross entropy with the ignore index; the boundary-relaxation target), bad labels, save / load, plain BatchNorm
outside a GPU process group."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForSemanticSegmentation

from adlr_hf import get_config
from adlr_hf.layers.relaxed_boundary import relaxed_boundary_loss, relaxed_boundary_target
from adlr_hf.models.deeplabv3plus import (
    DeepLabV3PlusConfig,
    DeepLabV3PlusForSemanticSegmentation,
    DeepLabV3PlusModel,
)
from adlr_hf.models.deeplabv3plus.modeling_deeplabv3plus import default_group_on_gpu


def _tiny(**overrides):
    torch.manual_seed(0)
    return DeepLabV3PlusForSemanticSegmentation(get_config("deeplabv3plus-tiny", **overrides))


def _labels(n, h, w, num_labels=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_labels, (n, h, w), generator=g)
    labels[:, :3, :5] = 255  # an ignored region
    return labels


def test_logits_are_at_the_input_size_for_odd_sizes():
    model = _tiny().eval()
    for h, w in ((32, 40), (37, 29)):
        with torch.no_grad():
            out = model(torch.randn(2, 3, h, w))
        assert out.logits.shape == (2, 11, h, w)


def test_wider_resnet_trunk_has_output_stride_8_and_a_stride_2_skip():
    model = _tiny().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 48), output_hidden_states=True)
    # mod1 .. mod7, then the decoder
    sizes = [tuple(h.shape[2:]) for h in out.hidden_states]
    assert sizes == [(64, 48), (32, 24), (16, 12), (8, 6), (8, 6), (8, 6), (8, 6), (32, 24)]
    assert out.hidden_states[-1].shape[1] == model.config.decoder_channels


@pytest.mark.parametrize("stride,rates", [(8, [12, 24, 36]), (16, [6, 12, 18])])
def test_resnet_trunk_output_stride_and_aspp_rates(stride, rates):
    torch.manual_seed(0)
    model = DeepLabV3PlusModel(get_config(f"deeplabv3plus-resnet50-os{stride}")).eval()
    assert [branch[0].dilation[0] for branch in model.aspp.features[1:]] == rates
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), output_hidden_states=True)
    assert out.hidden_states[-2].shape[1:] == (2048, 64 // stride, 64 // stride)  # layer4
    assert out.last_hidden_state.shape == (1, 256, 16, 16)  # decoder at layer1's stride 4


def test_headline_model_has_the_reference_head_layout():
    with torch.device("meta"):
        model = DeepLabV3PlusForSemanticSegmentation(get_config("deeplabv3plus-wrn38-os8"))
    body = model.model
    assert body.aspp.features[0][0].in_channels == 4096  # mod7's output, no final BN (as DeepWV3Plus)
    assert [b[0].dilation[0] for b in body.aspp.features[1:]] == [12, 24, 36]
    assert (body.bot_aspp.in_channels, body.bot_aspp.out_channels) == (1280, 256)
    assert (body.bot_fine.in_channels, body.bot_fine.out_channels) == (128, 48)  # mod2
    assert body.decoder[0].in_channels == 304 and body.decoder[3].out_channels == 256
    assert model.classifier.bias is None and model.classifier.out_channels == 11
    assert body.backbone.mod7.block1.convs.dropout.p == 0.5 and body.backbone.mod6.block1.convs.dropout.p == 0.3
    assert isinstance(body.backbone.mod6.block1.convs.dropout, nn.Dropout2d)


def test_cross_entropy_loss_skips_the_ignore_index():
    model = _tiny().eval()
    pixels, labels = torch.randn(2, 3, 32, 40), _labels(2, 32, 40)
    out = model(pixels, labels=labels)
    expected = F.cross_entropy(out.logits, labels, ignore_index=255)
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=1e-6)
    kept = labels != 255  # and by hand: mean NLL over the kept pixels only
    log_p = out.logits.log_softmax(1).permute(0, 2, 3, 1)[kept]
    by_hand = -log_p.gather(1, labels[kept][:, None]).mean()
    torch.testing.assert_close(out.loss, by_hand, rtol=1e-5, atol=1e-6)


def test_a_multi_hot_target_uses_the_relaxed_boundary_loss():
    model = _tiny().eval()
    pixels, labels = torch.randn(2, 3, 32, 40), _labels(2, 32, 40)
    target = relaxed_boundary_target(labels, 11)
    out = model(pixels, labels=target)
    torch.testing.assert_close(out.loss, relaxed_boundary_loss(out.logits, target), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out.loss, F.cross_entropy(out.logits, labels, ignore_index=255))


def test_wt_bound_weighs_the_relaxed_loss_as_the_formula_says():
    """config.wt_bound reaches the loss: each image's class weight is 1 + wt_bound * (1 - the class's share of the
    target), checked against the per-pixel reference computation, so the loss is affine in wt_bound."""
    from models.deeplabv3plus.test_relaxation_loss import direct_loss

    assert get_config("deeplabv3plus-tiny").wt_bound == 1.0  # the reference's
    pixels, labels = torch.randn(2, 3, 16, 20), _labels(2, 16, 20, num_labels=4)
    target = relaxed_boundary_target(labels, 4)
    losses = {}
    for wt_bound in (0.0, 1.0, 2.5):
        model = _tiny(num_labels=4, wt_bound=wt_bound).eval()  # the same weights for every value
        out = model(pixels, labels=target)
        expected = sum(direct_loss(out.logits[i].detach(), target[i].numpy(), wt_bound) for i in range(2)) / 2
        assert out.loss.item() == pytest.approx(expected, rel=1e-5)
        losses[wt_bound] = out.loss.item()
    assert losses[1.0] > losses[0.0]
    assert losses[2.5] - losses[0.0] == pytest.approx(2.5 * (losses[1.0] - losses[0.0]), rel=1e-5)
    with pytest.raises(ValueError, match="wt_bound=-1"):
        get_config("deeplabv3plus-tiny", wt_bound=-1)


def test_bad_labels_are_refused_with_the_expected_shapes():
    model = _tiny().eval()
    pixels = torch.randn(2, 3, 32, 40)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        model(pixels, labels=_labels(2, 16, 20))
    with pytest.raises(ValueError, match="boundary-relaxation target"):
        model(pixels, labels=_labels(2, 32, 40).float())
    with pytest.raises(ValueError, match="expected \\(batch, 3"):
        model(torch.randn(2, 1, 32, 40))


def test_loss_trains_the_model():
    model = _tiny().train()
    pixels = torch.randn(4, 3, 32, 32)
    labels = torch.zeros(4, 32, 32, dtype=torch.long)  # quadrants: classes the decoder can place
    labels[:, :16, 16:], labels[:, 16:, :16], labels[:, 16:, 16:] = 1, 2, 3
    labels[:, 14:18] = 255
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(pixels, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_save_and_load_by_both_auto_classes(tmp_path):
    model = _tiny().eval()
    pixels = torch.randn(1, 3, 32, 32)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSemanticSegmentation.from_pretrained(tmp_path).eval()
    base = AutoModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(pixels).logits, model(pixels).logits)
        assert torch.equal(base(pixels).last_hidden_state, model.model(pixels).last_hidden_state)
    assert loaded.config.id2label == model.config.id2label and loaded.config.ignore_index == 255


def test_batch_norms_stay_batchnorm_without_a_gpu_process_group():
    assert not default_group_on_gpu()
    model = _tiny()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)


@pytest.mark.parametrize("kwargs,match", [
    (dict(backbone="wider_resnet38_a2", output_stride=16), "output_stride=8"),
    (dict(output_stride=4), "must be 8 or 16"),
    (dict(backbone="vgg16"), "not supported"),
    (dict(ignore_index=3), "is a class id"),
    (dict(backbone="resnet50", depths=[1, 1, 1, 1]), "wider_resnet38_a2 only"),
    (dict(mod7_dropout=1.5), "probability"),
])
def test_bad_configs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepLabV3PlusConfig(**kwargs)


def _bn_relu(x, seq):
    bn = seq[0]
    return F.relu(F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))


def _conv(x, conv):
    return F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation)


def test_wider_resnet_blocks_are_pre_activation_residuals_with_a_projected_shortcut():
    model = _tiny().eval()
    g = torch.Generator().manual_seed(3)
    for module in model.modules():  # non-trivial statistics so that a skipped or misplaced BN shows
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=g) * 0.2)
            module.running_var.copy_(torch.rand(module.num_features, generator=g) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=g) + 0.5)
    trunk = model.model.backbone
    x = torch.randn(2, 4, 8, 8, generator=g)  # mod2's input (base_width 4): two 3×3 convs, 4 -> 8 channels
    block = trunk.mod2.block1
    pre = _bn_relu(x, block.bn1)
    expected = _conv(_bn_relu(_conv(pre, block.convs.conv1), block.convs.bn2), block.convs.conv2) + \
        _conv(pre, block.proj_conv)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    x = torch.randn(2, 64, 4, 4, generator=g)  # mod6: 1×1, 3×3 (dilation 4), 1×1 bottleneck, 64 -> 128 channels
    block = trunk.mod6.block1
    assert block.convs.conv2.dilation == (4, 4) and trunk.mod5.block1.convs.conv1.dilation == (2, 2)
    assert trunk.mod4.block1.convs.conv1.stride == (2, 2) and trunk.mod4.block1.proj_conv.stride == (2, 2)
    pre = _bn_relu(x, block.bn1)
    inner = _bn_relu(_conv(_bn_relu(_conv(pre, block.convs.conv1), block.convs.bn2), block.convs.conv2),
                     block.convs.bn3)
    expected = _conv(inner, block.convs.conv3) + _conv(pre, block.proj_conv)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_batch_norms_become_sync_batchnorm_in_a_gpu_process_group(monkeypatch):
    from adlr_hf.models.deeplabv3plus import modeling_deeplabv3plus

    monkeypatch.setattr(modeling_deeplabv3plus, "default_group_on_gpu", lambda: True)
    model = _tiny()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is nn.SyncBatchNorm for m in norms)
    names = {k for k in model.state_dict()}  # same checkpoint keys either way
    monkeypatch.setattr(modeling_deeplabv3plus, "default_group_on_gpu", lambda: False)
    assert names == set(_tiny().state_dict())
