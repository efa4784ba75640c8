"""Cross entropy over logits whose vocabulary is split across the TP ranks (Megatron-LM `mpu/cross_entropy.py`).

Only three [tokens]-sized all-reduces cross the ranks (max, sum of exp, target logit); the [tokens, vocab] logits
are never gathered.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .mappings import group_size


class _VocabParallelCrossEntropy(torch.autograd.Function):
    """Forward: per-token loss log(Σ exp) − logit[target] across the split vocabulary.
    Backward: softmax − one_hot(target) on this rank's columns, times the incoming gradient."""

    @staticmethod
    def forward(ctx, logits, target, group, vocab_start):
        local_vocab = logits.shape[-1]
        logits_max = logits.max(dim=-1).values
        dist.all_reduce(logits_max, op=dist.ReduceOp.MAX, group=group)
        shifted = logits - logits_max.unsqueeze(-1)

        local_target = target - vocab_start
        outside = (local_target < 0) | (local_target >= local_vocab)
        local_target = local_target.masked_fill(outside, 0)
        target_logit = shifted.gather(-1, local_target.unsqueeze(-1)).squeeze(-1).masked_fill(outside, 0.0)
        dist.all_reduce(target_logit, group=group)

        exp = shifted.exp_()
        sum_exp = exp.sum(dim=-1)
        dist.all_reduce(sum_exp, group=group)
        loss = sum_exp.log() - target_logit

        softmax = exp.div_(sum_exp.unsqueeze(-1))
        ctx.save_for_backward(softmax, local_target, outside)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        softmax, local_target, outside = ctx.saved_tensors
        grad = softmax.clone()
        grad.scatter_add_(-1, local_target.unsqueeze(-1), -(~outside).to(grad.dtype).unsqueeze(-1))
        return grad * grad_loss.unsqueeze(-1), None, None, None


def vocab_parallel_cross_entropy(logits, target, group, vocab_start=0, ignore_index=-100):
    """Mean loss over targets != ignore_index. `logits` [..., V/p] is this rank's slice starting at `vocab_start`."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_target = target.reshape(-1)
    valid = flat_target != ignore_index
    if group_size(group) == 1:
        return F.cross_entropy(flat_logits, flat_target, ignore_index=ignore_index)
    losses = _VocabParallelCrossEntropy.apply(flat_logits, flat_target, group, vocab_start)
    return (losses * valid).sum() / valid.sum().clamp(min=1)


def lm_cross_entropy(logits, target, head=None, ignore_index=-100):
    """Loss for the logits an LM head produced: vocab-parallel when the head returned only this rank's slice."""
    if getattr(head, "returns_parallel_logits", False):
        return vocab_parallel_cross_entropy(logits, target, head.tp_group, head.vocab_start_index, ignore_index)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=ignore_index)
