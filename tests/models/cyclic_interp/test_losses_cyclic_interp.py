"""Every loss term of NVIDIA/unsupervised-video-interpolation (arXiv 1906.05928; `HJSuperSloMo.forward`,
`CycleHJSuperSloMo.forward`) against a direct computation from the model's outputs: reconstruction, the 4 (supervised)
and 8 (cycle) warping terms, smoothness over 1 and 3 flow nets, the perceptual term on given features, the
pseudo-supervised term of a teacher, and the weighted total; the cycle runs f(I0, I1, t), f(I1, I2, t) and
f(P01, P12, 1 - t). In float64, so the comparisons are tight."""

import torch
from torch import nn

from adlr_hf import CyclicInterpForFrameInterpolation, get_config

H, W = 32, 64
MEAN = torch.tensor([109.93, 109.167, 101.455], dtype=torch.float64).view(3, 1, 1)


def frames(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2 * count, 3, H // 4, W // 4, generator=g, dtype=torch.float64) * 255
    return nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False).view(2, count, 3, H, W)


def tiny(seed=0):
    torch.manual_seed(seed)
    return CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny")).double().eval()


def warp(image, flow):
    """The reference's MyResample2D written out: sample at (x + u, y + v), normalised 2x/(W-1) - 1 (align_corners
    semantics), bilinear, zeros outside."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=flow.dtype), torch.arange(W, dtype=flow.dtype), indexing="ij")
    grid = torch.stack((2 * (xs + flow[:, 0]) / (W - 1) - 1, 2 * (ys + flow[:, 1]) / (H - 1) - 1), -1)
    return nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def l1(a, b):
    return (a - b).abs().mean()


def smooth(flow):
    return l1(flow[:, :, :, :-1], flow[:, :, :, 1:]) + l1(flow[:, :, :-1, :], flow[:, :, 1:, :])


def raw_warps(frame0, frame1, flow_01, flow_10, t):
    """g(I0, F̂t→0), g(I1, F̂t→1) with the approximated time-t flows written out."""
    return (warp(frame0, -(1 - t) * t * flow_01 + t * t * flow_10),
            warp(frame1, (1 - t) ** 2 * flow_01 - t * (1 - t) * flow_10))


def features():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 3)).double()


def test_supervised_terms_and_total_against_a_direct_computation():
    model, perceptual = tiny(), features()
    model.set_perceptual_network(perceptual)
    clip, target = frames(2), frames(1, seed=1)[:, 0]
    t = 0.3
    out = model(clip, timesteps=[t], labels=target)
    n0, n1, tgt = clip[:, 0] - MEAN, clip[:, 1] - MEAN, target - MEAN
    flow_01, flow_10 = out.flows[:, 0], out.flows[:, 1]
    predicted = out.interpolated_frames[:, 0] - MEAN
    w0, w1 = raw_warps(n0, n1, flow_01, flow_10, t)
    expected = {
        "reconstruction": l1(predicted, tgt),
        "warping": l1(w0, tgt) + l1(w1, tgt) + l1(warp(n0, flow_10), n1) + l1(warp(n1, flow_01), n0),
        "smoothness": smooth(flow_10) + smooth(flow_01),
        "perceptual": ((perceptual(predicted / 255) - perceptual(tgt / 255)) ** 2).mean(),
    }
    assert out.loss_terms.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(out.loss_terms[key], value, rtol=1e-9, atol=1e-9, msg=key)
    total = 0.8 * expected["reconstruction"] + 0.4 * expected["warping"] + 1.0 * expected["smoothness"] + \
        0.005 * expected["perceptual"]
    torch.testing.assert_close(out.loss, total, rtol=1e-12, atol=1e-9)
    # without features there is no perceptual term in the terms or the total
    model.set_perceptual_network(None)
    plain = model(clip, timesteps=[t], labels=target)
    assert "perceptual" not in plain.loss_terms
    torch.testing.assert_close(plain.loss, total - 0.005 * expected["perceptual"], rtol=1e-12, atol=1e-9)


def test_several_timesteps_average_the_per_t_terms_and_count_the_pair_once():
    model = tiny()
    clip, targets = frames(2), frames(2, seed=1)
    out = model(clip, timesteps=[0.25, 0.75], labels=targets)
    n0, n1 = clip[:, 0] - MEAN, clip[:, 1] - MEAN
    flow_01, flow_10 = out.flows[:, 0], out.flows[:, 1]
    per_t = []
    for i, t in enumerate((0.25, 0.75)):
        tgt = targets[:, i] - MEAN
        w0, w1 = raw_warps(n0, n1, flow_01, flow_10, t)
        per_t.append((l1(out.interpolated_frames[:, i] - MEAN, tgt), l1(w0, tgt) + l1(w1, tgt)))
    torch.testing.assert_close(out.loss_terms["reconstruction"], (per_t[0][0] + per_t[1][0]) / 2)
    torch.testing.assert_close(out.loss_terms["warping"], (per_t[0][1] + per_t[1][1]) / 2 + l1(warp(n0, flow_10), n1)
                               + l1(warp(n1, flow_01), n0))
    torch.testing.assert_close(out.loss_terms["smoothness"], smooth(flow_10) + smooth(flow_01))


def test_cycle_runs_at_t_t_and_1_minus_t_and_every_term_matches(monkeypatch):
    model, teacher, perceptual = tiny(), tiny(seed=1), features()
    model.set_teacher(teacher, 0.8)
    model.set_perceptual_network(perceptual)
    triplet = frames(3)
    t = 0.3
    seen = []
    original = type(model).interpolate_at

    def spy(self, frame0, frame1, times, flows=None):
        seen.append(("student" if self is model else "teacher", [round(v, 12) for v in times.tolist()]))
        return original(self, frame0, frame1, times, flows)

    monkeypatch.setattr(type(model), "interpolate_at", spy)
    out = model(triplet, timesteps=[t], labels=triplet[:, 1])
    # P01, P12, then I1 at 1 - t between them; the teacher's pseudo-targets at t
    assert seen == [("student", [0.3, 0.3])] * 2 + [("student", [0.7, 0.7])] + [("teacher", [0.3, 0.3])] * 2
    monkeypatch.undo()
    n0, n1, n2 = (triplet[:, i] - MEAN for i in range(3))
    p01, p12 = out.interpolated_frames[:, 0] - MEAN, out.interpolated_frames[:, 1] - MEAN
    # P01 = f(I0, I1, t), P12 = f(I1, I2, t) and Î1 = f(P01, P12, 1 - t), each as a plain interpolation call
    first, second = model(triplet[:, :2], timesteps=[t]), model(triplet[:, 1:], timesteps=[t])
    torch.testing.assert_close(out.interpolated_frames[:, 0], first.interpolated_frames[:, 0])
    torch.testing.assert_close(out.interpolated_frames[:, 1], second.interpolated_frames[:, 0])
    again = model(out.interpolated_frames, timesteps=[1 - t])
    torch.testing.assert_close(out.cycle_frame, again.interpolated_frames[:, 0], rtol=1e-9, atol=1e-9)
    recon = out.cycle_frame - MEAN
    c01, c10 = out.flows[:, 0], out.flows[:, 1]  # the cycle run's flows between P01 and P12
    a01, a10 = first.flows[:, 0], first.flows[:, 1]
    b01, b10 = second.flows[:, 0], second.flows[:, 1]
    w0, w1 = raw_warps(p01, p12, c01, c10, 1 - t)
    t01 = teacher(triplet[:, :2], timesteps=[t]).interpolated_frames[:, 0] - MEAN
    t12 = teacher(triplet[:, 1:], timesteps=[t]).interpolated_frames[:, 0] - MEAN
    expected = {
        "reconstruction": l1(recon, n1),
        "warping": (l1(w0, n1) + l1(w1, n1) + l1(warp(p01, c10), p12) + l1(warp(p12, c01), p01)
                    + l1(warp(n0, a10), n1) + l1(warp(n1, a01), n0) + l1(warp(n1, b10), n2) + l1(warp(n2, b01), n1)),
        "smoothness": smooth(c10) + smooth(c01) + smooth(a10) + smooth(a01) + smooth(b10) + smooth(b01),
        "perceptual": ((perceptual(recon / 255) - perceptual(n1 / 255)) ** 2).mean(),
        "pseudo_supervised": l1(p01, t01) + l1(p12, t12),
    }
    assert out.loss_terms.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(out.loss_terms[key], value, rtol=1e-9, atol=1e-9, msg=key)
    total = 0.8 * expected["reconstruction"] + 0.4 * expected["warping"] + expected["smoothness"] + \
        0.005 * expected["perceptual"] + 0.8 * expected["pseudo_supervised"]
    torch.testing.assert_close(out.loss, total, rtol=1e-12, atol=1e-9)
    # the teacher's weight is the one attached; without a teacher the term is absent (cycle consistency only)
    model.set_teacher(teacher, 0.0)
    torch.testing.assert_close(model(triplet, timesteps=[t], labels=triplet[:, 1]).loss,
                               total - 0.8 * expected["pseudo_supervised"], rtol=1e-12, atol=1e-9)
    model.set_teacher(None)
    assert "pseudo_supervised" not in model(triplet, timesteps=[t], labels=triplet[:, 1]).loss_terms
