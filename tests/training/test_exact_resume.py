"""Exact resume with the defaults users run, for every task: dropout on, the cosine schedule with warm-up, evaluation
during training. A run with checkpoints and a copy of it resumed from its step-3 checkpoint must agree bit for bit
(every training and evaluation record, the final weights), at TP=2 and at DP=2 (two gloo ranks), under DeepSpeed and
Accelerate. Also: Accelerate at DP=2 under a torchrun-style start averages gradients like DeepSpeed does."""

from pathlib import Path

import pytest
from dist_utils import run_ranks
from resume_utils import assert_same_run, metrics, run_then_resume
from train_utils import CIFAR, GOEMOTIONS, cifar_subset, goemotions_subset, write_corpus, write_documents

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (GOEMOTIONS / "train.tsv").is_file() or not (CIFAR / "train").is_dir(),
                       reason="the shared GoEmotions and CIFAR-10 data are not in ../shared/data"),
]

# Only what a test must set (data, sizes, checkpoints); dropout, schedule, optimizer are the defaults.
DEFAULTS = ["--steps", "6", "--warmup-steps", "2", "--eval-every", "2", "--save-every", "3", "--seed", "11",
            "--no-progress"]


def _tasks(tmp_path):
    corpus = write_corpus(tmp_path)
    emotions = goemotions_subset(tmp_path / "goemotions", train=96, dev=32, test=8)
    images = cifar_subset(tmp_path / "cifar", train_per_class=4, test_per_class=2)
    documents = write_documents(tmp_path)
    text = ["--data", str(corpus), "--vocab-size", "300", "--seq-len", "32", "--micro-batch-size", "2"]
    mlm = ["--data", str(documents), "--vocab-size", "200", "--seq-len", "32", "--micro-batch-size", "2"]
    return {
        "causal-lm": ["--model", "megatron-gpt-tiny", *text],
        "bert-pretraining": ["--model", "megatron-bert-tiny", *mlm],
        "masked-lm": ["--model", "megatron-bert-tiny", "--task", "masked-lm", "--whole-word-masking", *mlm],
        "char-lm": ["--model", "mlstm-tiny", "--data", str(corpus), "--seq-len", "32", "--micro-batch-size", "2"],
        "emotion-classification": ["--model", "megatron-gpt-tiny", "--task", "emotion-classification", "--data",
                                   "goemotions-ekman", str(emotions), "--vocab-size", "300", "--seq-len", "32",
                                   "--micro-batch-size", "4", "--set", "classifier_hidden_layers=[16]"],
        "image-classification": ["--model", "pd-resnet-tiny", "--data", str(images), "--micro-batch-size", "4",
                                 "--eval-split", "test"],
    }


def _cases(tmp_path, tasks, tp):
    return [([*argv, *DEFAULTS, "--tp", str(tp), "--engine", engine, "--out", str(tmp_path / f"{name}-{engine}-tp{tp}")],
             3) for name, argv in tasks.items() for engine in ("deepspeed", "accelerate")]


def _check(cases):
    for argv, _ in cases:
        run = Path(argv[argv.index("--out") + 1])
        records = metrics(run)
        assert [r["step"] for r in records if r["split"] == "eval"] == [2, 4, 6], run.name
        lrs = [r["lr"] for r in records if r["split"] == "train"]
        assert lrs[-1] < lrs[1] and len(set(lrs)) > 3, f"{run.name}: not the default decaying schedule: {lrs}"
        assert_same_run(run, run.with_name(run.name + "-resumed"))


def test_exact_resume_at_tp2_for_every_task_under_both_engines(tmp_path):
    tasks = {k: v for k, v in _tasks(tmp_path).items() if k != "char-lm"}  # the mLSTM has no TP plan
    cases = _cases(tmp_path, tasks, tp=2)
    run_ranks(run_then_resume, cases)
    _check(cases)


def test_exact_resume_at_dp2_for_every_task_under_both_engines(tmp_path):
    cases = _cases(tmp_path, _tasks(tmp_path), tp=1)
    run_ranks(run_then_resume, cases)
    _check(cases)
    # DeepSpeed and Accelerate average the same gradients over the two data-parallel ranks.
    ds, acc = (metrics(tmp_path / f"causal-lm-{engine}-tp1") for engine in ("deepspeed", "accelerate"))
    ds_losses = [r["loss"] for r in ds if r["split"] == "train"]
    acc_losses = [r["loss"] for r in acc if r["split"] == "train"]
    assert acc_losses == pytest.approx(ds_losses, rel=1e-5)
