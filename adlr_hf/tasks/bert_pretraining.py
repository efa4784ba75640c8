"""`bert-pretraining` (masked LM with 15 % masking, 80/10/10, optional whole-word, plus sentence-order prediction,
as Megatron-BERT trains; arXiv 1909.08053) and `masked-lm` (the masked-LM objective alone)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..family import Option
from .base import Task, TaskRun, _fmt_int, pipeline_snippet
from .text_data import TEXT_OPTIONS, check_seq_len, check_text_args, limit_to_positions, load_text, resolve_tokenizer, split_off_eval

WHOLE_WORD = Option("--whole-word-masking", dict(action="store_true", help="masked LM: mask whole words"))


class BertPretrainingTask(Task):
    name = "bert-pretraining"
    description = "masked LM + sentence-order prediction"
    auto_class_name = "AutoModelForPreTraining"
    pipeline_tag = "fill-mask"
    unit = "tokens"
    arguments = (*TEXT_OPTIONS, WHOLE_WORD)
    sentence_order = True
    small_scale_below = 10**9

    def check_args(self, args, config) -> None:
        check_text_args(args, config)

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.mlm import MLMCollator, build_mlm_dataset
        from ..data.wordpiece import train_wordpiece_tokenizer
        from ..parallel.state import rank0_first

        raw, paths, skipped = load_text(args, is_main)
        tokenizer, trained = resolve_tokenizer(args, raw, config.vocab_size, init_from, run_dir, is_main,
                                               lambda data, vocab, out: train_wordpiece_tokenizer(data, vocab, out))
        if tokenizer.mask_token_id is None:
            raise ValueError(f"tokenizer {args.tokenizer!r} has no mask token; masked-LM pretraining needs one "
                             "(use a BERT WordPiece tokenizer, or --tokenizer train)")
        if trained or init_from is None:
            config.vocab_size = len(tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
        check_seq_len(args.seq_len, config)
        limit_to_positions(tokenizer, config)
        samples = rank0_first(lambda: build_mlm_dataset(raw, tokenizer, args.seq_len, sop=self.sentence_order,
                                                        num_proc=args.num_proc, cache_dir=run_dir / "data_cache",
                                                        seed=args.seed), is_main)
        train, held_out = split_off_eval(samples, args.eval_fraction)
        # Masks come from our own generator: the same on every TP rank of a replica, and saved with checkpoints.
        collate = MLMCollator(tokenizer, whole_word=args.whole_word_masking,
                              generator=torch.Generator().manual_seed(args.seed))
        # Evaluation masks use a separate generator, so evaluating never shifts the training masks.
        eval_collate = MLMCollator(tokenizer, whole_word=args.whole_word_masking,
                                   generator=torch.Generator().manual_seed(args.seed + 1))
        return TaskRun(config, train, held_out, collate, args.seq_len, tokenizer, paths, eval_collate,
                       seq_len=args.seq_len, extra_info=skipped)

    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        rows = [("sequence length", training.get("seq_len")), ("tokens", _fmt_int(training.get("tokens")))]
        if training.get("eval_loss") is not None:
            what = "masked-LM + sentence-order loss" if self.sentence_order else "masked-LM loss"
            rows.append((f"held-out {what}", f"{training['eval_loss']:.4g}"))
        return rows

    def usage_snippet(self, model_id: str) -> str:
        return pipeline_snippet("fill-mask", model_id, "fill", 'fill(f"The capital of France is '
                                '{fill.tokenizer.mask_token}.")')


class MaskedLMTask(BertPretrainingTask):
    name = "masked-lm"
    description = "masked LM only"
    auto_class_name = "AutoModelForMaskedLM"
    sentence_order = False
