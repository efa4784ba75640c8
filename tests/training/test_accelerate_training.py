"""Training under Accelerate: DDP over the data-parallel group only, TP intact, exact resume, exported folder."""

import pytest
import torch
from dist_utils import run_ranks
from safetensors.torch import load_file
from train_utils import common_flags, run_all, train_losses, write_corpus
from transformers import AutoModelForCausalLM

import adlr_hf  # noqa: F401 - registers the Auto classes

pytestmark = pytest.mark.slow

ACCELERATE = ["--engine", "accelerate"]


def test_two_processes_train_and_export_loads(tmp_path):
    corpus = write_corpus(tmp_path)
    runs = [common_flags(corpus, tmp_path / "dp2", steps=8) + ACCELERATE + ["--tp", "1"]]
    run_ranks(run_all, runs)
    losses = train_losses(tmp_path / "dp2")
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5, losses
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "dp2" / "model")
    ids = torch.tensor([[0, 5, 6, 7]])
    assert torch.isfinite(model(ids).logits).all()


def test_tp2_under_accelerate_equals_deepspeed_tp2_and_resumes_exactly(tmp_path):
    corpus = write_corpus(tmp_path)
    acc = common_flags(corpus, tmp_path / "acc", steps=6) + ACCELERATE + ["--tp", "2", "--save-every", "3"]
    ds = common_flags(corpus, tmp_path / "ds", steps=6) + ["--engine", "deepspeed", "--tp", "2"]
    run_ranks(run_all, [acc, ds])
    # Same model, data, seed, optimizer and clipping: the engine is a choice, not a fork of the loop.
    assert train_losses(tmp_path / "acc") == pytest.approx(train_losses(tmp_path / "ds"), rel=1e-5)
    expected = train_losses(tmp_path / "acc")
    weights = load_file(tmp_path / "acc" / "model" / "model.safetensors")
    # The step-6 checkpoint (one shard file per TP rank) exports to the same weights as the live model.
    from adlr_hf.training.export import export_checkpoint

    export_checkpoint(tmp_path / "acc" / "checkpoints" / "step_00000006", tmp_path / "exported")
    exported = load_file(tmp_path / "exported" / "model.safetensors")
    assert exported.keys() == weights.keys() and all(torch.equal(exported[k], weights[k]) for k in weights)
    resumed = common_flags(corpus, tmp_path / "acc", steps=6) + ACCELERATE + [
        "--tp", "2", "--resume", str(tmp_path / "acc" / "checkpoints" / "step_00000003")]
    run_ranks(run_all, [resumed])
    assert train_losses(tmp_path / "acc") == expected
    again = load_file(tmp_path / "acc" / "model" / "model.safetensors")
    assert all(torch.equal(weights[k], again[k]) for k in weights)
