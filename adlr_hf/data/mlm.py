"""Masked-LM (BERT) pretraining data: sentence-order-prediction samples and the masking collator.

    ds    = load_text_dataset("corpus/")                         # column "text", one row per document
    mlm   = build_mlm_dataset(ds, tokenizer, seq_len=512, sop=True, cache_dir=c)
    coll  = MLMCollator(tokenizer, mlm_probability=0.15, whole_word=False, seed=1234)
    batch = coll([mlm[i] for i in range(8)])                     # model(**batch) -> MLM loss (+ SOP loss)

Samples follow Megatron-LM's BERT data (`megatron/data/bert_dataset.py` and `helpers.cpp` at v2.6) and Google's
`create_pretraining_data.py`:

- Sentences. A document's text is split into lines, and each line after `.`, `!` or `?` followed by white space (a
  regex, not NLTK's punkt, which would need a download: abbreviations such as "Dr. X" split too). A column holding
  lists of strings is taken as already split.
- Chunks. A document's sentences are gathered in order into chunks of about `seq_len - 3` tokens (`seq_len - 2`
  without SOP); with probability `short_seq_prob` (0.1, Megatron's and Google's default) a chunk's target length is
  drawn uniformly from [2, max] instead, so the model also sees short inputs. With SOP a chunk needs at least two
  sentences (Megatron's `min_num_sent = 2` with the binary head); a document's trailing one-sentence chunk and
  one-sentence documents yield no SOP sample.
- SOP. A chunk is cut at a random sentence boundary into A and B; with probability 0.5 they are swapped
  (`sentence_order_label` 1), else kept (0). The pair is truncated to fit by dropping one token at a time from the
  longer segment, from its front or back at random (Megatron's `truncate_segments`), then laid out as
  `[CLS] A [SEP] B [SEP]` with `token_type_ids` 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`. Without SOP a chunk
  becomes `[CLS] tokens [SEP]`, all token types 0.
- Determinism. Every random choice for document i comes from `numpy.random.default_rng([seed, i])`, so the samples do
  not depend on `num_proc` or on batch boundaries.

Masking is done per batch by `MLMCollator`, a `transformers.DataCollatorForLanguageModeling`:

- Token masking is that collator unchanged: every non-special token is selected with probability `mlm_probability`;
  a selected token becomes `[MASK]` with probability 0.8, else a random vocabulary token with probability 0.5 (so
  0.1 overall), else stays (0.1); `labels` hold the original ids at selected positions and -100 elsewhere. Special
  tokens (`tokenizer.all_special_ids`: [CLS], [SEP], [PAD], [MASK], [UNK]) are never selected. With `seed` (or a
  `generator`) the masks are reproducible (DataLoader workers get seed + worker id, transformers' rule).
- Whole-word masking reuses transformers' whole-word machinery (transformers 5 has no `DataCollatorForWholeWordMask`;
  `DataCollatorForLanguageModeling(whole_word_mask=True)` replaced it), with two changes and the reasons for them.
  (1) Words. transformers finds words from character offsets (`offset_mapping`, tokens whose spans touch belong to
  one word). Our samples concatenate separately tokenized sentences, whose offsets restart at 0, and "don't" would be
  one word there but three WordPiece words in BERT's own whole-word masking. So words come from the token strings:
  for WordPiece a word is a token without the `##` continuation prefix plus the `##` pieces after it (Google's
  `create_pretraining_data.py --do_whole_word_mask`); for byte-level BPE (GPT-2, `Ġ` marks a leading space) or
  SentencePiece (`▁`) a word starts at a token with that marker, and tokens without it continue the previous word
  (so punctuation without a space joins the word before it; the first word after a special token always starts a
  new word). The collator feeds these words to transformers as synthetic offsets. (2) 80/10/10. transformers
  forces `[MASK]` on every selected token under whole-word masking; BERT's reference decides 80/10/10 per token of
  the selected words, so we restore `mask_replace_prob=0.8, random_replace_prob=0.1`. Words are selected with
  probability `mlm_probability`, so about that fraction of tokens is selected too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from .text import check_document_dataset, save_to_cache, tokenizer_hash

__all__ = ["MLMCollator", "build_mlm_dataset", "make_sop_sample", "split_sentences", "word_start_table"]

# Bump when the sample layout changes, so caches written by older code are not reused.
_MLM_FORMAT_VERSION = 1
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


# ------------------------------------------------------------------------------------------------------- samples
def split_sentences(text: str | list[str]) -> list[str]:
    """A document's sentences: its non-blank lines, each split after `.`, `!` or `?` followed by white space. A list
    of strings is taken as already split (blank entries dropped)."""
    if isinstance(text, (list, tuple)):
        return [s.strip() for s in text if s is not None and s.strip()]
    if text is None:
        return []
    return [s.strip() for line in text.splitlines() for s in _SENTENCE_END.split(line) if s.strip()]


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: np.random.Generator) -> None:
    """Megatron's `truncate_segments`: drop one token at a time from the longer segment, its front or back at random."""
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def make_sop_sample(chunk: list[list[int]], seq_len: int, cls_id: int, sep_id: int, rng: np.random.Generator,
                    sop: bool = True) -> dict[str, Any]:
    """One sample from a chunk of consecutive tokenized sentences (at least two with `sop`):
    `[CLS] A [SEP] B [SEP]`, A/B cut at a random sentence boundary and swapped with probability 0.5
    (`sentence_order_label` 1 = swapped), truncated to `seq_len`; or `[CLS] tokens [SEP]` without `sop`."""
    if not sop:
        tokens = [t for sentence in chunk for t in sentence]
        _truncate_pair(tokens, [], seq_len - 2, rng)
        ids = [cls_id, *tokens, sep_id]
        return {"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": [1] * len(ids)}
    if len(chunk) < 2:
        raise ValueError(f"a sentence-order sample needs at least 2 sentences, got {len(chunk)}")
    a_end = int(rng.integers(1, len(chunk)))  # A = chunk[:a_end], B = chunk[a_end:], both non-empty
    a = [t for sentence in chunk[:a_end] for t in sentence]
    b = [t for sentence in chunk[a_end:] for t in sentence]
    swapped = bool(rng.random() < 0.5)
    if swapped:
        a, b = b, a
    _truncate_pair(a, b, seq_len - 3, rng)
    ids = [cls_id, *a, sep_id, *b, sep_id]
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids),
            "sentence_order_label": int(swapped)}


