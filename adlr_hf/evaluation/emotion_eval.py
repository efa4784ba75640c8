"""Multi-label emotion evaluation of a saved classifier (arXiv 1812.01207; reference NVIDIA/sentiment-discovery
`finetune_classifier.py` / `threshold.py`): macro-F1, micro-F1, per-class F1 and SemEval's Jaccard accuracy
(`adlr_hf/metrics/multilabel_emotion`), with the model's thresholds or thresholds tuned on another split.

    adlr-hf evaluate MODEL_DIR --task goemotions --data /data/goemotions [--split test] [--tune-thresholds-on dev]
    adlr-hf evaluate MODEL_DIR --task semeval-ec --data /data/semeval --split dev

The label set of the data follows the model: a GoEmotions model with the 7 Ekman labels is scored on the Ekman
mapping, a SemEval model with 8 labels on the Plutchik subset. The paper reports SemEval on the dev split (the
official test labels were not public then). Probabilities are sigmoid(logits); an emotion is predicted when its
probability is > its threshold.
"""

from __future__ import annotations

import os

import numpy as np
import torch

EMOTION_TASKS = {"goemotions": "goemotions", "semeval-ec": "semeval"}
SPLIT_ALIASES = {"train": "train", "dev": "validation", "val": "validation", "validation": "validation",
                 "test": "test"}


def _resolve_split(name: str) -> str:
    if name not in SPLIT_ALIASES:
        raise ValueError(f"unknown split {name!r}; choose one of train, dev (validation), test")
    return SPLIT_ALIASES[name]


def _label_set_for(kind: str, path, model_labels: list[str]) -> str:
    from ..data.emotion import GOEMOTIONS_LABEL_SETS, SEMEVAL_LABEL_SETS, goemotions_label_names

    if kind == "semeval":
        candidates = {name: labels for name, labels in SEMEVAL_LABEL_SETS.items()}
    else:
        candidates = {name: goemotions_label_names(path, name)[0] for name in GOEMOTIONS_LABEL_SETS}
    for name, labels in candidates.items():
        if list(labels) == list(model_labels):
            return name
    raise ValueError(f"the model predicts {model_labels}, which matches no {kind} label set "
                     f"({', '.join(f'{k}: {len(v)} labels' for k, v in candidates.items())}); evaluate it on the data "
                     "it was trained for")


@torch.no_grad()
def predict_probabilities(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 32) -> np.ndarray:
    """sigmoid(logits) [N, num_labels] for `texts`, batched by length (less padding), in the input order."""
    from ..data.emotion import EmotionCollator

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    model.eval()
    device = next(model.parameters()).device
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    if any(len(row) == 0 for row in ids):
        raise ValueError("some texts tokenize to nothing (empty texts); drop them")
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    collate = EmotionCollator(tokenizer.pad_token_id, tokenizer.padding_side)
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = collate([{"input_ids": ids[i]} for i in chunk])
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        out[chunk] = torch.sigmoid(logits.float()).cpu().numpy()
    return out


def evaluate_emotion_model_dir(model_dir, task: str, data, split: str = "test", tune_thresholds_on: str | None = None,
                               batch_size: int = 32, max_length: int | None = None, tp: int = 1) -> dict:
    """Score a saved emotion classifier on GoEmotions or SemEval E-c; returns
    {"task", "model", "data", "split", "settings", "metrics"} with metrics macro_f1, micro_f1, jaccard_accuracy,
    per_class_f1 {label: F1}, thresholds {label: threshold used}, num_examples."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from ..data.emotion import load_emotion_data
    from ..metrics.multilabel_emotion import multilabel_scores
    from ..metrics.multilabel_emotion.multilabel_emotion import apply_thresholds, tune_thresholds

    if task not in EMOTION_TASKS:
        raise ValueError(f"unknown emotion task {task!r}; choose one of {sorted(EMOTION_TASKS)}")
    model_dir = os.fspath(model_dir)
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise FileNotFoundError(f"{model_dir!r} is not a model folder (no config.json)")
    if not os.path.exists(os.fspath(data)):
        raise FileNotFoundError(f"--data {os.fspath(data)!r} does not exist")
    config = AutoConfig.from_pretrained(model_dir)
    if not hasattr(config, "label_names") or not hasattr(config, "thresholds"):
        raise ValueError(f"{model_dir!r} holds a {config.model_type!r} model; emotion evaluation needs an emotion "
                         "classifier (train one with --task emotion-classification)")
    split_name = _resolve_split(split)
    tune_name = _resolve_split(tune_thresholds_on) if tune_thresholds_on else None
    kind = EMOTION_TASKS[task]
    labels = config.label_names
    label_set = _label_set_for(kind, data, labels)
    emotion = load_emotion_data(kind, data, label_set)
    for needed in filter(None, (split_name, tune_name)):
        if needed not in emotion.splits:
            raise ValueError(f"{data} has no {needed} split; found {list(emotion.splits)}")
        if "labels" not in emotion.splits[needed].column_names:
            raise ValueError(f"the {needed} split of {data} has no gold labels; evaluate on another split "
                             "(the paper reports SemEval on dev)")

    kwargs = {"tp_size": tp} if tp > 1 else {}
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if max_length is None:
        max_length = config.max_position_embeddings or 512

    thresholds, source = list(config.thresholds), "config"
    if tune_name is not None:
        tune = emotion.splits[tune_name]
        probs = predict_probabilities(model, tokenizer, tune["text"], max_length, batch_size)
        thresholds, source = tune_thresholds(probs, np.asarray(tune["labels"])), f"tuned on {tune_name}"
    target = emotion.splits[split_name]
    probs = predict_probabilities(model, tokenizer, target["text"], max_length, batch_size)
    scores = multilabel_scores(apply_thresholds(probs, thresholds), np.asarray(target["labels"]).astype(np.int64),
                               label_names=labels)
    metrics = {**scores, "thresholds": dict(zip(labels, (float(t) for t in thresholds)))}
    return {"task": task, "model": model_dir, "data": os.fspath(data), "split": split_name,
            "settings": {"label_set": label_set, "max_length": max_length, "batch_size": batch_size,
                         "thresholds": source},
            "metrics": metrics}


def run_from_args(args) -> dict:
    """`adlr-hf evaluate --task goemotions|semeval-ec`."""
    return evaluate_emotion_model_dir(args.model_dir, args.task, args.data, split=args.split,
                                      tune_thresholds_on=args.tune_thresholds_on, batch_size=args.batch_size,
                                      max_length=args.seq_len, tp=args.tp)
