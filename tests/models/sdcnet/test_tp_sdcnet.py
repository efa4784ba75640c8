"""SDC-Net at TP=2 equals TP=1 (two gloo ranks): the plan's column/row conv pairs give the same motion, kernels,
prediction, loss and gradients, a TP=2 save is the TP=1 save, and `from_pretrained(tp_size=2)` shards on load."""

import copy

import pytest
import torch

from dist_utils import assert_close, assert_saves_match, expected_grad_shard, run_ranks

pytestmark = pytest.mark.slow



def _check(rank, group, name, tmp):
    from transformers import AutoModel

    from adlr_hf import SDCNetForFramePrediction, get_config
    from adlr_hf.parallel import apply_tp_plan, is_tensor_parallel

    torch.manual_seed(0)
    # float64: warping 0..255 frames turns float32 summation-order differences of the motion into ~1e-3 grey levels
    reference = SDCNetForFramePrediction(get_config(name, base_width=8)).double()
    model = copy.deepcopy(reference)
    apply_tp_plan(model, group)
    assert is_tensor_parallel(model)
    assert {type(m).__name__ for m in model.modules()} >= {"ColumnParallelConv2d", "RowParallelConv2d"}
    g = torch.Generator().manual_seed(1)
    frames_seen = model.config.num_input_frames
    past = torch.rand(2, 2, 3, 64, 128, generator=g, dtype=torch.float64) * 255
    target = torch.rand(2, 3, 64, 128, generator=g, dtype=torch.float64) * 255
    flows = torch.randn(2, frames_seen - 1, 2, 64, 128, generator=g, dtype=torch.float64) * 2
    ref_out = reference(past, labels=target, input_flows=flows)
    out = model(past, labels=target, input_flows=flows)
    for field in ("motion", "predicted_frame", "kernels", "loss"):
        if getattr(ref_out, field) is not None:
            assert_close(getattr(out, field), getattr(ref_out, field).detach(), rtol=1e-10, atol=1e-9,
                         what=f"{name} {field}")
    ref_out.loss.backward()
    out.loss.backward()
    ref_params = dict(reference.named_parameters())
    for pname, param in model.named_parameters():
        expected = expected_grad_shard(model, pname, ref_params[pname].grad, rank)
        assert_close(param.grad, expected, rtol=1e-9, atol=1e-10, what=f"{name} grad of {pname}")
    assert_saves_match(model, reference, f"{tmp}/{name}", rank, name)
    loaded = AutoModel.from_pretrained(f"{tmp}/{name}-tp1", tp_size=2, dtype=torch.float64)
    assert is_tensor_parallel(loaded)
    with torch.no_grad():
        assert_close(loaded(past, labels=target, input_flows=flows).predicted_frame,
                     ref_out.predicted_frame.detach(), rtol=1e-10, atol=1e-9, what=f"{name} loaded at tp_size=2")


def _worker(rank, tmp):
    from adlr_hf.parallel import init_parallel

    state = init_parallel(tp_size=2)
    for name in ("sdcnet-tiny", "sdcnet2d-recon"):
        _check(rank, state.tp_group, name, tmp)


def test_sdcnet_tp2_matches_tp1(tmp_path):
    run_ranks(_worker, str(tmp_path))
