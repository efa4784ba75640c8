"""Flow sources for SDC-Net (arXiv 1811.00684; NVIDIA/semantic-segmentation branch sdcnet runs FlowNet2 on
(I_{i+1}, I_i)): OpenCV flow on real frames and its direction, RAFT's refusal without weights and its size rule,
precomputed .flo flows, normalisation statistics, and bad inputs."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlr_hf.data.flo import read_flo
from adlr_hf.layers.flow import (
    FLOW_SOURCES,
    REFERENCE_FLOW_STATS,
    FlowStats,
    NoFlow,
    PrecomputedFlow,
    build_flow_source,
    denormalize_flow,
    flow_file,
    flow_statistics,
    normalize_flow,
    precompute_flows,
)
from adlr_hf.layers.warp import warp

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BEDROOM = DATA / "video-frames" / "sam2-bedroom"
needs_data = pytest.mark.skipif(not BEDROOM.is_dir(), reason=f"real frames not found at {BEDROOM} "
                                "(../shared/data is absent)")


def frame(index: int, size=(480, 272)) -> torch.Tensor:
    """Frame `index` of the bedroom clip, resized (W, H) to keep the test fast, as (3, H, W) uint8 RGB."""
    with Image.open(BEDROOM / f"{index:05d}.jpg") as img:
        return torch.from_numpy(np.array(img.convert("RGB").resize(size, Image.BILINEAR))).permute(2, 0, 1)


@needs_data
@pytest.mark.parametrize("name", ["opencv-dis", "opencv-farneback"])
def test_opencv_flow_follows_the_reference_direction(name):
    """flow(I_{i+1}, I_i) warps I_i onto I_{i+1}: better than no warp, and better than the reversed flow."""
    source = build_flow_source(name)
    prev, nxt = frame(10).float(), frame(11).float()
    flow = source(nxt[None], prev[None])
    assert flow.shape == (1, 2, 272, 480) and flow.dtype == torch.float32
    warped = warp(prev[None], flow)
    err_warp = (warped - nxt).abs().mean()
    err_none = (prev - nxt).abs().mean()
    err_reversed = (warp(prev[None], -flow) - nxt).abs().mean()
    assert flow.abs().mean() > 0.5  # the clip moves: a real flow, not zeros
    assert err_warp < 0.6 * err_none and err_warp < 0.6 * err_reversed


@needs_data
def test_unbatched_and_uint8_inputs_give_the_same_flow():
    source = build_flow_source("opencv-dis", preset="fast")
    a, b = frame(3, (160, 96)), frame(4, (160, 96))
    batched = source(a[None].float(), b[None].float())
    single = source(a, b)
    assert single.shape == (2, 96, 160) and torch.equal(single, batched[0])


def test_missing_opencv_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        build_flow_source("opencv-dis")


def _raft_weights(tmp_path, variant="small") -> Path:
    from torchvision.models.optical_flow import raft_large, raft_small

    torch.manual_seed(0)
    path = tmp_path / f"raft_{variant}.pth"
    torch.save((raft_small if variant == "small" else raft_large)(weights=None).state_dict(), path)
    return path


def test_raft_refuses_to_run_without_weights(tmp_path):
    for name in ("raft-small", "raft-large"):
        with pytest.raises(ValueError, match="needs trained weights: a randomly initialised RAFT"):
            build_flow_source(name)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_flow_source("raft-small", weights=tmp_path / "nope.pth")


def test_raft_loads_a_weights_file_and_checks_sizes(tmp_path):
    source = build_flow_source("raft-small", weights=_raft_weights(tmp_path), num_flow_updates=2)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(1, 3, 128, 136, generator=g) * 255 for _ in range(2))
    flow = source(a, b)
    assert flow.shape == (1, 2, 128, 136) and torch.isfinite(flow).all()
    with pytest.raises(ValueError, match=r"frames of 130x136 \(HxW\): RAFT needs H and W divisible by 8; crop to "
                                         r"128x136 or pad to 136x136"):
        source(torch.zeros(1, 3, 130, 136), torch.zeros(1, 3, 130, 136))
    with pytest.raises(ValueError, match=r"raft-small needs H and W of at least 128"):
        source(a[..., :64, :], b[..., :64, :])


def test_raft_rejects_weights_of_the_other_variant(tmp_path):
    with pytest.raises(ValueError, match="is it a raft_small file"):
        build_flow_source("raft-large", weights=_raft_weights(tmp_path, "small"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be loaded with torch.load"):
        build_flow_source("raft-small", weights=bad)


def test_precomputed_flows_round_trip(tmp_path):
    clip = tmp_path / "frames" / "clip"
    clip.mkdir(parents=True)
    g = np.random.default_rng(0)
    base = g.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for i in range(3):  # a texture moving right by 2 px per frame
        Image.fromarray(np.roll(base, 2 * i, axis=1)).save(clip / f"f{i}.png")
    source = build_flow_source("opencv-farneback")
    written = precompute_flows(tmp_path / "frames", tmp_path / "flows", source)
    assert [p.name for p in written] == ["f1_to_f0.flo", "f2_to_f1.flo"]
    assert written[0] == flow_file(tmp_path / "flows", "clip", "f1.png", "f0.png")
    frames = [torch.from_numpy(np.array(Image.open(clip / f"f{i}.png"))).permute(2, 0, 1) for i in range(3)]
    direct = source(frames[2], frames[1])
    assert np.array_equal(read_flo(written[1]), direct.permute(1, 2, 0).numpy())
    assert precompute_flows(tmp_path / "frames", tmp_path / "flows", source) == []  # kept, not rewritten
    pre = build_flow_source("precomputed", root=tmp_path / "flows")
    loaded = pre(torch.stack(frames[1:]), torch.stack(frames[:2]),
                 paths=[pre.path("clip", "f1.png", "f0.png"), pre.path("clip", "f2.png", "f1.png")])
    assert torch.equal(loaded[1], direct)
    assert loaded[:, 0, 8:-8, 8:-8].mean() == pytest.approx(-2.0, abs=0.3)  # I_{i+1}(x) = I_i(x - 2)
    with pytest.raises(ValueError, match="needs the .flo files of the pairs"):
        pre(frames[1], frames[0])
    with pytest.raises(ValueError, match=r"flow files are 56x40 but the frames 50x40"):
        pre(frames[1][..., :50], frames[0][..., :50], paths=[written[0]])
    with pytest.raises(FileNotFoundError, match="precompute_flows"):
        build_flow_source("precomputed", root=tmp_path / "missing")


def test_reference_normalisation_and_its_inverse():
    flow = torch.randn(2, 2, 5, 6, dtype=torch.float64) * 10
    normed = normalize_flow(flow)
    assert torch.allclose(normed[:, 0], (flow[:, 0] + 0.944) / (3 * 13.77))
    assert torch.allclose(normed[:, 1], (flow[:, 1] + 1.231) / (3 * 7.47))
    assert torch.allclose(denormalize_flow(normed), flow)
    assert REFERENCE_FLOW_STATS.mean == (-0.944, -1.231) and REFERENCE_FLOW_STATS.std == (13.77, 7.47)


def test_flow_statistics_stream_over_tensors_and_flo_arrays():
    g = torch.Generator().manual_seed(0)
    flows = [torch.randn(2, 2, 8, 9, generator=g) * 3 + 1, torch.randn(2, 7, 5, generator=g) * 5 - 2]
    flo_array = (torch.randn(4, 6, 2, generator=g) * 2).numpy()  # (H, W, 2), as read_flo returns
    flo_with_unknown = flo_array.copy()
    flo_with_unknown[0, 0] = [1e9, 1e10]
    stats = flow_statistics(flows + [flo_with_unknown])
    u = np.concatenate([flows[0][:, 0].flatten(), flows[1][0].flatten(), flo_array[..., 0].flatten()[1:]])
    v = np.concatenate([flows[0][:, 1].flatten(), flows[1][1].flatten(), flo_array[..., 1].flatten()[1:]])
    assert stats.mean == pytest.approx((u.astype(np.float64).mean(), v.astype(np.float64).mean()), rel=1e-12)
    assert stats.std == pytest.approx((u.astype(np.float64).std(), v.astype(np.float64).std()), rel=1e-12)
    assert stats.count == u.size
    assert FlowStats.from_dict(stats.to_dict()) == stats
    normed = normalize_flow(flows[0], stats)
    assert torch.allclose(denormalize_flow(normed, stats), flows[0], atol=1e-5)


def test_none_source_and_the_registry():
    source = build_flow_source("none")
    assert isinstance(source, NoFlow) and not source.provides_flow
    assert source(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)) is None
    assert set(FLOW_SOURCES) == {"opencv-dis", "opencv-farneback", "raft-small", "raft-large", "precomputed", "none"}
    with pytest.raises(ValueError, match=r"flow_source='flownet2' is not one of"):
        build_flow_source("flownet2")
    with pytest.raises(ValueError, match="takes no options"):
        build_flow_source("none", weights="x")
    with pytest.raises(ValueError, match=r"unknown options \['levelz'\]"):
        build_flow_source("opencv-farneback", levelz=3)
    assert isinstance(PrecomputedFlow(), PrecomputedFlow)


@pytest.mark.parametrize("first, second, match", [
    (np.zeros((8, 8, 3)), torch.zeros(3, 8, 8), "must be a torch tensor"),
    (torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), r"must be RGB \(B, 3, H, W\)"),
    (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), "must have the same shape"),
    (torch.full((1, 3, 8, 8), 300.0), torch.zeros(1, 3, 8, 8), r"values in \[300, 300\]; flow sources take RGB in"),
    (torch.full((1, 3, 8, 8), -1.0), torch.zeros(1, 3, 8, 8), "undo any mean/std normalisation"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.int32), torch.zeros(1, 3, 8, 8, dtype=torch.int32), "uint8 or floating"),
])
def test_bad_frames(first, second, match):
    with pytest.raises(ValueError, match=match):
        build_flow_source("opencv-dis")(first, second)


def test_bad_statistics_inputs():
    with pytest.raises(ValueError, match="no flows were given"):
        flow_statistics([])
    with pytest.raises(ValueError, match=r"flow 0 must be an \(H, W, 2\) array"):
        flow_statistics([np.zeros((2, 4, 4))])
    with pytest.raises(ValueError, match="must be positive"):
        flow_statistics([torch.zeros(2, 4, 4)])
    with pytest.raises(ValueError, match=r"flow must be a \(B, 2, H, W\) or \(2, H, W\) tensor"):
        normalize_flow(torch.zeros(3, 4, 4))
