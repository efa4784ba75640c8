"""`--task emotion-classification` through the one training loop in 2 CPU ranks on a small subset of the real
GoEmotions files: an LM pre-trained first, fine-tuned at TP=2 (DeepSpeed) and from scratch at DP=2 (Accelerate);
the loss falls, evaluation reports macro-F1, and the export carries thresholds tuned on validation."""

import json

import pytest
from dist_utils import run_ranks
from train_utils import GOEMOTIONS, goemotions_subset, run_all, train_losses

pytestmark = pytest.mark.slow

def _flags(out, steps, lr=3e-3):
    return ["--seq-len", "32", "--micro-batch-size", "8", "--steps", str(steps), "--lr", str(lr),
            "--lr-schedule", "constant", "--seed", "7", "--out", str(out), "--no-progress", "--weight-decay", "0",
            "--set", "hidden_dropout=0", "--set", "attention_dropout=0", "--set", "embedding_dropout=0"]


@pytest.mark.skipif(not (GOEMOTIONS / "train.tsv").is_file(), reason=f"GoEmotions not found at {GOEMOTIONS}")
def test_emotion_task_trains_at_tp2_and_dp2_and_exports_thresholds(tmp_path):
    data = goemotions_subset(tmp_path / "goemotions")
    lm = ["--model", "megatron-gpt-tiny", "--data", str(data / "corpus.txt"), "--vocab-size", "400",
          "--eval-fraction", "0", "--engine", "accelerate", *_flags(tmp_path / "lm", 4)]
    tp2 = ["--model", str(tmp_path / "lm" / "model"), "--task", "emotion-classification",
           "--data", "goemotions-ekman", str(data), "--tp", "2", "--engine", "deepspeed",
           "--deepspeed-config", "configs/deepspeed/zero1.json", "--eval-every", "10",
           "--set", "classifier_hidden_layers=[32]", *_flags(tmp_path / "tp2", 20)]
    dp2 = ["--model", "megatron-gpt-tiny", "--task", "emotion-classification", "--data", str(data),
           "--vocab-size", "400", "--engine", "accelerate", "--set", "classifier_hidden_layers=[16]",
           "--set", "aux_lm_loss_weight=0", *_flags(tmp_path / "dp2", 12)]
    run_ranks(run_all, [lm, dp2])  # one TP degree per process group
    run_ranks(run_all, [tp2])

    for name, labels in (("tp2", 7), ("dp2", 28)):
        losses = train_losses(tmp_path / name)
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, f"{name}: loss did not fall: {losses}"
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        evals = [r for r in records if r["split"] == "eval"]
        assert evals and all(0.0 <= r["macro_f1_tuned"] <= 1.0 and "macro_f1" in r and "micro_f1" in r
                             for r in evals)
        config = json.loads((tmp_path / name / "model" / "config.json").read_text())
        assert config["model_type"] == "adlr_emotion" and len(config["id2label"]) == labels
        assert len(config["thresholds"]) == labels and config["thresholds"] != [0.5] * labels
        info = json.loads((tmp_path / name / "run_info.json").read_text())
        assert "eval_macro_f1" in info and info["task"] == "emotion-classification"
    assert json.loads((tmp_path / "tp2" / "run_info.json").read_text())["tp"] == 2
    tp2_config = json.loads((tmp_path / "tp2" / "model" / "config.json").read_text())
    assert tp2_config["classifier_hidden_layers"] == [32], "--set head fields apply to a model folder too"
    assert tp2_config["encoder_config"]["hidden_dropout"] == 0
    assert len([r for r in (json.loads(l) for l in (tmp_path / "tp2" / "metrics.jsonl").read_text().splitlines())
                if r["split"] == "eval"]) == 2

    # The export evaluates with its stored thresholds (and scores the test split).
    from adlr_hf.evaluation import evaluate_emotion_model_dir

    result = evaluate_emotion_model_dir(tmp_path / "tp2" / "model", "goemotions", data, split="test")
    stored = json.loads((tmp_path / "tp2" / "model" / "config.json").read_text())["thresholds"]
    assert result["settings"]["label_set"] == "ekman" and result["metrics"]["num_examples"] == 64
    assert list(result["metrics"]["thresholds"].values()) == pytest.approx(stored)


@pytest.mark.skipif(not (GOEMOTIONS / "train.tsv").is_file(), reason=f"GoEmotions not found at {GOEMOTIONS}")
def test_mlstm_pretrains_with_char_lm_and_fine_tunes_for_emotion(tmp_path):
    data = goemotions_subset(tmp_path / "goemotions")
    lm = ["--model", "mlstm-tiny", "--task", "char-lm", "--data", str(data / "corpus.txt"), "--eval-fraction", "0",
          "--engine", "accelerate", "--seq-len", "32", "--micro-batch-size", "8", "--steps", "6", "--lr", "1e-2",
          "--lr-schedule", "constant", "--out", str(tmp_path / "lm"), "--no-progress"]
    clf = ["--model", str(tmp_path / "lm" / "model"), "--task", "emotion-classification", "--data",
           "goemotions-sentiment", str(data), "--engine", "accelerate", "--seq-len", "48", "--micro-batch-size", "16",
           "--steps", "6", "--lr", "3e-3", "--lr-schedule", "constant", "--out", str(tmp_path / "clf"),
           "--no-progress", "--set", "classifier_hidden_layers=[16]"]
    run_ranks(run_all, [lm, clf], world_size=1)
    lm_losses = train_losses(tmp_path / "lm")
    assert lm_losses[-1] < lm_losses[0] - 0.3, lm_losses  # from ln(257) ≈ 5.5 toward the byte frequencies
    lm_config = json.loads((tmp_path / "lm" / "model" / "config.json").read_text())
    assert lm_config["model_type"] == "adlr_mlstm" and lm_config["vocab_size"] == 257
    config = json.loads((tmp_path / "clf" / "model" / "config.json").read_text())
    assert config["encoder_type"] == "mlstm" and config["architectures"] == ["MLSTMForSequenceClassification"]
    assert len(config["thresholds"]) == 4  # positive, negative, ambiguous, neutral
    assert json.loads((tmp_path / "clf" / "model" / "tokenizer_config.json").read_text())["tokenizer_class"] == \
        "MLSTMByteTokenizer"
