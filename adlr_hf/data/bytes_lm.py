"""Byte-level LM data for the mLSTM baseline (arXiv 1812.01207; reference NVIDIA/sentiment-discovery, which trains
its mLSTM on raw UTF-8 bytes): documents as UTF-8 bytes, each followed by a newline byte, concatenated in order and
cut into blocks of `seq_len` byte ids (0-255); the final partial block is dropped. Column "input_ids" (torch int64),
batched by `adlr_hf.data.text.lm_collate` like the BPE pipeline.
"""

from __future__ import annotations

import datasets
import numpy as np

SEPARATOR = b"\n"


def build_byte_lm_dataset(dataset: datasets.Dataset, seq_len: int, text_column: str = "text") -> datasets.Dataset:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"seq_len={seq_len!r} must be an int >= 2")
    if text_column not in dataset.column_names:
        raise ValueError(f"the dataset has no column {text_column!r}; its columns are {dataset.column_names}")
    chunks = [np.frombuffer(doc.encode("utf-8") + SEPARATOR, dtype=np.uint8)
              for doc in dataset[text_column] if doc is not None and doc.strip()]
    stream = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)
    n_blocks = len(stream) // seq_len
    if n_blocks == 0:
        raise ValueError(f"the corpus has {len(stream)} bytes but one block needs seq_len={seq_len}; use more text or "
                         "a smaller --seq-len")
    blocks = stream[: n_blocks * seq_len].reshape(n_blocks, seq_len).astype(np.int32)
    packed = datasets.Dataset.from_dict({"input_ids": blocks.tolist()},
                                        features=datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))}))
    packed.set_format("torch", columns=["input_ids"])
    return packed
