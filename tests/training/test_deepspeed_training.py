"""Training under the DeepSpeed engine on 2 CPU ranks: TP×DP layouts, ZeRO stages, TP=2 ≡ TP=1, exact resume."""

import json

import pytest
import torch
from dist_utils import run_ranks
from safetensors.torch import load_file
from train_utils import common_flags, run_all, train_losses, write_corpus

pytestmark = pytest.mark.slow


def _zero(stage):
    return ["--engine", "deepspeed", "--deepspeed-config", f"configs/deepspeed/zero{stage}.json"]


def test_tp_and_dp_layouts_with_zero_stages_train(tmp_path):
    corpus = write_corpus(tmp_path)
    tp2 = [common_flags(corpus, tmp_path / f"tp2_z{s}", steps=8) + _zero(s) + ["--tp", "2"] for s in (1, 2)]
    dp2 = [common_flags(corpus, tmp_path / f"dp2_z{s}", steps=8) + _zero(s) + ["--tp", "1"] for s in (1, 2, 3)]
    dp2.append(common_flags(corpus, tmp_path / "bf16_z2", steps=8) + ["--tp", "1", "--deepspeed-config",
                                                                       "configs/deepspeed/zero2_bf16.json"])
    run_ranks(run_all, tp2)
    run_ranks(run_all, dp2)
    for name in ("tp2_z1", "tp2_z2", "dp2_z1", "dp2_z2", "dp2_z3"):
        losses = train_losses(tmp_path / name)
        assert len(losses) == 8, name
        assert losses[-1] < losses[0] - 0.5, f"{name}: loss did not fall: {losses}"
        info = json.loads((tmp_path / name / "run_info.json").read_text())
        assert (info["tp"], info["dp"]) == ((2, 1) if name.startswith("tp2") else (1, 2))
        assert info["zero_stage"] == int(name[-1])
        assert (tmp_path / name / "model" / "model.safetensors").is_file()
    bf16 = train_losses(tmp_path / "bf16_z2")
    assert bf16[-1] < bf16[0] - 0.5, f"bf16 loss did not fall: {bf16}"
    assert json.loads((tmp_path / "bf16_z2" / "run_info.json").read_text())["bf16"] is True
    # TP=2 and TP=1 at DP=2 see different batches per rank, but ZeRO-1 and ZeRO-2 must agree with each other.
    assert train_losses(tmp_path / "tp2_z1") == pytest.approx(train_losses(tmp_path / "tp2_z2"), rel=1e-5)
    assert train_losses(tmp_path / "dp2_z1") == pytest.approx(train_losses(tmp_path / "dp2_z3"), rel=1e-5)


def test_tp2_losses_equal_tp1_step_by_step(tmp_path):
    """... also with activation checkpointing on at TP=2: recomputing the layers changes no number."""
    corpus = write_corpus(tmp_path)
    run_ranks(run_all, [common_flags(corpus, tmp_path / "tp2", steps=6) + _zero(1) +
                        ["--tp", "2", "--activation-checkpointing"]])
    assert json.loads((tmp_path / "tp2" / "run_info.json").read_text())["activation_checkpointing"] is True
    run_ranks(run_all, [common_flags(corpus, tmp_path / "tp1", steps=6) + _zero(1) + ["--tp", "1"]], world_size=1)
    tp1, tp2 = train_losses(tmp_path / "tp1"), train_losses(tmp_path / "tp2")
    assert len(tp1) == len(tp2) == 6
    for step, (a, b) in enumerate(zip(tp1, tp2), start=1):
        assert abs(a - b) <= 1e-5 * abs(a), f"step {step}: TP=1 {a} vs TP=2 {b}"
    w1 = load_file(tmp_path / "tp1" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "tp2" / "model" / "model.safetensors")
    for key in w1:
        # Adam amplifies float noise in near-zero gradients (sign flips of ~lr/1000): compare absolutely.
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-4, atol=5e-5, msg=key)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    corpus = write_corpus(tmp_path)
    straight = common_flags(corpus, tmp_path / "straight", steps=6) + _zero(1) + ["--tp", "2"]
    first_half = common_flags(corpus, tmp_path / "halves", steps=6) + _zero(1) + ["--tp", "2", "--save-every", "3"]
    run_ranks(run_all, [straight, first_half])
    # Forget the second half of the interrupted run, then resume it from its step-3 checkpoint.
    halves = tmp_path / "halves"
    expected = train_losses(straight[straight.index("--out") + 1])
    resumed = common_flags(corpus, halves, steps=6) + _zero(1) + ["--tp", "2", "--resume",
                                                                  str(halves / "checkpoints" / "step_00000003")]
    run_ranks(run_all, [resumed])
    assert train_losses(halves) == expected, "resumed losses differ from the uninterrupted run"
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(halves / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"


def test_gradient_accumulation_equals_a_larger_micro_batch(tmp_path):
    """micro 2 × accumulation 2 sees the same samples per optimizer step as micro 4: same losses and weights."""
    corpus = write_corpus(tmp_path)

    def flags(out, micro, accum):
        argv = common_flags(corpus, tmp_path / out, steps=4) + _zero(1)
        argv[argv.index("--micro-batch-size") + 1] = str(micro)
        return argv + ["--grad-accum", str(accum)]

    run_ranks(run_all, [flags("accum", 2, 2), flags("micro4", 4, 1)], world_size=1)
    assert train_losses(tmp_path / "accum") == pytest.approx(train_losses(tmp_path / "micro4"), rel=1e-5)
    a = load_file(tmp_path / "accum" / "model" / "model.safetensors")
    b = load_file(tmp_path / "micro4" / "model" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=5e-5, msg=key)
