"""What the one training loop needs to know about a task: which head to build, and how to turn `--data` into
train/eval datasets, a collator and a processor (tokenizer or image processor) saved beside the exported model.

Adding a family's task means adding one `Task` here; the loop and the engines stay untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist


@dataclass
class TaskData:
    train: Any
    eval: Any | None
    collate: Callable[[list], dict]
    units_per_sample: int  # for throughput: tokens per text sample, 1 per image
    unit: str  # "tokens" or "images"
    processor: Any  # saved with the exported model
    data: list[str]  # what was trained on, for run_info.json / the model card
    eval_collate: Callable[[list], dict] | None = None


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rank0_first(fn, is_main: bool):
    """Run fn on rank 0 first (it fills caches), then on the other ranks (they read them)."""
    result = fn() if is_main else None
    barrier()
    return result if is_main else fn()


def split_off_eval(dataset, fraction: float):
    """Hold out the last `fraction` of the samples (at least one when there are two or more)."""
    n_eval = int(len(dataset) * fraction) if fraction > 0 else 0
    if fraction > 0 and len(dataset) >= 2:
        n_eval = max(1, n_eval)
    train = dataset.select(range(len(dataset) - n_eval))
    return train, (dataset.select(range(len(dataset) - n_eval, len(dataset))) if n_eval else None)


def _load_text(args, is_main):
    from ..data.default_corpus import build_default_corpus
    from ..data.text import load_text_dataset

    paths = args.data or [str(rank0_first(build_default_corpus, is_main))]
    raw = rank0_first(lambda: load_text_dataset(paths if len(paths) > 1 else paths[0],
                                                text_column=args.text_column), is_main)
    return raw, paths


def _tokenizer(args, raw, config, init_from, run_dir: Path, is_main: bool, train_fn):
    from ..data.text import load_tokenizer

    tok_dir = run_dir / "tokenizer"
    source = args.tokenizer
    if source is None:
        has_own = init_from is not None and (init_from / "tokenizer_config.json").exists()
        source = str(init_from) if has_own else "train"
    resumed = getattr(args, "resume_checkpoint", None)
    if source == "train" and resumed is not None and (resumed.parent.parent / "tokenizer").is_dir():
        # A resumed run keeps the tokenizer its checkpoint was trained with: training one again need not give
        # identical merges, and any difference would change the data.
        source = str(resumed.parent.parent / "tokenizer")
    if source == "train":
        if is_main:
            train_fn(raw, args.vocab_size or config.vocab_size, tok_dir)
        barrier()
        return load_tokenizer(tok_dir), True
    tokenizer = load_tokenizer(source)
    if is_main:
        tokenizer.save_pretrained(tok_dir)
    return tokenizer, False


def _check_seq_len(args, config) -> None:
    limit = getattr(config, "max_position_embeddings", args.seq_len)
    if args.seq_len > limit:
        raise ValueError(f"--seq-len {args.seq_len} exceeds the model's max_position_embeddings={limit}; lower "
                         "--seq-len or --set max_position_embeddings=...")


class CausalLMTask:
    name = "causal-lm"

    @property
    def auto_class(self):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskData:
        from ..data.text import build_lm_dataset, lm_collate, train_tokenizer

        raw, paths = _load_text(args, is_main)
        tokenizer, trained = _tokenizer(args, raw, config, init_from, run_dir, is_main,
                                        lambda data, vocab, out: train_tokenizer(data, vocab_size=vocab, out_dir=out))
        if trained or init_from is None:
            config.vocab_size = len(tokenizer)
        config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        _check_seq_len(args, config)
        packed = rank0_first(lambda: build_lm_dataset(raw, tokenizer, args.seq_len, num_proc=args.num_proc,
                                                      cache_dir=run_dir / "data_cache"), is_main)
        train, held_out = split_off_eval(packed, args.eval_fraction)
        return TaskData(train, held_out, lm_collate, args.seq_len, "tokens", tokenizer, paths)

    def eval_counts(self, outputs, batch) -> dict:
        return {}


class BertPretrainingTask:
    """Masked LM (15 %, 80/10/10, optional whole-word) plus sentence-order prediction, as Megatron-BERT trains."""

    name = "bert-pretraining"
    sop = True

    @property
    def auto_class(self):
        from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

        return AutoModelForPreTraining if self.sop else AutoModelForMaskedLM

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskData:
        from ..data.mlm import MLMCollator, build_mlm_dataset
        from ..data.wordpiece import train_wordpiece_tokenizer

        raw, paths = _load_text(args, is_main)
        tokenizer, trained = _tokenizer(args, raw, config, init_from, run_dir, is_main,
                                        lambda data, vocab, out: train_wordpiece_tokenizer(data, vocab, out))
        if tokenizer.mask_token_id is None:
            raise ValueError(f"tokenizer {args.tokenizer!r} has no mask token; masked-LM pretraining needs one "
                             "(use a BERT WordPiece tokenizer, or --tokenizer train)")
        if trained or init_from is None:
            config.vocab_size = len(tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
        _check_seq_len(args, config)
        samples = rank0_first(lambda: build_mlm_dataset(raw, tokenizer, args.seq_len, sop=self.sop,
                                                        num_proc=args.num_proc, cache_dir=run_dir / "data_cache",
                                                        seed=args.seed), is_main)
        train, held_out = split_off_eval(samples, args.eval_fraction)
        # Masks come from our own generator: the same on every TP rank of a replica, and saved with checkpoints.
        collate = MLMCollator(tokenizer, whole_word=args.whole_word_masking,
                              generator=torch.Generator().manual_seed(args.seed))
        # Evaluation masks use a separate generator, so evaluating never shifts the training masks.
        eval_collate = MLMCollator(tokenizer, whole_word=args.whole_word_masking,
                                   generator=torch.Generator().manual_seed(args.seed + 1))
        return TaskData(train, held_out, collate, args.seq_len, "tokens", tokenizer, paths, eval_collate)

    def eval_counts(self, outputs, batch) -> dict:
        return {}


class MaskedLMTask(BertPretrainingTask):
    name = "masked-lm"
    sop = False


class ImageClassificationTask:
    name = "image-classification"

    @property
    def auto_class(self):
        from transformers import AutoModelForImageClassification

        return AutoModelForImageClassification

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskData:
        from ..data.images import (
            eval_transform,
            image_collate,
            label_names,
            load_image_folder,
            train_transform,
            with_image_transform,
        )

        if not args.data or len(args.data) != 1:
            raise ValueError("image classification needs --data <one image folder> laid out as "
                             "<split>/<class>/<image> or <class>/<image>")
        splits = rank0_first(lambda: load_image_folder(args.data[0]), is_main)
        names = label_names(splits)
        if init_from is None or config.num_labels != len(names):
            config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        if "train" in splits:
            train = splits["train"]
            held_out = splits.get("validation", splits.get("test"))
        else:
            train, held_out = split_off_eval(next(iter(splits.values())), args.eval_fraction)
        size, resize = config.image_size, config.resize_size
        train = with_image_transform(train, train_transform(size))
        if held_out is not None:
            held_out = with_image_transform(held_out, eval_transform(size, resize))
        from ..models.pd_resnet import PDResNetImageProcessor

        return TaskData(train, held_out, image_collate, 1, "images", PDResNetImageProcessor.for_config(config),
                        list(args.data))

    def eval_counts(self, outputs, batch) -> dict:
        correct = (outputs.logits.argmax(-1) == batch["labels"]).sum().item()
        return {"accuracy": (correct, batch["labels"].numel())}


class EmotionClassificationTask:
    """Multi-label emotion classification on a pre-trained LM (arXiv 1812.01207); see adlr_hf/training/emotion.py."""

    name = "emotion-classification"
    emotion_config = None  # set by build(): the classifier's config around the LM's
    accumulator = None  # validation F1 and threshold counts of the current run

    @property
    def auto_class(self):
        from .emotion import EmotionModelFactory

        return EmotionModelFactory(self)

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskData:
        from .emotion import build_emotion_task

        return build_emotion_task(self, args, config, init_from, run_dir, is_main)

    def eval_counts(self, outputs, batch) -> dict:
        return self.accumulator.update(outputs.logits, batch) if self.accumulator is not None else {}


class CharLMTask(CausalLMTask):
    """Byte-level LM pre-training of the mLSTM baseline (vocabulary: 256 bytes + pad)."""

    name = "char-lm"

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskData:
        from .emotion import build_char_lm_task

        return build_char_lm_task(args, config, run_dir, is_main)


TASKS = {task.name: task for task in (CausalLMTask(), BertPretrainingTask(), MaskedLMTask(),
                                      ImageClassificationTask(), EmotionClassificationTask(), CharLMTask())}
DEFAULT_TASK = {"adlr_megatron_gpt": "causal-lm", "adlr_megatron_bert": "bert-pretraining",
                "adlr_pd_resnet": "image-classification", "adlr_emotion": "emotion-classification",
                "adlr_mlstm": "char-lm"}


def task_for(config, requested: str | None):
    name = requested or DEFAULT_TASK.get(config.model_type)
    if name is None:
        raise ValueError(f"no default training task for model_type {config.model_type!r}; pass --task "
                         f"({', '.join(sorted(TASKS))})")
    if name not in TASKS:
        raise ValueError(f"unknown --task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


def seeded_collate(collate):
    """The collator's own RNG (MLM masking), if any, so checkpoints can save and restore it."""
    generator = getattr(collate, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None
