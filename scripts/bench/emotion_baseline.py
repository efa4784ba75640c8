"""Emotion classification, end to end, against a TF-IDF baseline (arXiv 1812.01207 on GoEmotions, CPU sized).

1. Pre-train a small Megatron-GPT (4 layers, hidden 256, seq 64; byte-level BPE trained on the same text) on the
   WikiText-2 valid + test text, through `python -m adlr_hf.train` (in-process, Accelerate engine).
2. Fine-tune the emotion classifier (`--task emotion-classification`) on a random subset of GoEmotions train
   (default 6,000 examples, Ekman's 6 emotions + neutral, 1 epoch); the loop tunes per-label thresholds on the full
   dev split and stores them in the exported config.
3. Evaluate macro/micro-F1 and Jaccard accuracy on the full GoEmotions test split with those thresholds.
4. On the same train subset: TF-IDF (word 1-2 grams) + one-vs-rest logistic regression (scikit-learn), thresholds
   tuned on dev with the same grid search, scored on test with the same metric.

Last line: {"bench": "emotion_baseline", "ratio": transformer macro-F1 / TF-IDF macro-F1, ...}; a ratio > 1 means the
pre-trained transformer beats the bag-of-words baseline. The default run takes about 10 minutes on 2 CPU cores;
`--quick` is a smoke run of a minute or two; `--train-examples 0` uses the whole train split.

    python scripts/bench/emotion_baseline.py [--labels all] [--train-examples 10000] [--lm-steps 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--goemotions", default=str(SHARED / "goemotions"), help="GoEmotions folder (train/dev/test.tsv)")
    p.add_argument("--wikitext", default=str(SHARED / "wikitext-2"), help="folder with valid.txt / test.txt")
    p.add_argument("--labels", default="ekman", choices=["all", "ekman", "sentiment"], help="GoEmotions label set")
    p.add_argument("--train-examples", type=int, default=6000, help="random train subset (0: all 43,410)")
    p.add_argument("--lm-steps", type=int, default=250, help="LM pre-training steps (batch 16 × 64 tokens)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--ft-epochs", type=float, default=1.0)
    p.add_argument("--ft-batch", type=int, default=32)
    p.add_argument("--ft-lr", type=float, default=5e-4)
    p.add_argument("--head", default="[1024,512]", help="classifier_hidden_layers (JSON list)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=None, help="work folder (default: a temporary one, removed at the end)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1,000 examples, 30 LM steps")
    p.add_argument("--publish", default=None, metavar="OUT_DIR",
                   help="publish the fine-tuned classifier here, with its test evaluation and this comparison in the "
                        "model card (replaces a previous publish)")
    return p.parse_args(argv)


def make_subset(src: Path, dst: Path, n_train: int, seed: int) -> int:
    dst.mkdir(parents=True, exist_ok=True)
    lines = (src / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    if 0 < n_train < len(lines):
        lines = random.Random(seed).sample(lines, n_train)
    (dst / "train.tsv").write_text("".join(lines), encoding="utf-8")
    for name in ("dev.tsv", "test.tsv", "emotions.txt", "ekman_mapping.json", "sentiment_dict.json"):
        shutil.copy(src / name, dst / name)
    return len(lines)


def train(argv: list[str]) -> dict:
    from adlr_hf.train import run
    from adlr_hf.training.args import build_parser

    return run(build_parser().parse_args(argv))


def tfidf_baseline(data_dir: Path, label_set: str) -> dict:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from adlr_hf.data.emotion import load_goemotions
    from adlr_hf.metrics.multilabel_emotion import multilabel_scores
    from adlr_hf.models.emotion import apply_thresholds, tune_thresholds

    data = load_goemotions(data_dir, label_set)
    split = {name: (ds["text"], np.asarray(ds["labels"]).astype(int)) for name, ds in data.splits.items()}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=100_000)
    x_train = vectorizer.fit_transform(split["train"][0])
    y_train = split["train"][1]
    keep = y_train.sum(0) > 0  # a label absent from the subset cannot be fitted: it is never predicted
    clf = OneVsRestClassifier(LogisticRegression(C=4.0, max_iter=2000))
    clf.fit(x_train, y_train[:, keep])

    def probs(texts):
        out = np.zeros((len(texts), len(data.labels)))
        out[:, keep] = clf.predict_proba(vectorizer.transform(texts))
        return out

    thresholds = tune_thresholds(probs(split["validation"][0]), split["validation"][1])
    test_pred = apply_thresholds(probs(split["test"][0]), thresholds)
    return multilabel_scores(test_pred, split["test"][1], label_names=data.labels)


def publish_with_comparison(run_dir: Path, out: Path, record: dict, tfidf: dict, args, n_train: int) -> None:
    """`adlr-hf publish` the fine-tuned run, record its GoEmotions test scores in the card's model-index, and add the
    side-by-side table with the TF-IDF baseline to the card."""
    from adlr_hf.hub import publish, record_evaluation
    from adlr_hf.hub.card import append_card_section

    publish(run_dir, out, force=True)
    record_evaluation(out, {**record, "model": out.name, "data": "google-research-datasets/go_emotions"})
    rows = [f"| {name} | {m['macro_f1']:.4f} | {m['micro_f1']:.4f} | {m['jaccard_accuracy']:.4f} |"
            for name, m in (("this model", record["metrics"]), ("TF-IDF + logistic regression", tfidf))]
    section = "\n".join([
        "", "## Against a bag-of-words baseline (measured side by side)", "",
        f"`scripts/bench/emotion_baseline.py`: the language model was pre-trained for {args.lm_steps} steps on the "
        f"WikiText-2 valid + test text, then fine-tuned on {n_train:,} GoEmotions train examples; a TF-IDF (word "
        "1-2 grams) + one-vs-rest logistic regression baseline was trained on the same examples. Thresholds for both "
        "were tuned on the dev split; scores are on the full test split.", "",
        "| model | macro-F1 | micro-F1 | Jaccard |", "|---|---|---|---|", *rows, "",
        f"Macro-F1 ratio (this model / baseline): {record['metrics']['macro_f1'] / max(tfidf['macro_f1'], 1e-12):.3f}. "
        "The paper's language model was pre-trained for days on 8 GPUs; this one for minutes on a CPU.", ""])
    append_card_section(out, section)
    print(f"published {out}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.train_examples, args.lm_steps = 1000, 30
    for path in (Path(args.goemotions) / "train.tsv", Path(args.wikitext) / "valid.txt"):
        if not path.is_file():
            print(f"emotion_baseline: {path} not found; pass --goemotions / --wikitext", file=sys.stderr)
            return 2
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="emotion_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        data_dir = work / "goemotions"
        n_train = make_subset(Path(args.goemotions), data_dir, args.train_examples, args.seed)
        wiki = [str(Path(args.wikitext) / "valid.txt"), str(Path(args.wikitext) / "test.txt")]

        t0 = time.perf_counter()
        lm = train(["--model", "megatron-gpt-mini", "--data", *wiki, "--vocab-size", str(args.vocab_size),
                    "--seq-len", "64", "--micro-batch-size", "16", "--steps", str(args.lm_steps), "--lr", "1e-3",
                    "--warmup-steps", str(max(1, args.lm_steps // 20)), "--eval-fraction", "0",
                    "--engine", "accelerate", "--seed", str(args.seed), "--out", str(work / "lm"), "--no-progress",
                    "--set", "max_position_embeddings=64"])
        lm_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        ft = train(["--model", str(work / "lm" / "model"), "--task", "emotion-classification",
                    "--data", f"goemotions-{args.labels}", str(data_dir), "--seq-len", "64",
                    "--micro-batch-size", str(args.ft_batch), "--epochs", str(args.ft_epochs), "--lr", str(args.ft_lr),
                    "--warmup-steps", "20", "--engine", "accelerate", "--seed", str(args.seed),
                    "--out", str(work / "emotion"), "--no-progress", "--set", f"classifier_hidden_layers={args.head}",
                    "--set", "classifier_dropout=0.1", "--log-every", "20"])
        ft_seconds = time.perf_counter() - t0

        from adlr_hf.evaluation import evaluate_emotion_model_dir

        t0 = time.perf_counter()
        transformer_record = evaluate_emotion_model_dir(work / "emotion" / "model", "goemotions", data_dir,
                                                        split="test", batch_size=64)
        transformer = transformer_record["metrics"]
        eval_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        tfidf = tfidf_baseline(data_dir, args.labels)
        tfidf_seconds = time.perf_counter() - t0
        if args.publish:
            publish_with_comparison(work / "emotion", Path(args.publish), transformer_record, tfidf, args, n_train)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nGoEmotions test ({args.labels} labels), trained on {n_train} train examples; thresholds tuned on dev")
    print(f"{'':28}{'macro-F1':>10}{'micro-F1':>10}{'Jaccard':>10}")
    for name, m in (("Megatron-GPT (4x256) + head", transformer), ("TF-IDF + logistic regr.", tfidf)):
        print(f"{name:28}{m['macro_f1']:10.4f}{m['micro_f1']:10.4f}{m['jaccard_accuracy']:10.4f}")
    print("per-class F1 (transformer / tfidf):",
          ", ".join(f"{k} {transformer['per_class_f1'][k]:.3f}/{tfidf['per_class_f1'][k]:.3f}"
                    for k in transformer["per_class_f1"]))
    result = {
        "bench": "emotion_baseline",
        "ratio": transformer["macro_f1"] / max(tfidf["macro_f1"], 1e-12),
        "ratio_means": "transformer macro-F1 / TF-IDF+LR macro-F1 on GoEmotions test (>1: the LM-based classifier wins)",
        "labels": args.labels, "train_examples": n_train, "lm_steps": args.lm_steps,
        "lm_final_loss": lm.get("final_loss"), "finetune_steps": ft.get("steps"),
        "dev_macro_f1_tuned": ft.get("eval_macro_f1_tuned"),
        "transformer_macro_f1": transformer["macro_f1"], "transformer_micro_f1": transformer["micro_f1"],
        "transformer_jaccard": transformer["jaccard_accuracy"],
        "tfidf_macro_f1": tfidf["macro_f1"], "tfidf_micro_f1": tfidf["micro_f1"],
        "tfidf_jaccard": tfidf["jaccard_accuracy"],
        "seconds": {"lm": round(lm_seconds, 1), "finetune": round(ft_seconds, 1), "eval": round(eval_seconds, 1),
                    "tfidf": round(tfidf_seconds, 1), "total": round(time.perf_counter() - started, 1)},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
