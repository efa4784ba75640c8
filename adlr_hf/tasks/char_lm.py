"""`char-lm`: byte-level language modelling (blocks of --seq-len UTF-8 bytes), as the mLSTM baseline of arXiv
1812.01207 is pre-trained. The byte tokenizer is the model family's own processor."""

from __future__ import annotations

from pathlib import Path

from .base import Task, TaskRun
from .causal_lm import CausalLMTask
from .text_data import SEQ_LEN, TEXT_COLUMN, load_text, split_off_eval


class CharLMTask(CausalLMTask):
    name = "char-lm"
    description = "byte-level language modelling"
    pipeline_tag = None
    arguments = (SEQ_LEN, TEXT_COLUMN)
    evaluations = ()

    def fits(self, config) -> bool:
        from ..registry import family_for

        spec = family_for(config)
        return Task.fits(self, config) and spec is not None and spec.processor is not None

    def check_args(self, args, config) -> None:
        if args.data and args.on_bad_sample == "error":
            from ..data.text import check_text_files

            check_text_files(args.data)

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.bytes_lm import build_byte_lm_dataset
        from ..data.text import lm_collate
        from ..parallel.state import barrier, rank0_first
        from ..registry import family_for

        tokenizer = family_for(config).processor(config)
        if config.vocab_size != len(tokenizer):
            raise ValueError(f"a byte-level LM needs vocab_size={len(tokenizer)} (256 bytes + pad), the config has "
                             f"{config.vocab_size}; drop the override")
        config.pad_token_id = tokenizer.pad_token_id
        if is_main:
            tokenizer.save_pretrained(run_dir / "tokenizer")
        barrier()
        raw, paths, skipped = load_text(args, is_main)
        packed = rank0_first(lambda: build_byte_lm_dataset(raw, args.seq_len, args.text_column), is_main)
        train, held_out = split_off_eval(packed, args.eval_fraction)
        return TaskRun(config, train, held_out, lm_collate, args.seq_len, tokenizer, paths, seq_len=args.seq_len,
                       extra_info=skipped)

    def usage_snippet(self, model_id: str) -> str:
        return Task.usage_snippet(self, model_id)

    def systems(self, model, processor, training, measure_inference: bool, runs: int) -> dict:
        return {}
