"""The RNG tracker: replicated stream seeded with `seed`, TP-region stream with `seed + 2718 + tp_rank`."""

import torch

from adlr_hf.parallel import get_rng_tracker, model_parallel_seed, tp_rng_fork


def _draws_in_tp_region(seed, tp_rank):
    model_parallel_seed(seed, tp_rank)
    outside = torch.rand(3)
    with tp_rng_fork():
        inside = torch.rand(3)
    after = torch.rand(3)
    return outside, inside, after


def test_replicated_stream_is_shared_and_tp_stream_is_per_rank():
    out0, in0, after0 = _draws_in_tp_region(42, tp_rank=0)
    out1, in1, after1 = _draws_in_tp_region(42, tp_rank=1)
    assert torch.equal(out0, out1) and torch.equal(after0, after1), "replicated dropout must agree across TP ranks"
    assert not torch.equal(in0, in1), "dropout on split activations must differ per TP rank"
    torch.manual_seed(42 + 2718 + 1)
    assert torch.equal(in1, torch.rand(3)), "TP stream is seeded with seed + 2718 + tp_rank"


def test_fork_leaves_the_default_stream_untouched():
    model_parallel_seed(7, 0)
    torch.manual_seed(7)
    expected = torch.rand(4)
    model_parallel_seed(7, 0)
    with tp_rng_fork():
        torch.rand(100)
    assert torch.equal(torch.rand(4), expected)


def test_tp_stream_continues_across_forks_and_restores_from_saved_states():
    model_parallel_seed(3, 0)
    with tp_rng_fork():
        first = torch.rand(2)
    saved = get_rng_tracker().get_states()
    with tp_rng_fork():
        second = torch.rand(2)
    assert not torch.equal(first, second), "each fork continues the stream"
    get_rng_tracker().set_states(saved)
    with tp_rng_fork():
        assert torch.equal(torch.rand(2), second), "saved tracker states replay the stream (checkpoint resume)"
    get_rng_tracker().reset()
