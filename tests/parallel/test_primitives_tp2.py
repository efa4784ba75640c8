"""Each TP primitive at TP=2 (two gloo processes) against the same computation on one process."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from dist_utils import assert_close, run_ranks

pytestmark = pytest.mark.slow


def _mappings(rank, group):
    from adlr_hf.parallel import copy_to_tp_region, gather_from_tp_region, reduce_from_tp_region, scatter_to_tp_region

    # Each rank holds a different tensor, so sums and gathers are visible.
    x = torch.arange(8.0).reshape(2, 4) + 10 * rank
    others = [torch.arange(8.0).reshape(2, 4) + 10 * r for r in range(2)]

    a = x.clone().requires_grad_()
    out = copy_to_tp_region(a, group)
    assert_close(out, x, what="copy fwd is identity")
    out.backward(torch.full_like(x, rank + 1.0))
    assert_close(a.grad, torch.full_like(x, 3.0), what="copy bwd all-reduces")

    a = x.clone().requires_grad_()
    out = reduce_from_tp_region(a, group)
    assert_close(out, others[0] + others[1], what="reduce fwd all-reduces")
    out.backward(torch.full_like(x, rank + 1.0))
    assert_close(a.grad, torch.full_like(x, rank + 1.0), what="reduce bwd is identity")

    full = torch.arange(8.0).reshape(2, 4).requires_grad_()
    out = scatter_to_tp_region(full, group)
    assert_close(out, full.detach()[:, 2 * rank: 2 * rank + 2], what="scatter fwd keeps own chunk")
    out.backward(torch.ones_like(out) * (rank + 1))
    assert_close(full.grad, torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2]]), what="scatter bwd gathers")

    a = x.clone().requires_grad_()
    out = gather_from_tp_region(a, group)
    assert_close(out, torch.cat(others, dim=-1), what="gather fwd concatenates")
    g = torch.arange(16.0).reshape(2, 8)
    out.backward(g)
    assert_close(a.grad, g[:, 4 * rank: 4 * rank + 4], what="gather bwd splits")


def _check_linear(parallel, dense, x_full, grad_out, local_out_slice=None, rank=0, what=""):
    x_ref = x_full.clone().requires_grad_()
    ref = dense(x_ref)
    ref.backward(grad_out)
    x_tp = x_full.clone().requires_grad_()
    out = parallel(x_tp)
    expected = ref if local_out_slice is None else ref[..., local_out_slice]
    assert_close(out, expected.detach(), what=f"{what} output")
    out.backward(grad_out if local_out_slice is None else grad_out[..., local_out_slice])
    assert_close(x_tp.grad, x_ref.grad, what=f"{what} input grad")
    return parallel


def _linears(rank, group):
    from adlr_hf.parallel import ColumnParallelLinear, RowParallelLinear
    from adlr_hf.parallel.sharding import split_for_rank

    torch.manual_seed(0)
    x = torch.randn(3, 5, 8)
    dense = nn.Linear(8, 12)
    grad_out = torch.randn(3, 5, 12)
    for gather in (True, False):
        dense.zero_grad()
        col = ColumnParallelLinear.from_dense(dense, group, gather_output=gather)
        sl = None if gather else slice(6 * rank, 6 * rank + 6)
        _check_linear(col, dense, x, grad_out, sl, rank, what=f"column gather={gather}")
        assert_close(col.weight.grad, dense.weight.grad[6 * rank: 6 * rank + 6], what="column weight grad")
        assert_close(col.bias.grad, dense.bias.grad[6 * rank: 6 * rank + 6], what="column bias grad")

    # stride 3: a fused [Q; K; V] keeps each projection's rank slice.
    dense.zero_grad()
    col3 = ColumnParallelLinear.from_dense(dense, group, gather_output=True, stride=3)
    expected_rows = torch.cat([dense.weight[4 * k + 2 * rank: 4 * k + 2 * rank + 2] for k in range(3)])
    assert_close(col3.weight, expected_rows.detach(), what="stride-3 shard rows")
    _check_linear(col3, dense, x, grad_out, None, rank, what="column stride 3 gathered")
    assert_close(col3.weight.grad, split_for_rank(dense.weight.grad, 0, rank, 2, 3), what="stride-3 weight grad")

    dense_row = nn.Linear(12, 8)
    grad_row = torch.randn(3, 5, 8)
    x_row = torch.randn(3, 5, 12)
    row = RowParallelLinear.from_dense(dense_row, group, input_is_parallel=False)
    _check_linear(row, dense_row, x_row, grad_row, None, rank, what="row scatter input")
    assert_close(row.weight.grad, dense_row.weight.grad[:, 6 * rank: 6 * rank + 6], what="row weight grad")
    assert_close(row.bias.grad, dense_row.bias.grad, what="row bias grad (added once, after the reduce)")

    # input_is_parallel: feed this rank's slice of the input.
    dense_row.zero_grad()
    row = RowParallelLinear.from_dense(dense_row, group, input_is_parallel=True)
    ref_in = x_row.clone().requires_grad_()
    ref = dense_row(ref_in)
    ref.backward(grad_row)
    local_in = x_row[..., 6 * rank: 6 * rank + 6].clone().requires_grad_()
    out = row(local_in)
    assert_close(out, ref.detach(), what="row parallel input output")
    out.backward(grad_row)
    assert_close(local_in.grad, ref_in.grad[..., 6 * rank: 6 * rank + 6], what="row parallel input grad")

    # TP-invariant direct construction: same seed, the shard is a slice of the dense layer's weight.
    torch.manual_seed(7)
    direct = ColumnParallelLinear(8, 12, group=group, gather_output=False)
    torch.manual_seed(7)
    reference = nn.Linear(8, 12)
    assert_close(direct.weight, reference.weight[6 * rank: 6 * rank + 6].detach(), what="column init slice")
    torch.manual_seed(7)
    direct_row = RowParallelLinear(12, 8, group=group)
    torch.manual_seed(7)
    reference = nn.Linear(12, 8)
    assert_close(direct_row.weight, reference.weight[:, 6 * rank: 6 * rank + 6].detach(), what="row init slice")
    assert_close(direct_row.bias, reference.bias.detach(), what="row init bias")


def _vocab(rank, group):
    from adlr_hf.parallel import VocabParallelEmbedding, VocabParallelLMHead, vocab_parallel_cross_entropy
    from adlr_hf.parallel.cross_entropy import lm_cross_entropy

    torch.manual_seed(1)
    vocab, hidden = 300, 16
    dense = nn.Embedding(vocab, hidden)
    emb = VocabParallelEmbedding.from_dense(dense, group)
    assert emb.padded_num_embeddings == 512  # multiple of 128 × TP
    assert emb.weight.shape == (256, hidden)
    ids = torch.randint(0, vocab, (4, 9))
    ids[0, :3] = torch.tensor([0, 255, 299])  # both ranks' ranges and the last real id
    ref = dense(ids)
    grad = torch.randn_like(ref)
    ref.backward(grad)
    out = emb(ids)
    assert_close(out, ref.detach(), what="vocab embedding output")
    out.backward(grad)
    full_grad = torch.cat([dense.weight.grad, torch.zeros(512 - vocab, hidden)])
    assert_close(emb.weight.grad, full_grad[256 * rank: 256 * rank + 256], what="vocab embedding grad")

    # Tied LM head + vocab-parallel cross entropy vs F.cross_entropy on full logits, with ignored targets.
    head_dense = nn.Linear(hidden, vocab, bias=False)
    head = VocabParallelLMHead.from_dense(head_dense, group).train()
    h = torch.randn(4, 9, hidden)
    target = torch.randint(0, vocab, (4, 9))
    target[1, 2] = -100
    target[2, 0] = 299
    h_ref = h.clone().requires_grad_()
    ref_loss = F.cross_entropy(head_dense(h_ref).reshape(-1, vocab), target.reshape(-1), ignore_index=-100)
    ref_loss.backward()
    h_tp = h.clone().requires_grad_()
    local_logits = head(h_tp)
    assert local_logits.shape[-1] == 256, "training mode returns this rank's slice"
    loss = lm_cross_entropy(local_logits, target, head=head)
    assert_close(loss, ref_loss.detach(), what="vocab-parallel CE")
    loss.backward()
    assert_close(h_tp.grad, h_ref.grad, what="CE grad wrt hidden")
    full_w_grad = torch.cat([head_dense.weight.grad, torch.zeros(512 - vocab, hidden)])
    assert_close(head.weight.grad, full_w_grad[256 * rank: 256 * rank + 256], what="CE grad wrt head weight")

    # Direct function on raw logits slices.
    logits = torch.randn(6, 512)
    logits[:, vocab:] = torch.finfo(torch.float32).min
    t = torch.randint(0, vocab, (6,))
    direct = vocab_parallel_cross_entropy(logits[:, 256 * rank: 256 * rank + 256], t, group, 256 * rank)
    assert_close(direct, F.cross_entropy(logits[:, :vocab], t), what="vocab_parallel_cross_entropy")

    head.eval()
    with torch.no_grad():
        assert_close(head(h), head_dense(h), what="eval mode gathers full unpadded logits")


def _worker(rank):
    from adlr_hf.parallel import init_parallel

    state = init_parallel(tp_size=2)
    assert (state.tp_size, state.tp_rank, state.dp_size) == (2, rank, 1)
    _mappings(rank, state.tp_group)
    _linears(rank, state.tp_group)
    _vocab(rank, state.tp_group)


def test_tp2_primitives_match_tp1():
    run_ranks(_worker)
