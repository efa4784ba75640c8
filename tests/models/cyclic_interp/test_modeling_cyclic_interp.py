"""Super SloMo (arXiv 1712.00080) as trained in NVIDIA/unsupervised-video-interpolation (arXiv 1906.05928): the
reference's widths and parameter count, the time-t flow approximation and the synthesis against their formulas on
hand-made tensors, t = 0 and t = 1 giving the inputs back when the flows are zero, timesteps, hidden states, the
frozen attachments (teacher, VGG features) kept out of parameters, state dict, optimizer and device moves, and the
clear errors for bad input."""

import pytest
import torch
from torch import nn
from transformers import AutoModel

from adlr_hf import CyclicInterpConfig, CyclicInterpForFrameInterpolation, get_config
from adlr_hf.models.cyclic_interp.modeling_cyclic_interp import approximate_time_flows, synthesize

H, W = 32, 64


def frames(batch=2, count=2, seed=0, height=H, width=W):
    """Smooth random frames in [0, 255] (B, count, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch * count, 3, height // 4, width // 4, generator=g) * 255
    full = nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return full.view(batch, count, 3, height, width)


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    return CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny", **overrides)).eval()


def zero_flow_heads(model):
    """Every flow output (F0→1, F1→0 and the time-flow residuals) exactly zero."""
    with torch.no_grad():
        for net, names in ((model.flow_net, ("flow_01", "flow_10")), (model.interp_net, ("delta_t0", "delta_t1"))):
            for name in names:
                net.heads[name].weight.zero_()
                net.heads[name].bias.zero_()
    return model


def test_reference_widths_kernels_and_parameter_count():
    config = CyclicInterpConfig()
    assert config.level_channels == [32, 64, 128, 256, 512] and config.size_divisor == 32
    assert CyclicInterpConfig(flow_scale=2).size_divisor == 64
    with torch.device("meta"):
        model = CyclicInterpForFrameInterpolation(config)
    flow, interp = model.flow_net, model.interp_net
    assert [b.conv1.kernel_size[0] for b in flow.encoder] == [7, 5, 3, 3, 3]
    assert flow.encoder[0].conv1.in_channels == 6 and interp.encoder[0].conv1.in_channels == 16
    # decoder5 of the flow-interpolation net reads both bottlenecks: 512 + 512 channels
    assert flow.decoder[0].conv1.in_channels == 512 and interp.decoder[0].conv1.in_channels == 1024
    assert flow.refine.in_channels == 64 and interp.heads["visibility"].out_channels == 1
    # HJSuperSloMo holds 38,846,249 parameters besides its VGG16 (counted on the reference's module)
    assert sum(p.numel() for p in model.parameters()) == 38_846_249


def test_time_flow_approximation_and_synthesis_follow_the_formulas():
    g = torch.Generator().manual_seed(0)
    flow_01, flow_10 = torch.randn(3, 2, 4, 5, generator=g), torch.randn(3, 2, 4, 5, generator=g)
    t = torch.tensor([0.25, 0.5, 0.8])
    flow_t0, flow_t1 = approximate_time_flows(flow_01, flow_10, t)
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(flow_t0[i], -(1 - ti) * ti * flow_01[i] + ti * ti * flow_10[i])
        torch.testing.assert_close(flow_t1[i], (1 - ti) ** 2 * flow_01[i] - ti * (1 - ti) * flow_10[i])
    # linear motion F1→0 = -F0→1: Ft→0 = -t F0→1 and Ft→1 = (1 - t) F0→1
    flow_t0, flow_t1 = approximate_time_flows(flow_01, -flow_01, t)
    torch.testing.assert_close(flow_t0, -t.view(-1, 1, 1, 1) * flow_01)
    torch.testing.assert_close(flow_t1, (1 - t).view(-1, 1, 1, 1) * flow_01)
    warped0, warped1 = torch.rand(3, 3, 4, 5, generator=g), torch.rand(3, 3, 4, 5, generator=g)
    visibility = torch.rand(3, 1, 4, 5, generator=g)
    out = synthesize(warped0, warped1, visibility, t)
    for i, ti in enumerate(t.tolist()):
        a0, a1 = (1 - ti) * visibility[i], ti * (1 - visibility[i])
        torch.testing.assert_close(out[i], (a0 * warped0[i] + a1 * warped1[i]) / (a0 + a1 + 1e-10))
    torch.testing.assert_close(synthesize(warped0, warped1, torch.full_like(visibility, 0.5), torch.full((3,), 0.5)),
                               (warped0 + warped1) / 2)


def test_t0_and_t1_reproduce_the_inputs_when_flows_are_zero():
    model = zero_flow_heads(tiny()).double()  # float64: the warp's grid normalisation round-trips exactly
    clip = frames(count=2).double()
    normalized = model._normalize(clip)
    for t, expected in ((0.0, normalized[:, 0]), (1.0, normalized[:, 1])):
        run = model.interpolate_at(normalized[:, 0], normalized[:, 1], torch.full((2,), t))[0]
        # exact up to the blend's 1e-10 against a visibility near 0 or 1 (here up to 1 - 1e-6)
        torch.testing.assert_close(run.output, expected, rtol=1e-3, atol=1e-8)
    # in between, zero flows give the visibility-weighted blend of the unwarped inputs ...
    run, _, _, visibility, _ = model.interpolate_at(normalized[:, 0], normalized[:, 1], torch.full((2,), 0.3))
    torch.testing.assert_close(run.output, synthesize(normalized[:, 0], normalized[:, 1], visibility,
                                                      torch.full((2,), 0.3)), rtol=0, atol=1e-8)
    # ... and with V = 1/2 everywhere exactly the inputs at t = 0 and t = 1, and the linear blend in between
    with torch.no_grad():
        model.interp_net.heads["visibility"].weight.zero_()
        model.interp_net.heads["visibility"].bias.zero_()
    for t in (0.0, 0.3, 1.0):
        run = model.interpolate_at(normalized[:, 0], normalized[:, 1], torch.full((2,), t, dtype=torch.float64))[0]
        torch.testing.assert_close(run.output, (1 - t) * normalized[:, 0] + t * normalized[:, 1], rtol=0, atol=1e-7)


def test_forward_interpolates_any_timesteps_with_shapes_and_hidden_states():
    model = tiny()
    clip = frames()
    out = model(clip, timesteps=[0.25, 0.5, 0.75], output_hidden_states=True)
    assert out.loss is None and out.interpolated_frames.shape == (2, 3, 3, H, W)
    assert out.flows.shape == (2, 2, 2, H, W) and out.time_flows.shape == (2, 3, 2, 2, H, W)
    assert out.visibility.shape == (2, 3, 1, H, W) and ((out.visibility > 0) & (out.visibility < 1)).all()
    assert len(out.hidden_states) == 24  # 12 block outputs per U-Net
    assert out.hidden_states[5].shape == (2, 64, 1, 2)  # the flow net's bottleneck at 1/32
    assert out.hidden_states[-1].shape == (2, 3, 4, H, W)  # the interp net's refine output, per timestep
    # each timestep is the same computation as asking for it alone, and per-sample timesteps work
    alone = model(clip, timesteps=0.75).interpolated_frames[:, 0]
    torch.testing.assert_close(out.interpolated_frames[:, 2], alone)
    per_sample = model(clip, timesteps=torch.tensor([[0.25], [0.75]])).interpolated_frames[:, 0]
    torch.testing.assert_close(per_sample[1], alone[1])
    # no timesteps: the config's num_interp evenly spaced frames
    model.config.num_interp = 3
    torch.testing.assert_close(model(clip).interpolated_frames, out.interpolated_frames)
    assert model.interpolate(clip, [0.5]).shape == (2, 1, 3, H, W)


def test_flow_scale_downsamples_the_flow_net_and_scales_its_flows():
    model = tiny(flow_scale=2)
    clip = frames(height=64, width=128)
    out = model(clip, timesteps=[0.5], output_hidden_states=True)
    assert out.hidden_states[0].shape == (2, 4, 32, 64)  # the flow net sees half-size frames
    normalized = model._normalize(clip)
    x = nn.functional.interpolate(torch.cat((normalized[:, 0], normalized[:, 1]), 1), scale_factor=0.5,
                                  mode="bilinear", align_corners=False)
    heads, _, _ = model.flow_net(x)
    expected = 2 * nn.functional.interpolate(heads["flow_01"], scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.flows[:, 0], expected)


def test_rgb_max_scales_frames_in_and_out():
    model = tiny()
    clip = frames()
    unit = tiny(rgb_max=1.0)
    torch.testing.assert_close(unit(clip / 255, timesteps=[0.5]).interpolated_frames * 255,
                               model(clip, timesteps=[0.5]).interpolated_frames, rtol=1e-5, atol=1e-3)


def test_half_precision_models_warp_in_float32():
    from adlr_hf.models.cyclic_interp.losses_cyclic_interp import uvi_warp

    image = (torch.rand(1, 3, 4, 512) * 255).bfloat16()
    flow = torch.full((1, 2, 4, 512), 0.5, dtype=torch.bfloat16)
    halved = uvi_warp(image, flow)
    # bfloat16 pixel coordinates beyond x = 256 would be off by whole pixels; the warp itself runs in float32
    assert halved.dtype == torch.bfloat16 and torch.equal(halved, uvi_warp(image.float(), flow.float()).bfloat16())
    from adlr_hf.layers.warp import warp

    assert not torch.equal(warp(image, flow, padding_mode="zeros"), halved)  # what a bfloat16 warp would give


def test_teacher_and_features_stay_outside_the_model():
    model, teacher = tiny(), tiny(seed=1)
    features = nn.Sequential(nn.Conv2d(3, 4, 3))
    names = set(model.state_dict())
    count = len(list(model.parameters()))
    model.set_teacher(teacher, 0.5)
    model.set_perceptual_network(features)
    assert model.teacher is teacher and model.perceptual_network is features and model._teacher_weight == 0.5
    assert set(model.state_dict()) == names and len(list(model.parameters())) == count
    assert not any(m is teacher or m is features for m in model.modules())
    assert not teacher.training and not any(p.requires_grad for p in (*teacher.parameters(), *features.parameters()))
    # a device/dtype move of the model leaves them alone (they follow their inputs' device on use)
    model.double()
    assert next(teacher.parameters()).dtype == torch.float32
    model.set_teacher(None)
    assert model.teacher is None and model._teacher_weight == 0.0


def test_the_teacher_is_frozen_through_training_steps():
    from types import SimpleNamespace

    from adlr_hf.tasks import get_task

    model, teacher = tiny(), tiny(seed=1)
    model.train()
    model.set_teacher(teacher)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    optimizer = get_task("video-interpolation").build_optimizer(model, SimpleNamespace(lr=1e-3, weight_decay=1e-3))
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters()}
    assert not in_optimizer & {id(p) for p in teacher.parameters()}
    triplet = frames(count=3, seed=2)
    for _ in range(2):
        out = model(triplet, timesteps=[0.5], labels=triplet[:, 1])
        assert "pseudo_supervised" in out.loss_terms
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def test_save_and_load_through_auto_model(tmp_path):
    model = tiny()
    model.set_teacher(tiny(seed=1))
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is CyclicInterpForFrameInterpolation and loaded.teacher is None
    clip = frames()
    torch.testing.assert_close(loaded(clip).interpolated_frames, model(clip).interpolated_frames)


@pytest.mark.parametrize("call,message", [
    (lambda m: m(frames()[:, :1]), "must be \\(batch, 2, 3, H, W\\)"),
    (lambda m: m(frames(height=48)), "frames of 48x64 \\(HxW\\): H and W must be multiples of 32"),
    (lambda m: m(frames(), timesteps=[0.5, 1.0]), "strictly between 0 and 1.*\\[1.0\\]"),
    (lambda m: m(frames(), timesteps=0.0), "strictly between 0 and 1"),
    (lambda m: m(frames(), timesteps=torch.full((3, 1), 0.5)), "\\(batch, N\\) tensor with batch=2"),
    (lambda m: m(frames(), timesteps=[0.3, 0.6], labels=torch.zeros(2, 3, H, W)),
     "labels must be the true frames at the 2 timestep"),
    (lambda m: m(frames(count=3), timesteps=[0.3, 0.6]), "one timestep per sample"),
    (lambda m: m(frames(count=3), labels=torch.zeros(2, 3, 32, 32)), "the frame the cycle reconstructs"),
    (lambda m: m(frames(count=3), labels=frames()[:, 0], timesteps=[1.5]), "strictly between 0 and 1"),
    (lambda m: m.interpolate(frames(count=3)), "two frames per sample"),
    (lambda m: m.set_teacher(nn.Linear(2, 2)), "must be a CyclicInterpForFrameInterpolation"),
    (lambda m: m.set_teacher(m), "separate frozen copy"),
    (lambda m: m.set_teacher(tiny(), weight=-1), "weight=-1"),
])
def test_bad_inputs_fail_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny())


def test_bad_configs_fail_clearly():
    for kwargs, message in ((dict(flow_scale=1.5), "flow_scale=1.5"), (dict(base_width=0), "base_width=0"),
                            (dict(mean_pix=[1, 2]), "mean_pix"), (dict(num_interp=0), "num_interp=0")):
        with pytest.raises(ValueError, match=message):
            CyclicInterpConfig(**kwargs)
    with pytest.raises(ValueError, match="tp_size=3 does not divide base_width=4"):
        get_config("cyclic-interp-tiny").check_tp_size(3)
