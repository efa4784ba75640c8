"""Run a test body in N gloo processes on CPU (one thread each), the way torchrun would start them."""

from __future__ import annotations

import os
import socket
import sys

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, fn, world_size, port, args):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    fn(rank, *args)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    # The rank's work is done and checked. Leave without running C++ static destructors: a library thread left
    # joinable there (seen about once in six suite runs after the Accelerate runs) aborts a finished rank.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_ranks(fn, *args, world_size: int = 2) -> None:
    """Call fn(rank, *args) in `world_size` spawned processes; an assertion in any rank fails the test."""
    mp.start_processes(_entry, args=(fn, world_size, free_port(), args), nprocs=world_size, join=True,
                       start_method="spawn")


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, what=""):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def expected_grad_shard(model, name: str, full_grad, rank: int, tp: int = 2):
    """The part of the TP=1 gradient `full_grad` of parameter `name` that rank `rank` of the split `model` holds."""
    from adlr_hf.parallel.layers import _ParallelModule
    from adlr_hf.parallel.sharding import split_for_rank

    module_name, _, param = name.rpartition(".")
    module = model.get_submodule(module_name)
    spec = module.partition.get(param) if isinstance(module, _ParallelModule) else None
    return full_grad if spec is None else split_for_rank(full_grad, spec[0], rank, tp, spec[1])


def assert_saves_match(model, reference, folder: str, rank: int, what: str = "") -> None:
    """A TP=2 `save_pretrained` is tensor-for-tensor the TP=1 model's (every rank calls it; rank 0 also saves the
    reference). Writes `<folder>-tp2` and `<folder>-tp1`."""
    import torch.distributed as dist
    from safetensors.torch import load_file

    model.save_pretrained(f"{folder}-tp2")
    if rank == 0:
        reference.save_pretrained(f"{folder}-tp1")
    dist.barrier()
    tp1, tp2 = load_file(f"{folder}-tp1/model.safetensors"), load_file(f"{folder}-tp2/model.safetensors")
    assert tp1.keys() == tp2.keys(), what
    for key in tp1:
        assert torch.equal(tp2[key], tp1[key]), f"{what} saved {key}"


# (dim, stride) of each Megatron-sharded parameter, by name suffix: the fused QKV is a stride-3 column split.
MEGATRON_SHARDS = {"query_key_value.weight": (0, 3), "query_key_value.bias": (0, 3), "dense_h_to_4h.weight": (0, 1),
                   "dense_h_to_4h.bias": (0, 1), "self_attention.dense.weight": (1, 1), "dense_4h_to_h.weight": (1, 1)}


def assert_megatron_grads(model, reference, rank: int, vocab: int, padded_vocab: int, tp: int = 2) -> None:
    """Each TP rank's gradients are its shard of the TP=1 reference's (the word embedding's padded to
    `padded_vocab` rows and split by rows)."""
    from adlr_hf.parallel.sharding import split_for_rank

    ref_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        expected = ref_params[name].grad
        if name.endswith("word_embeddings.weight"):
            expected = torch.cat([expected, expected.new_zeros(padded_vocab - vocab, expected.shape[1])])
            expected = split_for_rank(expected, 0, rank, tp)
        for suffix, (dim, stride) in MEGATRON_SHARDS.items():
            if name.endswith(suffix):
                expected = split_for_rank(expected, dim, rank, tp, stride)
        assert_close(param.grad, expected, rtol=1e-5, atol=1e-6, what=f"grad of {name}")
