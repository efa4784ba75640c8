"""The emotion-classification and byte-level LM tasks of the one training loop (arXiv 1812.01207).

`--task emotion-classification` fine-tunes the multi-label classifier on a pre-trained LM:

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
  its best threshold on this pass). These are exact over the whole validation split and every data-parallel rank:
  the per-label counts are summed across the DP group batch by batch (the same number of batches on every rank) and
  each batch reports the change of the running value, so the loop's sum over batches is the pass's value.
- After training the export's config.json gets `thresholds` tuned on the last validation pass (the loop always ends
  with one), via the grid search of `adlr_hf.models.emotion.thresholds`.

`--task char-lm` pre-trains the byte-level mLSTM (`--model mlstm-tiny`, `mlstm-4096`) on text files through the same
loop: bytes instead of BPE tokens, `--seq-len` bytes per block.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..models.emotion.thresholds import DEFAULT_GRID, best_thresholds_from_counts, f1_from_counts

HEAD_FIELDS = ("classifier_hidden_layers", "classifier_dropout", "aux_lm_loss_weight", "mlstm_features")


class EmotionEvalAccumulator:
    """Exact validation F1 from the loop's per-batch `eval_counts`, and the thresholds tuned on the last pass.

    A pass starts when the first batch ever seen comes again (evaluation batches are not shuffled). Counts are
    all-reduced over the data-parallel group on every batch; a batch returns {metric: (k·F_k − (k−1)·F_{k−1}, 1)},
    whose sum over the k batches of a pass divided by k is F after the pass.
    """

    def __init__(self, thresholds, dp_group=None, grid=DEFAULT_GRID):
        self.thresholds = torch.tensor(thresholds, dtype=torch.float64)
        self.grid = torch.as_tensor(np.asarray(grid), dtype=torch.float64)
        self.dp_group = dp_group
        self.first = None
        self.batches = 0
        self.counts = None
        self.previous: dict[str, float] = {}

    @staticmethod
    def _signature(batch) -> str:
        digest = hashlib.sha1()
        for key in ("input_ids", "labels"):
            tensor = batch[key].detach().cpu().contiguous()
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()

    def update(self, logits, batch) -> dict:
        signature = self._signature(batch)
        if self.first is None:
            self.first = signature
        elif signature == self.first:
            self.batches, self.counts, self.previous = 0, None, {}
        probs = torch.sigmoid(logits.detach().double().cpu())
        gold = batch["labels"].detach().cpu() > 0.5
        at = probs > self.thresholds
        grid = probs[:, :, None] > self.grid
        gold_g = gold[:, :, None]
        counts = torch.cat([
            torch.stack([(at & gold).sum(0), (at & ~gold).sum(0), (~at & gold).sum(0)]).double().flatten(),
            torch.stack([(grid & gold_g).sum(0), (grid & ~gold_g).sum(0), (~grid & gold_g).sum(0)]).double().flatten(),
        ])
        if self.dp_group is not None and dist.is_initialized() and dist.get_world_size(self.dp_group) > 1:
            dist.all_reduce(counts, group=self.dp_group)
        self.counts = counts if self.counts is None else self.counts + counts
        self.batches += 1
        values = self.values()
        k = self.batches
        out = {name: (k * value - (k - 1) * self.previous.get(name, 0.0), 1.0) for name, value in values.items()}
        self.previous = values
        return out

    def _split(self):
        num_labels = len(self.thresholds)
        at = self.counts[: 3 * num_labels].view(3, num_labels).numpy()
        grid = self.counts[3 * num_labels:].view(3, num_labels, len(self.grid)).numpy()
        return at, grid

    def values(self) -> dict[str, float]:
        at, grid = self._split()
        per_class = f1_from_counts(*at)
        return {"macro_f1": float(per_class.mean()), "micro_f1": float(f1_from_counts(*at.sum(1))),
                "macro_f1_tuned": float(f1_from_counts(*grid).max(axis=1).mean())}

    def tuned_thresholds(self) -> list[float] | None:
        if self.counts is None:
            return None
        _, grid = self._split()
        return best_thresholds_from_counts(*grid, grid=self.grid.numpy())


class EmotionExport:
    """The processor saved with the exported model: the tokenizer, then the thresholds tuned on the last validation
    pass written into the folder's config.json (run on the main process, after the model is saved)."""

    def __init__(self, tokenizer, accumulator: EmotionEvalAccumulator | None):
        self.tokenizer = tokenizer
        self.accumulator = accumulator

    def save_pretrained(self, folder, **kwargs):
        self.tokenizer.save_pretrained(folder, **kwargs)
        thresholds = self.accumulator.tuned_thresholds() if self.accumulator is not None else None
        config_file = Path(folder) / "config.json"
        if thresholds is None or not config_file.is_file():
            return
        config = json.loads(config_file.read_text())
        config["thresholds"] = thresholds
        tmp = config_file.parent / f".config.json.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, config_file)


class EmotionModelFactory:
    """What train.py calls as `task.auto_class`: builds the classifier from the task's EmotionConfig (the config the
    loop read is the LM's)."""

    def __init__(self, task):
        self.task = task

    def from_config(self, config):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_config(self.task.emotion_config)

    def from_pretrained(self, path, config=None, **kwargs):
        from transformers import AutoModelForSequenceClassification

        # The loop passes tp_size=1 and shards the model itself afterwards.
        return AutoModelForSequenceClassification.from_pretrained(path, config=self.task.emotion_config, **kwargs)


