"""Megatron-BERT pretraining (masked LM + sentence order) through the one training loop at TP=2."""

import json

import pytest
import torch
from dist_utils import run_ranks
from train_utils import run_all, train_losses, write_documents
from transformers import AutoModelForPreTraining, AutoTokenizer, pipeline

import adlr_hf  # noqa: F401 - registers the Auto classes

pytestmark = pytest.mark.slow


def _flags(corpus, out):
    return ["--model", "megatron-bert-tiny", "--data", str(corpus), "--vocab-size", "200", "--seq-len", "32",
            "--micro-batch-size", "4", "--steps", "12", "--lr", "3e-3", "--lr-schedule", "constant", "--seed", "3",
            "--out", str(out), "--no-progress", "--eval-fraction", "0.1", "--tp", "2", "--save-every", "6",
            "--set", "hidden_dropout=0", "--set", "attention_dropout=0"]


def test_bert_pretraining_at_tp2_trains_resumes_and_fills_masks(tmp_path):
    corpus = write_documents(tmp_path)
    run_ranks(run_all, [_flags(corpus, tmp_path / "bert")])
    run_dir = tmp_path / "bert"
    losses = train_losses(run_dir)
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
    info = json.loads((run_dir / "run_info.json").read_text())
    assert (info["task"], info["tp"], info["model_type"]) == ("bert-pretraining", 2, "adlr_megatron_bert")

    # Resuming from step 6 replays steps 7-12 exactly: masking RNG and data position are part of the checkpoint.
    run_ranks(run_all, [_flags(corpus, run_dir) + ["--resume", str(run_dir / "checkpoints" / "step_00000006")]])
    assert train_losses(run_dir) == losses

    model = AutoModelForPreTraining.from_pretrained(run_dir / "model")
    assert type(model).__name__ == "MegatronBertForPreTraining"
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    fill = pipeline("fill-mask", model=run_dir / "model", tokenizer=tokenizer)
    answers = fill(f"the fox jumps over the {tokenizer.mask_token} number 3.")
    assert len(answers) == 5 and all(a["token_str"] for a in answers)
    with torch.no_grad():
        enc = tokenizer("the cat jumps over the fence", return_tensors="pt")
        out = model(**enc)
    assert out.sop_logits.shape == (1, 2)
