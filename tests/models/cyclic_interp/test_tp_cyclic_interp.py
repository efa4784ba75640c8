"""Super SloMo at TP=2 equals TP=1 (two gloo ranks, float64): the plan's column/row conv pairs give the same
interpolated frames, flows, visibility, supervised loss and cycle loss (with a frozen, replicated teacher) and the
same gradients; a TP=2 save is the TP=1 save, and `from_pretrained(tp_size=2)` shards on load."""

import copy

import pytest
import torch

from dist_utils import assert_close, assert_saves_match, run_ranks

pytestmark = pytest.mark.slow


def _frames(count, seed):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2 * count, 3, 8, 16, generator=g, dtype=torch.float64) * 255
    full = torch.nn.functional.interpolate(coarse, size=(32, 64), mode="bilinear", align_corners=False)
    return full.view(2, count, 3, 32, 64)


def _worker(rank, tmp):
    from transformers import AutoModel

    from adlr_hf import CyclicInterpForFrameInterpolation, get_config
    from adlr_hf.parallel import apply_tp_plan, init_parallel, is_tensor_parallel
    from adlr_hf.parallel.layers import _ParallelModule
    from adlr_hf.parallel.sharding import split_for_rank

    state = init_parallel(tp_size=2)
    torch.manual_seed(0)
    reference = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny")).double()
    model = copy.deepcopy(reference)
    apply_tp_plan(model, state.tp_group)
    assert is_tensor_parallel(model)
    split = [n for n, m in model.named_modules() if isinstance(m, _ParallelModule)]
    assert len(split) == 2 * 2 * 11  # conv1 + conv2 of 5 encoder levels, the bottleneck and 5 decoder levels, 2 nets
    torch.manual_seed(1)
    teacher = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny")).double()
    for m in (reference, model):
        m.set_teacher(copy.deepcopy(teacher), 0.8)
    pair, targets, triplet = _frames(2, 1), _frames(2, 2), _frames(3, 3)
    for name, inputs in (("supervised", dict(pixel_values_videos=pair, timesteps=[0.25, 0.75], labels=targets)),
                         ("cycle", dict(pixel_values_videos=triplet, timesteps=[0.4], labels=triplet[:, 1]))):
        reference.zero_grad()
        model.zero_grad()
        ref_out, out = reference(**inputs), model(**inputs)
        for field in ("interpolated_frames", "flows", "time_flows", "visibility", "cycle_frame", "loss"):
            if getattr(ref_out, field) is not None:
                assert_close(getattr(out, field), getattr(ref_out, field).detach(), rtol=1e-9, atol=1e-8,
                             what=f"{name} {field}")
        assert out.loss_terms.keys() == ref_out.loss_terms.keys()
        ref_out.loss.backward()
        out.loss.backward()
        full = dict(reference.named_parameters())
        for pname, param in model.named_parameters():
            module_name, _, leaf = pname.rpartition(".")
            module = model.get_submodule(module_name)
            spec = module.partition.get(leaf) if isinstance(module, _ParallelModule) else None
            expected = full[pname].grad if spec is None else split_for_rank(full[pname].grad, spec[0], rank, 2,
                                                                             spec[1])
            assert_close(param.grad, expected, rtol=1e-8, atol=1e-9, what=f"{name} grad of {pname}")
    assert_saves_match(model, reference, f"{tmp}/tiny", rank, "cyclic-interp-tiny")
    loaded = AutoModel.from_pretrained(f"{tmp}/tiny-tp1", tp_size=2, dtype=torch.float64)
    assert is_tensor_parallel(loaded)
    with torch.no_grad():
        assert_close(loaded(pair, timesteps=[0.5]).interpolated_frames,
                     reference(pair, timesteps=[0.5]).interpolated_frames, rtol=1e-9, atol=1e-8,
                     what="loaded at tp_size=2")


def test_cyclic_interp_tp2_matches_tp1(tmp_path):
    run_ranks(_worker, str(tmp_path))
