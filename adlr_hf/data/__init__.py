"""`datasets`-based data loaders and collators. Text/LM pipeline: `adlr_hf.data.text`; default corpus:
`adlr_hf.data.default_corpus`."""

from .default_corpus import build_default_corpus
from .text import (
    DPSampler,
    build_lm_dataset,
    dp_sampler,
    lm_collate,
    load_text_dataset,
    load_tokenizer,
    make_lm_dataloader,
    steps_per_epoch,
    train_tokenizer,
)

__all__ = [
    "DPSampler", "build_default_corpus", "build_lm_dataset", "dp_sampler", "lm_collate", "load_text_dataset",
    "load_tokenizer", "make_lm_dataloader", "steps_per_epoch", "train_tokenizer",
]
