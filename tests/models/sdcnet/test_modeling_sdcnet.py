"""SDC-Net (arXiv 1811.00684; NVIDIA/semantic-segmentation branch sdcnet, sdc_net2d.py): shapes and widths as the
reference, the input normalisation and interleaving, the loss against a hand computation, the init, the full model
with k = 1 equal to the flow-only warp, roll-out, label propagation, save/load through the Auto classes, bad inputs."""

import math

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from adlr_hf import SDCNet2D, SDCNet2DRecon, SDCNetConfig, SDCNetForFramePrediction, SDCNetModel, get_config
from adlr_hf.layers.warp import warp
from adlr_hf.models.sdcnet.losses_sdcnet import sdcnet_loss
from adlr_hf.models.sdcnet.modeling_sdcnet import KERNEL_CENTRE_INIT

H, W = 64, 128


def clip(batch=2, frames=2, seed=0):
    """Smooth random frames in [0, 255] (B, T, 3, H, W) and a target (B, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch * (frames + 1), 3, H // 8, W // 8, generator=g) * 255
    full = nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)
    full = full.view(batch, frames + 1, 3, H, W)
    return full[:, :-1].contiguous(), full[:, -1].contiguous()


def flows_for(batch, count, seed=1):
    return torch.randn(batch, count, 2, H, W, generator=torch.Generator().manual_seed(seed)) * 2


def tiny(name="sdcnet-tiny", seed=0, **overrides):
    torch.manual_seed(seed)
    return SDCNetForFramePrediction(get_config(name, **overrides)).eval()


def test_reference_widths_input_channels_and_parameter_count():
    config = SDCNetConfig()  # the released SDCNet2D: sequence_length 2 -> 3·2 + 2·1 = 8 input channels
    assert config.num_input_channels == 8 and config.architectures == ["SDCNet2D"]
    assert config.encoder_channels == [32, 64, 128, 256, 256, 512]
    assert config.decoder_channels == [256, 128, 64, 32, 16, 8]
    recon = SDCNetConfig(reconstruction=True)  # the reference adds one to sequence_length: 3·3 + 2·2
    assert recon.num_input_channels == 13 and recon.architectures == ["SDCNet2DRecon"]
    assert SDCNetConfig(flow_source="none").num_input_channels == 6
    with torch.device("meta"):
        model = SDCNet2D(config)
    trunk = model.sdcnet
    assert (trunk.conv1.conv.kernel_size, trunk.conv1.conv.stride) == ((7, 7), (2, 2))
    assert (trunk.conv3.conv.kernel_size, trunk.conv3_1.conv.stride) == ((5, 5), (1, 1))
    assert trunk.deconv4.deconv.in_channels == 512 and trunk.deconv0.deconv.in_channels == 48
    assert model.final_flow.in_channels == 8 + 8 and model.final_flow.out_channels == 2
    # sdc_net2d.py's layers hold 9,690,490 parameters for sequence_length 2 (38.8 MB of float32, as released)
    assert sum(p.numel() for p in model.parameters()) == 9_690_490


def test_forward_shapes_hidden_states_and_tuple_output():
    model = tiny()
    past, target = clip()
    out = model(past, labels=target, input_flows=flows_for(2, 1), output_hidden_states=True)
    assert out.loss.dim() == 0 and out.predicted_frame.shape == (2, 3, H, W)
    assert out.motion.shape == (2, 2, H, W) and out.kernels.shape == (2, 6, H, W)
    torch.testing.assert_close(out.kernels[:, :3].sum(1), torch.ones(2, H, W))
    assert len(out.hidden_states) == 12 and out.hidden_states[5].shape == (2, 128, 1, 2)  # conv6 at 1/64
    as_tuple = model(past, labels=target, input_flows=flows_for(2, 1), return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.loss)
    assert SDCNetModel(model.config)(torch.zeros(1, 8, H, W)).last_hidden_state.shape == (1, 8 + 2, H, W)


def test_network_input_normalises_and_interleaves_per_colour_like_the_reference():
    model = tiny("sdcnet2d-tiny", sequence_length=3)
    past, _ = clip(batch=1, frames=3)
    flows = flows_for(1, 2)
    x = model.network_input(past, flows)
    mean = past.mean(dim=(1, 3, 4))[0]  # per colour, over frames and pixels
    std, fmean = torch.tensor(model.config.flow_std), torch.tensor(model.config.flow_mean)
    # [flows (u1 u2 v1 v2), images (r1 r2 r3 g1 g2 g3 b1 b2 b3)]
    for c in range(2):
        for i in range(2):
            torch.testing.assert_close(x[0, 2 * c + i], (flows[0, i, c] - fmean[c]) / (3 * std[c]))
    for c in range(3):
        for t in range(3):
            torch.testing.assert_close(x[0, 4 + 3 * c + t], (past[0, t, c] - mean[c]) / 255.0)
    bgr = tiny("sdcnet2d-tiny", sequence_length=3, input_channel_order="bgr").network_input(past, flows)
    torch.testing.assert_close(bgr[0, 4:7], x[0, 10:13])  # blue first


def test_loss_matches_a_hand_computation():
    g = torch.Generator().manual_seed(3)
    pred, target = torch.rand(2, 3, 5, 6, generator=g) * 255, torch.rand(2, 3, 5, 6, generator=g) * 255
    motion = torch.randn(2, 2, 5, 6, generator=g) * 3
    total, terms = sdcnet_loss(pred, target, motion)
    p, t, m = pred.double(), target.double(), motion.double()
    color = sum(abs(p[b, c, y, x] / 255 - t[b, c, y, x] / 255) for b in range(2) for c in range(3) for y in range(5)
                for x in range(6)) / (2 * 3 * 5 * 6)
    gx = sum(abs(abs(p[b, c, y, x + 1] - p[b, c, y, x]) - abs(t[b, c, y, x + 1] - t[b, c, y, x]))
             for b in range(2) for c in range(3) for y in range(5) for x in range(5)) / (2 * 3 * 5 * 5)
    gy = sum(abs(abs(p[b, c, y + 1, x] - p[b, c, y, x]) - abs(t[b, c, y + 1, x] - t[b, c, y, x]))
             for b in range(2) for c in range(3) for y in range(4) for x in range(6)) / (2 * 3 * 4 * 6)
    sx = sum(abs(m[b, c, y, x + 1] - m[b, c, y, x]) for b in range(2) for c in range(2) for y in range(5)
             for x in range(5)) / (2 * 2 * 5 * 5)
    sy = sum(abs(m[b, c, y + 1, x] - m[b, c, y, x]) for b in range(2) for c in range(2) for y in range(4)
             for x in range(6)) / (2 * 2 * 4 * 6)
    assert math.isclose(terms["color"].item(), color.item(), rel_tol=1e-6)
    assert math.isclose(terms["color_gradient"].item(), (gx + gy).item(), rel_tol=1e-6)
    assert math.isclose(terms["flow_smoothness"].item(), (sx + sy).item(), rel_tol=1e-6)
    expected = 0.7 * color + 0.2 * (gx + gy) + 0.1 * (sx + sy)
    assert math.isclose(total.item(), expected.item(), rel_tol=1e-6)
    # the model's loss is this function of its own prediction and motion
    model = tiny()
    past, target = clip()
    out = model(past, labels=target, input_flows=flows_for(2, 1))
    torch.testing.assert_close(out.loss, sdcnet_loss(out.predicted_frame, target, out.motion)[0])


def test_init_follows_the_reference_and_the_full_model_starts_from_the_flow_only_weights():
    flow_only, full = tiny("sdcnet2d-tiny", seed=5), tiny("sdcnet-tiny", seed=5)
    full_state = full.state_dict()
    for key, value in flow_only.state_dict().items():
        assert torch.equal(full_state[key], value), key
    convs = [m for m in flow_only.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:  # Xavier-uniform weights, U(0, 1) biases
        fan_in, fan_out = conv.weight[0].numel(), conv.weight.shape[0] * conv.weight[0, 0].numel()
        assert conv.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out)) + 1e-7
        assert conv.bias.min() >= 0 and conv.bias.max() <= 1 and conv.bias.std() > 0.1
    for deconv in (m for m in flow_only.modules() if isinstance(m, nn.ConvTranspose2d)):  # PyTorch's default
        bound = 1 / math.sqrt(deconv.weight.shape[1] * 16)
        assert deconv.bias.abs().max() <= bound and deconv.bias.min() < 0
        assert deconv.weight.abs().max() <= bound + 1e-7
    head = full.final_kernel
    assert torch.count_nonzero(head.weight) == 0
    weights = head.bias[:3].softmax(0)
    torch.testing.assert_close(weights[1], torch.tensor(KERNEL_CENTRE_INIT))


def test_full_model_with_k1_is_exactly_the_flow_only_warp():
    flow_only = tiny("sdcnet2d-tiny", seed=2)
    k1 = SDCNetForFramePrediction(get_config("sdcnet-tiny", kernel_size=1)).eval()
    missing, unexpected = k1.load_state_dict(flow_only.state_dict(), strict=False)
    assert set(missing) == {"final_kernel.weight", "final_kernel.bias"} and not unexpected
    with torch.no_grad():
        k1.final_kernel.weight.normal_()  # any kernel logits: one tap's softmax is 1
    past, target = clip(seed=4)
    flows = flows_for(2, 1)
    a, b = flow_only(past, labels=target, input_flows=flows), k1(past, labels=target, input_flows=flows)
    assert torch.equal(b.motion, a.motion) and torch.equal(b.kernels, torch.ones(2, 2, H, W))
    torch.testing.assert_close(b.predicted_frame, a.predicted_frame, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.predicted_frame, warp(past[:, -1], a.motion), rtol=0, atol=0)


def test_reconstruction_model_sees_the_target_and_warps_the_second_to_last_frame():
    model = tiny("sdcnet2d-recon", base_width=8, seed=1)
    assert isinstance(model, SDCNetForFramePrediction) and model.config.num_input_channels == 13
    recon = SDCNet2DRecon(model.config).eval()
    recon.load_state_dict(model.state_dict())
    past, target = clip()
    flows = flows_for(2, 2)  # the target is the third frame the network sees
    out = recon(past, labels=target, input_flows=flows)
    torch.testing.assert_close(out.predicted_frame, warp(past[:, -1], out.motion), rtol=0, atol=0)
    changed = recon(past, labels=target.flip(-1), input_flows=flows)
    assert not torch.allclose(changed.motion, out.motion)  # the target is an input
    with pytest.raises(ValueError, match="reconstructs a frame it is given: pass labels"):
        recon(past, input_flows=flows)


def test_flows_come_from_the_flow_source_in_the_reference_direction():
    model = tiny("sdcnet2d-tiny")
    past, target = clip()
    flows = model.compute_flows(past)
    from adlr_hf.layers.flow import build_flow_source

    expected = build_flow_source("opencv-dis")(past[:, 1], past[:, 0])  # flow(I_{i+1}, I_i)
    torch.testing.assert_close(flows[:, 0], expected)
    torch.testing.assert_close(model(past, labels=target).loss, model(past, labels=target, input_flows=flows).loss)


def test_a_frozen_flow_network_is_neither_a_parameter_nor_saved(tmp_path):
    from torchvision.models.optical_flow import raft_small

    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)
    model = tiny("sdcnet2d-tiny", flow_source="raft-small", flow_weights=str(weights))
    keys, count = set(model.state_dict()), sum(p.numel() for p in model.parameters())
    frames = nn.functional.interpolate(clip(batch=1)[0][0], size=(128, 128), mode="bilinear")[None]
    flows = model.compute_flows(frames)
    assert flows.shape == (1, 1, 2, 128, 128) and not flows.requires_grad
    assert set(model.state_dict()) == keys and sum(p.numel() for p in model.parameters()) == count
    assert not any(p.requires_grad for p in model._flow_source.model.parameters())


def test_rollout_feeds_clamped_predictions_back():
    model = tiny()
    past, _ = clip(batch=1)
    rolled = model.rollout(past, num_future_frames=3)
    assert rolled.shape == (1, 3, 3, H, W) and rolled.min() >= 0 and rolled.max() <= 255
    frames = past
    for step in range(3):
        predicted = model(frames).predicted_frame.clamp(0, 255)
        torch.testing.assert_close(rolled[:, step], predicted, rtol=0, atol=1e-4)
        frames = torch.cat([frames[:, 1:], predicted[:, None]], 1)
    with pytest.raises(ValueError, match="num_future_frames=0"):
        model.rollout(past, 0)
    with pytest.raises(ValueError, match="cannot roll out"):
        tiny("sdcnet2d-recon", base_width=8).rollout(past, 1)


@pytest.mark.parametrize("name", ["sdcnet-tiny", "sdcnet2d-recon"])
def test_label_propagation_keeps_label_values_and_follows_the_predicted_motion(name):
    model = tiny(name, **({"base_width": 8} if name == "sdcnet2d-recon" else {}))
    past, target = clip(batch=1, seed=6)
    labels = torch.randint(0, 19, (1, H, W), generator=torch.Generator().manual_seed(0))
    labels[:, :, :5] = 255  # an ignore label
    future = torch.stack([target, target.flip(-1)], 1) if model.config.reconstruction else None
    frames, propagated = model.propagate_labels(past, labels, num_steps=2, future_frames=future)
    assert frames.shape == (1, 2, 3, H, W) and propagated.shape == (1, 2, H, W) and propagated.dtype == labels.dtype
    assert set(propagated.unique().tolist()) <= set(labels.unique().tolist())
    if model.config.reconstruction:
        motion = model(past, labels=target).motion
        expected = warp(past[:, -1], motion).clamp(0, 255)
    else:
        motion = model(past).motion
        expected = model(past).predicted_frame.clamp(0, 255)
    torch.testing.assert_close(propagated[:, 0], warp(labels[:, None], motion, mode="nearest")[:, 0])
    torch.testing.assert_close(frames[:, 0], expected, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="label_map must be"):
        model.propagate_labels(past, labels[:, :10], future_frames=future[:, :1] if future is not None else None)


def test_save_and_auto_load_round_trip(tmp_path):
    for name, cls in (("sdcnet-tiny", SDCNetForFramePrediction), ("sdcnet2d-tiny", SDCNet2D)):
        torch.manual_seed(0)
        model = AutoModel.from_config(get_config(name)).eval()  # the class named by the config's architectures
        assert type(model) is cls
        model.save_pretrained(tmp_path / name)
        config = AutoConfig.from_pretrained(tmp_path / name)
        assert isinstance(config, SDCNetConfig) and config.flow_mean == model.config.flow_mean
        loaded = AutoModel.from_pretrained(tmp_path / name).eval()
        assert type(loaded) is cls
        past, target = clip()
        flows = flows_for(2, 1)
        torch.testing.assert_close(loaded(past, input_flows=flows).predicted_frame,
                                   model(past, input_flows=flows).predicted_frame, rtol=0, atol=0)
    recon = SDCNet2DRecon(get_config("sdcnet2d-recon", base_width=8))
    recon.save_pretrained(tmp_path / "recon")
    assert type(AutoModel.from_pretrained(tmp_path / "recon")) is SDCNet2DRecon
    general = SDCNetForFramePrediction(get_config("sdcnet2d-tiny"))  # the general class of a flow-only config
    general.save_pretrained(tmp_path / "general")
    assert type(AutoModel.from_pretrained(tmp_path / "general")) is SDCNetForFramePrediction


def test_bad_inputs_and_configs_fail_clearly():
    model = tiny()
    past, target = clip()
    with pytest.raises(ValueError, match="sequence_length=2 past frames; got 3"):
        model(torch.cat([past, past[:, :1]], 1))
    with pytest.raises(ValueError, match="multiples of 64; pad them with the video processor"):
        model(past[..., :60, :])
    with pytest.raises(ValueError, match="labels must be the target frames"):
        model(past, labels=target[:, :, :32])
    with pytest.raises(ValueError, match=r"input_flows must be \(2, 1, 2, 64, 128\)"):
        model(past, input_flows=flows_for(2, 2))
    with pytest.raises(ValueError, match="pixel_values_videos must be"):
        model(past[:, 0])
    with pytest.raises(ValueError, match="has no attention layers"):
        model(past, output_attentions=True)
    with pytest.raises(ValueError, match="flow_source 'precomputed': pass input_flows"):
        tiny(flow_source="precomputed")(past)
    with pytest.raises(ValueError, match="flow_source is 'none'"):
        tiny(flow_source="none")(past, input_flows=flows_for(2, 1))
    assert tiny(flow_source="none")(past).predicted_frame.shape == (2, 3, H, W)
    with pytest.raises(ValueError, match="SDCNet2D is the flow-only prediction model"):
        SDCNet2D(get_config("sdcnet-tiny"))
    with pytest.raises(ValueError, match="SDCNet2DRecon needs reconstruction=True"):
        SDCNet2DRecon(get_config("sdcnet2d-tiny"))
    for bad, message in ((dict(sequence_length=1), "sequence_length=1"), (dict(flow_source="flownet2"), "flownet2"),
                         (dict(base_width=10), "multiple of 4"), (dict(flow_std=[1.0, 0.0]), "positive"),
                         (dict(flow_weights="w.pth"), "only applies to flow_source 'raft"),
                         (dict(input_channel_order="rbg"), "'rgb' or 'bgr'"), (dict(kernel_size=-1), "kernel_size")):
        with pytest.raises(ValueError, match=message):
            SDCNetConfig(**bad)


def test_tp_plan_pairs_columns_and_rows_and_check_tp_size_names_the_split():
    from adlr_hf.parallel.plan import full_tp_plan, match_plan

    model = tiny()
    matched = match_plan(dict(model.named_modules()), full_tp_plan(model))
    assert matched == {**{f"sdcnet.conv{s}.conv": "conv_colwise" for s in (3, 4, 5, 6)},
                       **{f"sdcnet.conv{s}_1.conv": "conv_rowwise" for s in (3, 4, 5, 6)}}
    model.config.check_tp_size(4)
    with pytest.raises(ValueError, match="tp_size=3 does not divide the 32 channels of conv3"):
        model.config.check_tp_size(3)
