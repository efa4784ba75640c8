"""`emotion-classification`: fine-tune the multi-label emotion classifier of arXiv 1812.01207 (reference
NVIDIA/sentiment-discovery `finetune_classifier.py`) on a pre-trained LM, through the one training loop:

    python -m adlr_hf.train --model runs/lm/model --task emotion-classification --data goemotions /data/goemotions
    python -m adlr_hf.train --model runs/lm/model --task emotion-classification --data goemotions-ekman /data/goemotions
    python -m adlr_hf.train --model runs/mlstm/model --task emotion-classification --data semeval-plutchik /data/semeval

- `--model`: a saved Megatron-GPT or mLSTM LM folder (its encoder and tokenizer are loaded, the head is new), an
  emotion classifier folder (training continues), or a registered LM variant (random init; a BPE is trained on the
  training texts for the transformer). Head settings via `--set classifier_hidden_layers=[1024]`,
  `--set classifier_dropout=0.3`, `--set aux_lm_loss_weight=0.02`.
- `--data [KIND[-LABELSET]] PATH` (see `adlr_hf.data.emotion.parse_data_spec`); trains on the "train" split and, unless
  `--eval-fraction 0`, evaluates on the "validation" split.
- `--seq-len`: the maximum tokens (bytes for the mLSTM) per example; longer texts are truncated.
- Evaluation reports `loss`, `macro_f1` / `micro_f1` (at the config's thresholds) and `macro_f1_tuned` (each label at
  its best threshold on this pass), exact over the whole validation split and every data-parallel rank, computed by
  the `multilabel_emotion` metric module from per-label counts.
- The export's config.json gets `thresholds` tuned on the last validation pass (the loop always ends with one).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ...atomic import write_text_atomically
from ...family import Option
from ...metrics.multilabel_emotion.multilabel_emotion import DEFAULT_GRID, best_thresholds_from_counts, f1_from_counts
from ...tasks.base import EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int
from ...tasks.text_data import SEQ_LEN, TOKENIZER, VOCAB_SIZE, limit_to_positions, resolve_tokenizer
from .configuration_emotion import ENCODER_TYPE_OF, EmotionConfig

HEAD_FIELDS = ("classifier_hidden_layers", "classifier_dropout", "aux_lm_loss_weight", "mlstm_features")
LABELS = Option("--labels", dict(default=None, help="emotion classification: label set, e.g. `ekman` for "
                                                    "GoEmotions' Ekman mapping"))
_TUNE = Option("--tune-thresholds-on", dict(default=None, metavar="SPLIT",
                                            help="goemotions / semeval-ec: tune per-label thresholds on this split "
                                                 "(e.g. dev) instead of using the model's config.thresholds"))
_METRICS = {"macro_f1": ("f1_macro", "Macro F1"), "micro_f1": ("f1_micro", "Micro F1"),
            "jaccard_accuracy": ("jaccard_accuracy", "Jaccard accuracy (SemEval E-c)")}
_EVAL = "adlr_hf.evaluation.emotion_eval:run_from_args"


class EmotionMetric(EvalMetric):
    """Per-label tp/fp/fn at the config's thresholds and at every threshold of the tuning grid, summed over the
    pass and the data-parallel group; F1 through the `multilabel_emotion` metric module."""

    def __init__(self, thresholds, dp_group=None, grid=DEFAULT_GRID):
        self.thresholds = torch.tensor(thresholds, dtype=torch.float64)
        self.grid = torch.as_tensor(np.asarray(grid), dtype=torch.float64)
        self.dp_group = dp_group
        self.counts = None  # of the current pass
        self.last_counts = None  # of the last complete pass (threshold tuning)

    def reset(self) -> None:
        self.counts = None

    def add_batch(self, outputs, batch) -> None:
        probs = torch.sigmoid(outputs.logits.detach().double().cpu())
        gold = batch["labels"].detach().cpu() > 0.5
        at = probs > self.thresholds
        grid = probs[:, :, None] > self.grid
        gold_g = gold[:, :, None]
        counts = torch.cat([
            torch.stack([(at & gold).sum(0), (at & ~gold).sum(0), (~at & gold).sum(0)]).double().flatten(),
            torch.stack([(grid & gold_g).sum(0), (grid & ~gold_g).sum(0), (~grid & gold_g).sum(0)]).double().flatten(),
        ])
        self.counts = counts if self.counts is None else self.counts + counts

    def _split(self, counts):
        num_labels = len(self.thresholds)
        at = counts[: 3 * num_labels].view(3, num_labels).numpy()
        grid = counts[3 * num_labels:].view(3, num_labels, len(self.grid)).numpy()
        return at, grid

    def compute(self) -> dict[str, float]:
        counts = self.counts if self.counts is not None else \
            torch.zeros(3 * len(self.thresholds) * (1 + len(self.grid)), dtype=torch.float64)
        if self.dp_group is not None and dist.is_initialized() and dist.get_world_size(self.dp_group) > 1:
            dist.all_reduce(counts, group=self.dp_group)
        self.last_counts = counts
        at, grid = self._split(counts)
        return {"macro_f1": float(f1_from_counts(*at).mean()), "micro_f1": float(f1_from_counts(*at.sum(1))),
                "macro_f1_tuned": float(f1_from_counts(*grid).max(axis=1).mean())}

    def tuned_thresholds(self) -> list[float] | None:
        if self.last_counts is None:
            return None
        _, grid = self._split(self.last_counts)
        return best_thresholds_from_counts(*grid, grid=self.grid.numpy())


class EmotionRun(TaskRun):
    """Saves the tokenizer, then writes the thresholds tuned on the last validation pass into the exported
    config.json."""

    def save_processor(self, folder: Path) -> None:
        super().save_processor(folder)
        thresholds = self.metric.tuned_thresholds() if self.metric is not None else None
        config_file = Path(folder) / "config.json"
        if thresholds is None or not config_file.is_file():
            return
        config = json.loads(config_file.read_text())
        config["thresholds"] = thresholds
        write_text_atomically(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")


def emotion_config_for(config, labels, init_from, overrides: dict | None = None) -> EmotionConfig:
    """The EmotionConfig to train: the folder's own (labels must match when weights are loaded), or one around the
    LM's config with head fields from the `--set` overrides (`overrides`; AutoConfig.from_pretrained drops keys a
    saved config does not have, so they are read from the command line here)."""
    overrides = overrides or {}
    head = {}
    is_classifier = isinstance(config, EmotionConfig)
    for key in HEAD_FIELDS:
        if hasattr(config, key) and not is_classifier:
            head[key] = getattr(config, key)
            delattr(config, key)
        if key in overrides:
            head[key] = overrides[key]
    if not is_classifier:
        return EmotionConfig.from_encoder(config, labels, **head)
    if config.label_names != list(labels):
        if init_from is not None:
            raise ValueError(f"the classifier in {str(init_from)!r} predicts {config.label_names}, the data has "
                             f"{list(labels)}; fine-tune its language model instead, or pick the matching label set")
        config.set_labels(labels)
    for key, value in head.items():
        if key == "classifier_hidden_layers" and init_from is not None and list(value) != \
                config.classifier_hidden_layers:
            raise ValueError(f"--set classifier_hidden_layers={value} differs from the saved head "
                             f"{config.classifier_hidden_layers}; fine-tune the language model for a new head")
        setattr(config, key, value)
    return config


class EmotionClassificationTask(Task):
    name = "emotion-classification"
    description = "multi-label emotion classification on a pre-trained LM"
    auto_class_name = "AutoModelForSequenceClassification"
    pipeline_tag = "text-classification"
    unit = "examples"
    arguments = (SEQ_LEN, TOKENIZER, VOCAB_SIZE, LABELS)
    evaluations = (
        Evaluation("goemotions", _EVAL, "the GoEmotions folder",
                   ModelIndexEntry("text-classification", "Multi-label emotion classification", "", "", None, "test",
                                   _METRICS), (_TUNE,)),
        Evaluation("semeval-ec", _EVAL, "the SemEval-2018 E-c folder or file",
                   ModelIndexEntry("text-classification", "Multi-label emotion classification", "", "", None,
                                   "validation", _METRICS), (_TUNE,)),
    )

    def fits(self, config) -> bool:
        return isinstance(config, EmotionConfig) or getattr(config, "model_type", None) in ENCODER_TYPE_OF

    def model_class(self, config):
        if not self.fits(config):
            return None
        from .modeling_emotion import EmotionTransformerForSequenceClassification, MLSTMForSequenceClassification

        encoder_type = config.encoder_type if isinstance(config, EmotionConfig) else \
            ENCODER_TYPE_OF[config.model_type]
        return EmotionTransformerForSequenceClassification if encoder_type == "transformer" else \
            MLSTMForSequenceClassification

    def check_args(self, args, config) -> None:
        if not args.data:
            raise ValueError("emotion classification needs --data [KIND[-LABELSET]] PATH, e.g. --data goemotions "
                             "/data/goemotions")
        from ...data.emotion import load_emotion_data, parse_data_spec

        kind, label_set, path = parse_data_spec(args.data, args.labels)
        data = load_emotion_data(kind, path, label_set)  # malformed rows fail here, before any folder exists
        if "train" not in data.splits or "labels" not in data.splits["train"].column_names:
            raise ValueError(f"{path} has no labelled training split; found {list(data.splits)}")

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ...data.emotion import EmotionCollator, load_emotion_data, parse_data_spec, tokenize_emotion_dataset
        from ...data.text import train_tokenizer
        from ...parallel.state import barrier, get_parallel_state, rank0_first
        from ...registry import family_for
        from ...training.args import parse_overrides

        kind, label_set, path = parse_data_spec(args.data, args.labels)
        data = rank0_first(lambda: load_emotion_data(kind, path, label_set), is_main)
        if "train" not in data.splits or "labels" not in data.splits["train"].column_names:
            raise ValueError(f"{path} has no labelled training split; found {list(data.splits)}")
        emotion_config = emotion_config_for(config, data.labels, init_from, parse_overrides(args.overrides))
        encoder = emotion_config.encoder_config
        encoder_family = family_for(encoder)
        if encoder_family is not None and encoder_family.processor is not None:  # e.g. the mLSTM's byte tokenizer
            has_own = init_from is not None and (Path(init_from) / "tokenizer_config.json").exists()
            tokenizer = type(encoder_family.processor(encoder)).from_pretrained(init_from) if has_own else \
                encoder_family.processor(encoder)
            if is_main:
                tokenizer.save_pretrained(run_dir / "tokenizer")
            barrier()
        else:
            limit = encoder.max_position_embeddings
            if args.seq_len > limit:
                raise ValueError(f"--seq-len {args.seq_len} exceeds the encoder's max_position_embeddings={limit}; "
                                 "lower --seq-len")
            tokenizer, trained = resolve_tokenizer(args, data.splits["train"], encoder.vocab_size, init_from, run_dir,
                                                   is_main, lambda ds, vocab, out: train_tokenizer(
                                                       ds, vocab_size=vocab, out_dir=out))
            if trained or init_from is None:
                encoder.vocab_size = len(tokenizer)
            limit_to_positions(tokenizer, encoder)
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; emotion batches are padded: give it one")
        if len(tokenizer) > encoder.vocab_size:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the encoder's vocabulary is "
                             f"{encoder.vocab_size}; use the language model's own tokenizer")
        encoder.pad_token_id = emotion_config.pad_token_id = tokenizer.pad_token_id

        train = tokenize_emotion_dataset(data.splits["train"], tokenizer, args.seq_len)
        held_out, metric = None, None
        if args.eval_fraction > 0 and "validation" in data.splits and \
                "labels" in data.splits["validation"].column_names:
            # Sorted by length: less padding per evaluation batch (the F1 sums do not depend on the order).
            held_out = tokenize_emotion_dataset(data.splits["validation"], tokenizer, args.seq_len,
                                                sort_by_length=True)
            state = get_parallel_state()
            metric = EmotionMetric(emotion_config.thresholds, state.dp_group if state else None)
        collate = EmotionCollator(tokenizer.pad_token_id, tokenizer.padding_side)
        return EmotionRun(emotion_config, train, held_out, collate, 1, tokenizer,
                          [f"{data.kind}:{data.label_set}:{data.source}"], metric=metric,
                          extra_info={"labels": list(data.labels), "label_set": data.label_set})

    def build_model(self, run: TaskRun, init_from):
        model_class = self.model_class(run.config)
        if init_from is not None:
            # The loop passes tp_size=1 and shards the model itself afterwards.
            return model_class.from_pretrained(init_from, config=run.config, tp_size=1)
        return model_class(run.config)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        labels = training.get("labels")
        rows = [("labels", f"{training.get('label_set') or 'n/a'} ({len(labels)}: {', '.join(labels)})" if labels
                 else "n/a"),
                ("training examples seen", _fmt_int(training.get("examples")))]
        if training.get("eval_loss") is not None:
            rows.append(("held-out loss (BCE + auxiliary LM)", f"{training['eval_loss']:.4g}"))
        for key, name in (("eval_macro_f1", "held-out macro-F1"), ("eval_micro_f1", "held-out micro-F1")):
            if training.get(key) is not None:
                rows.append((name, f"{training[key]:.4g}"))
        return rows

    def limitations(self, training: dict | None) -> list[str]:
        if training and training.get("examples") is not None:
            return [f"It was fine-tuned on {_fmt_int(training.get('examples'))} labelled examples; check its "
                    "scores on your own data before relying on it."]
        return []

    def usage_snippet(self, model_id: str) -> str:
        return f"""```python
from transformers import pipeline

classify = pipeline("text-classification", model={model_id!r}, top_k=None, trust_remote_code=True)
scores = classify("so happy for you!")[0]            # every emotion with its sigmoid probability
limits = classify.model.config.thresholds           # per-emotion thresholds tuned on validation data
print([s["label"] for s in scores if s["score"] > limits[classify.model.config.label2id[s["label"]]]])
```"""