def emotion_config_for(config, labels, init_from, overrides: dict | None = None):
    """The EmotionConfig to train: the folder's own (labels must match when weights are loaded), or one around the
    LM's config with head fields from the `--set` overrides (`overrides`; AutoConfig.from_pretrained drops keys a
    saved config does not have, so they are read from the command line here)."""
    from ..models.emotion import EmotionConfig

    overrides = overrides or {}
    head = {}
    for key in HEAD_FIELDS:
        if hasattr(config, key) and config.model_type != "adlr_emotion":
            head[key] = getattr(config, key)
            delattr(config, key)
        if key in overrides:
            head[key] = overrides[key]
    if config.model_type == "adlr_emotion":
        if config.label_names != list(labels):
            if init_from is not None:
                raise ValueError(f"the classifier in {str(init_from)!r} predicts {config.label_names}, the data has "
                                 f"{list(labels)}; fine-tune its language model instead, or pick the matching "
                                 "label set")
            config.set_labels(labels)
        for key, value in head.items():
            if key == "classifier_hidden_layers" and init_from is not None and list(value) != \
                    config.classifier_hidden_layers:
                raise ValueError(f"--set classifier_hidden_layers={value} differs from the saved head "
                                 f"{config.classifier_hidden_layers}; fine-tune the language model for a new head")
            setattr(config, key, value)
        return config
    return EmotionConfig.from_encoder(config, labels, **head)


def build_emotion_task(task, args, config, init_from, run_dir: Path, is_main: bool):
    from ..data.emotion import EmotionCollator, load_emotion_data, parse_data_spec, tokenize_emotion_dataset
    from ..data.text import train_tokenizer
    from ..models.emotion import MLSTMByteTokenizer
    from ..parallel.state import get_parallel_state
    from .args import parse_overrides
    from .tasks import TaskData, _tokenizer, barrier, rank0_first

    if not args.data:
        raise ValueError("emotion classification needs --data [KIND[-LABELSET]] PATH, e.g. --data goemotions "
                         "/data/goemotions")
    kind, label_set, path = parse_data_spec(args.data, getattr(args, "labels", None))
    data = rank0_first(lambda: load_emotion_data(kind, path, label_set), is_main)
    if "train" not in data.splits or "labels" not in data.splits["train"].column_names:
        raise ValueError(f"{path} has no labelled training split; found {list(data.splits)}")
    emotion_config = emotion_config_for(config, data.labels, init_from, parse_overrides(args.overrides))
    encoder = emotion_config.encoder_config
    task.emotion_config = emotion_config

    if emotion_config.encoder_type == "mlstm":
        has_own = init_from is not None and (Path(init_from) / "tokenizer_config.json").exists()
        tokenizer = MLSTMByteTokenizer.from_pretrained(init_from) if has_own else MLSTMByteTokenizer()
        if is_main:
            tokenizer.save_pretrained(run_dir / "tokenizer")
        barrier()
    else:
        limit = encoder.max_position_embeddings
        if args.seq_len > limit:
            raise ValueError(f"--seq-len {args.seq_len} exceeds the encoder's max_position_embeddings={limit}; "
                             "lower --seq-len")
        tokenizer, trained = _tokenizer(args, data.splits["train"], encoder, init_from, run_dir, is_main,
                                        lambda ds, vocab, out: train_tokenizer(ds, vocab_size=vocab, out_dir=out))
        if trained or init_from is None:
            encoder.vocab_size = len(tokenizer)
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; emotion batches are padded: give it one")
    if len(tokenizer) > encoder.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the encoder's vocabulary is "
                         f"{encoder.vocab_size}; use the language model's own tokenizer")
    encoder.pad_token_id = emotion_config.pad_token_id = tokenizer.pad_token_id

    train = tokenize_emotion_dataset(data.splits["train"], tokenizer, args.seq_len)
    held_out = None
    accumulator = None
    if args.eval_fraction > 0 and "validation" in data.splits and "labels" in data.splits["validation"].column_names:
        # Sorted by length: less padding per evaluation batch (the F1 sums do not depend on the order).
        held_out = tokenize_emotion_dataset(data.splits["validation"], tokenizer, args.seq_len, sort_by_length=True)
        state = get_parallel_state()
        accumulator = EmotionEvalAccumulator(emotion_config.thresholds, state.dp_group if state else None)
    task.accumulator = accumulator
    collate = EmotionCollator(tokenizer.pad_token_id, tokenizer.padding_side)
    return TaskData(train, held_out, collate, 1, "examples", EmotionExport(tokenizer, accumulator),
                    [f"{data.kind}:{data.label_set}:{data.source}"])


def build_char_lm_task(args, config, run_dir: Path, is_main: bool):
    from ..data.bytes_lm import build_byte_lm_dataset
    from ..data.text import lm_collate
    from ..models.emotion import MLSTMByteTokenizer
    from .tasks import TaskData, _load_text, barrier, rank0_first, split_off_eval

    tokenizer = MLSTMByteTokenizer()
    if config.vocab_size != len(tokenizer):
        raise ValueError(f"a byte-level LM needs vocab_size={len(tokenizer)} (256 bytes + pad), the config has "
                         f"{config.vocab_size}; drop the override")
    config.pad_token_id = tokenizer.pad_token_id
    if is_main:
        tokenizer.save_pretrained(run_dir / "tokenizer")
    barrier()
    raw, paths = _load_text(args, is_main)
    packed = rank0_first(lambda: build_byte_lm_dataset(raw, args.seq_len, args.text_column), is_main)
    train, held_out = split_off_eval(packed, args.eval_fraction)
    return TaskData(train, held_out, lm_collate, args.seq_len, "tokens", tokenizer, paths)