def _document_samples(sentences: list[list[int]], seq_len: int, sop: bool, short_seq_prob: float, cls_id: int,
                      sep_id: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Pack one document's sentences into chunks (Megatron's samples mapping) and turn each into a sample."""
    sentences = [s for s in sentences if s]
    max_tokens = seq_len - (3 if sop else 2)
    min_sentences = 2 if sop else 1

    def target() -> int:
        return int(rng.integers(2, max_tokens + 1)) if rng.random() < short_seq_prob else max_tokens

    samples, chunk, length, goal = [], [], 0, target()
    for i, sentence in enumerate(sentences):
        chunk.append(sentence)
        length += len(sentence)
        if (length >= goal and len(chunk) >= min_sentences) or i == len(sentences) - 1:
            if len(chunk) >= min_sentences:
                samples.append(make_sop_sample(chunk, seq_len, cls_id, sep_id, rng, sop))
            chunk, length, goal = [], 0, target()
    return samples


def _samples_batch(batch: dict[str, list], indices: list[int], tokenizer: PreTrainedTokenizerBase, text_column: str,
                   seq_len: int, sop: bool, short_seq_prob: float, seed: int) -> dict[str, list]:
    """Batched `map` function: documents -> samples (any number per document)."""
    docs = [split_sentences(text) for text in batch[text_column]]
    flat = [s for doc in docs for s in doc]
    ids = tokenizer(flat, add_special_tokens=False, verbose=False)["input_ids"] if flat else []
    out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    if sop:
        out["sentence_order_label"] = []
    start = 0
    for index, doc in zip(indices, docs):
        sentences, start = ids[start:start + len(doc)], start + len(doc)
        rng = np.random.default_rng([seed, index])
        for sample in _document_samples(sentences, seq_len, sop, short_seq_prob, tokenizer.cls_token_id,
                                        tokenizer.sep_token_id, rng):
            for key in out:
                out[key].append(sample[key])
    return out


def _features(sop: bool) -> datasets.Features:
    features = {"input_ids": datasets.List(datasets.Value("int32")),
                "token_type_ids": datasets.List(datasets.Value("int8")),
                "attention_mask": datasets.List(datasets.Value("int8"))}
    if sop:
        features["sentence_order_label"] = datasets.Value("int64")
    return datasets.Features(features)


def build_mlm_dataset(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, seq_len: int, sop: bool = True,
                      num_proc: int = 1, cache_dir: str | os.PathLike | None = None, *, text_column: str = "text",
                      seed: int = 1234, short_seq_prob: float = 0.1) -> datasets.Dataset:
    """BERT pretraining samples from `dataset` (one document per row in `text_column`; see the module docstring).

    Columns: `input_ids`, `token_type_ids`, `attention_mask` (variable length <= `seq_len`, padded per batch by
    `MLMCollator`) and, with `sop`, `sentence_order_label` (0 = in order, 1 = swapped). Masking happens in the
    collator, so every epoch sees new masks. Runs as `dataset.map(batched=True, num_proc=num_proc)`; with `cache_dir`
    the result is saved under `cache_dir/mlm-<key>` (key = hash of the dataset fingerprint, `tokenizer_hash`,
    `seq_len`, `sop`, `seed`, `short_seq_prob`, `text_column`; written to a temp folder then renamed) and later calls
    with the same key load it.
    """
    check_document_dataset(dataset, text_column)
    shortest = 5 if sop else 3
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < shortest:
        raise ValueError(f"seq_len={seq_len!r} is too short: {'[CLS] A [SEP] B [SEP]' if sop else '[CLS] x [SEP]'} "
                         f"needs at least {shortest} tokens; pass seq_len >= {shortest}")
    if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc={num_proc!r} must be an int >= 1")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise ValueError(f"short_seq_prob={short_seq_prob!r} must be between 0 and 1")
    for name in ("cls_token", "sep_token"):
        if getattr(tokenizer, f"{name}_id", None) is None:
            raise ValueError(f"the tokenizer has no {name}; BERT samples need [CLS] and [SEP] (use a BERT WordPiece "
                             "tokenizer or set them, e.g. tokenizer.add_special_tokens({'cls_token': '[CLS]'}))")

    key_src = json.dumps([_MLM_FORMAT_VERSION, dataset._fingerprint, tokenizer_hash(tokenizer), seq_len, sop, seed,
                          short_seq_prob, text_column])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    target = Path(cache_dir).expanduser() / f"mlm-{key}" if cache_dir is not None else None
    if target is not None and target.is_dir():
        return datasets.load_from_disk(str(target))

    samples = dataset.map(
        _samples_batch, batched=True, with_indices=True, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=dataset.column_names, features=_features(sop), desc="Building MLM samples",
        fn_kwargs={"tokenizer": tokenizer, "text_column": text_column, "seq_len": seq_len, "sop": sop,
                   "short_seq_prob": short_seq_prob, "seed": seed})
    if len(samples) == 0:
        need = "documents with at least 2 sentences" if sop else "non-empty documents"
        raise ValueError(f"no samples: the {len(dataset)} documents hold no {need}; use more text"
                         + (" or sop=False" if sop else ""))
    return samples if target is None else save_to_cache(samples, target)


# ------------------------------------------------------------------------------------------------------- masking
def word_start_table(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Bool tensor over token ids: True where a token starts a word (see the module docstring). Special tokens are
    True; so are ids past the vocabulary (never produced)."""
    vocab = tokenizer.get_vocab()
    size = max(len(tokenizer), max(vocab.values()) + 1)
    table = torch.ones(size, dtype=torch.bool)
    backend = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    prefix = getattr(backend, "continuing_subword_prefix", None)
    if type(backend).__name__ == "WordPiece" or (prefix is None and any(t.startswith("##") for t in vocab)):
        prefix = prefix or "##"
        for token, index in vocab.items():
            table[index] = not token.startswith(prefix)
    else:
        marker = next((m for m in ("Ġ", "▁") if any(t.startswith(m) for t in vocab)), None)
        if marker is None:
            raise ValueError(f"cannot tell word boundaries for {type(tokenizer).__name__}: its vocabulary has neither "
                             "WordPiece '##' pieces nor 'Ġ'/'▁' word markers; use whole_word=False")
        for token, index in vocab.items():
            table[index] = token.startswith(marker)
    for index in tokenizer.all_special_ids:
        table[index] = True
    return table


class MLMCollator(DataCollatorForLanguageModeling):
    """Pads a list of samples and masks them for MLM: a dict batch with `input_ids`, `token_type_ids`,
    `attention_mask`, `labels` (-100 where not selected) and, when the samples have it, `sentence_order_label` —
    ready for `model(**batch)`. transformers' `DataCollatorForLanguageModeling` does the padding, the RNG handling and
    the 80/10/10 replacement; `whole_word=True` changes how words are found and keeps 80/10/10 (module docstring).

    `seed` makes the masks reproducible (a fresh torch.Generator per process); alternatively pass your own
    `generator`. `mask_replace_prob`/`random_replace_prob` change the 80/10 split.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, mlm_probability: float = 0.15, whole_word: bool = False,
                 seed: int | None = None, *, generator: torch.Generator | None = None, mask_replace_prob: float = 0.8,
                 random_replace_prob: float = 0.1, pad_to_multiple_of: int | None = None):
        if seed is not None and generator is not None:
            raise ValueError("pass seed or generator, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed={seed!r} must be an int")
        with warnings.catch_warnings():
            # transformers warns that whole-word masking drops random replacement; we restore it below on purpose.
            warnings.filterwarnings("ignore", message="Random token replacement is not supported")
            super().__init__(tokenizer=tokenizer, mlm=True, whole_word_mask=whole_word, mlm_probability=mlm_probability,
                             mask_replace_prob=mask_replace_prob, random_replace_prob=random_replace_prob,
                             pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt", seed=seed)
        self.mask_replace_prob, self.random_replace_prob = float(mask_replace_prob), float(random_replace_prob)
        self.whole_word = whole_word
        self._special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self._word_start = word_start_table(tokenizer) if whole_word else None
        if generator is not None:
            self.generator = generator

    def torch_mask_tokens(self, inputs: torch.Tensor, special_tokens_mask: Any | None = None,
                          offset_mapping: Any | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if special_tokens_mask is None:  # vectorised; transformers would loop over the ids in Python
            special_tokens_mask = torch.isin(inputs, self._special_ids)
        if self.whole_word:
            offset_mapping = self._word_offsets(inputs)
        return super().torch_mask_tokens(inputs, special_tokens_mask=special_tokens_mask, offset_mapping=offset_mapping)

    def _word_offsets(self, inputs: torch.Tensor) -> np.ndarray:
        """Synthetic character offsets that encode our words for transformers' whole-word masking: token i spans
        [2i+1, 2i+2) when it starts a word (a gap to the previous token) and [2i, 2i+2) when it continues one."""
        ids = inputs.clamp(0, len(self._word_start) - 1)
        starts_word = self._word_start[ids].numpy()
        position = 2 * np.arange(inputs.shape[1])[None, :]
        begin = np.where(starts_word, position + 1, position)
        return np.stack([begin, np.broadcast_to(position + 2, begin.shape)], axis=-1)
