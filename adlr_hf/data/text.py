"""Text data for causal-LM training: load with `datasets`, train a byte-level BPE, tokenize + pack, shard over DP ranks.

Pipeline (each step is one function; the training loop only needs the last two):

    ds  = load_text_dataset("corpus/")                      # datasets.Dataset, one column "text", one row per document
    tok = train_tokenizer(ds, vocab_size=8192, out_dir=d)   # byte-level BPE as a transformers PreTrainedTokenizerFast
    lm  = build_lm_dataset(ds, tok, seq_len=1024, cache_dir=c)   # packed blocks, column "input_ids" (torch int64)
    dl  = make_lm_dataloader(lm, micro_batch_size=8, dp_rank=r, dp_size=n, seed=1234, start_step=step)

Design choices:
- Documents. `.txt`/`.text` files are read with the `datasets` "text" builder, `sample_by="paragraph"` by default: one
  document per paragraph, paragraphs separated by an *empty* line ("\\n\\n"; a line holding spaces does not separate, so
  WikiText's " \\n" separators need `sample_by="line"`). Paragraphs lose their surrounding newlines; interior text is
  kept verbatim. `sample_by="line"` (one document per line, kept verbatim) and `"document"` (one per file) are the other
  choices. Documents that are empty or whitespace-only are dropped, for every format.
- Tokenizer. Byte-level BPE (GPT-2 style, no prefix space); `<|endoftext|>` is id 0 and serves as bos, eos and unk
  (byte-level BPE never needs unk); a separate `<pad>` token is id 1, so masking padding never masks a real EOS.
- Packing. Every document's tokens are followed by one EOS, all documents are concatenated in dataset order and cut into
  blocks of exactly `seq_len` tokens; `labels = input_ids` (the model shifts internally, GPT-2 style), added by the
  collator. The final partial block (fewer than `seq_len` tokens) is dropped: at most `seq_len - 1` tokens are lost.
- Sharding. Data is split over data-parallel ranks only; the TP ranks of one replica pass the same `dp_rank` and get
  identical batches. With `drop_last=True` the shards are disjoint and cover all samples but at most `dp_size - 1`
  (a different few each epoch when shuffled); with `drop_last=False` the shards are padded by repeating samples
  (DistributedSampler's rule) so every rank gets the same number.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.table import InMemoryTable
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .sampling import DPSampler, dp_sampler, make_dp_dataloader, steps_per_epoch

__all__ = [
    "EOS_TOKEN", "PAD_TOKEN", "MIN_VOCAB_SIZE", "SUPPORTED_EXTENSIONS",
    "load_text_dataset", "train_tokenizer", "load_tokenizer", "tokenizer_hash", "build_lm_dataset",
    "DPSampler", "dp_sampler", "steps_per_epoch", "lm_collate", "make_lm_dataloader",
]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)  # ids 0 and 1
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)  # the byte alphabet plus the special tokens

# file suffix -> `datasets` packaged builder
SUPPORTED_EXTENSIONS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_SAMPLE_BY = ("paragraph", "line", "document")
_TRUE = {"1", "ON", "YES", "TRUE"}
# Bump when the packed layout changes, so caches written by older code are not reused.
_PACK_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------------------- loading
def _hub_offline() -> bool:
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").upper() in _TRUE:
            return True
    return bool(datasets.config.HF_HUB_OFFLINE)


def _looks_like_path(name: str) -> bool:
    """A Hub dataset name is "name" or "owner/name"; anything else that does not exist is a missing local path."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1
            or Path(name).suffix.lower() in SUPPORTED_EXTENSIONS)


def _missing(entry: Any, why: str) -> FileNotFoundError:
    return FileNotFoundError(f"{str(entry)!r} is neither a file or folder on disk nor a reachable dataset ({why}); "
                             "check the path")


def _expand(path: Path) -> list[Path]:
    """A file (checked for a supported suffix) or every supported file under a folder, sorted, hidden entries skipped."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise FileNotFoundError(f"folder {str(path)!r} holds no text data files "
                                    f"(looked for {', '.join(SUPPORTED_EXTENSIONS)})")
        return files
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise ValueError(f"{str(path)!r} has an unsupported suffix {path.suffix!r}; supported: "
                         f"{', '.join(SUPPORTED_EXTENSIONS)} (convert it, or load it with datasets and pass the Dataset)")
    return [path]


def _select_text(ds: datasets.Dataset, text_column: str, source: str) -> datasets.Dataset:
    """Keep only `text_column` (a string column), renamed to "text"."""
    if text_column not in ds.column_names:
        raise ValueError(f"{source} has no column {text_column!r}; its columns are {ds.column_names}. "
                         "Pass text_column=<the column holding the documents>")
    feature = ds.features[text_column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(f"column {text_column!r} of {source} holds {feature}, not strings; "
                         "pass text_column=<a string column>")
    ds = ds.select_columns([text_column])
    return ds.rename_column(text_column, "text") if text_column != "text" else ds


def _keep_documents(batch: dict[str, list], strip_newlines: bool) -> dict[str, list]:
    """Batched `map` function: drop empty/whitespace-only documents (and strip paragraph-edge newlines if asked)."""
    docs = batch["text"]
    if strip_newlines:
        docs = [d.strip("\n") if d is not None else None for d in docs]
    return {"text": [d for d in docs if d is not None and d.strip()]}


def _file_problem(path: Path) -> str | None:
    """Why a local data file cannot be read as text data (None when it can)."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if SUPPORTED_EXTENSIONS[path.suffix.lower()] == "text":
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            return f"it is not UTF-8 text ({err.reason} at byte {err.start})"
    return None


def check_text_files(entries: Sequence[str | os.PathLike]) -> None:
    """Every local data file of `entries` must be readable text data; one clear error naming the first that is not.
    Entries that are not local paths (Hub dataset names) are left to the loader."""
    for entry in entries:
        path = Path(os.path.expanduser(os.fspath(entry)))
        if not path.exists():
            continue
        for f in _expand(path):
            problem = _file_problem(f)
            if problem:
                raise ValueError(f"{f} cannot be read ({problem}); fix or remove it, or pass --on-bad-sample skip to "
                                 "leave unreadable files out (they are counted in run_info.json)")


def load_text_dataset(paths_or_name: str | os.PathLike | Sequence[str | os.PathLike], text_column: str = "text", *,
                      sample_by: str = "paragraph", split: str = "train",
                      cache_dir: str | os.PathLike | None = None, bad_samples=None) -> datasets.Dataset:
    """Load documents as a `datasets.Dataset` with one string column "text" (one row per non-blank document).

    `paths_or_name`: a file, a folder (every .txt/.text/.json/.jsonl/.parquet file under it, sorted, hidden ones
    skipped), or a list of those (kept in the given order); or, when it is not a path on disk and the Hub is
    reachable (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE unset), a Hub dataset name loaded with `split`.
    `text_column`: the column holding documents in json/parquet/Hub data (text files always give "text").
    `sample_by`: how .txt/.text files are split into documents: "paragraph" (default), "line" or "document".
    `cache_dir`: passed to `datasets.load_dataset` (default: the datasets cache).
    `bad_samples`: an `adlr_hf.data.bad_samples.BadSamples` deciding what an unreadable file does (default: one
    error naming it); every file is checked before anything is loaded.
    """
    if sample_by not in _SAMPLE_BY:
        raise ValueError(f"sample_by={sample_by!r} is not one of {_SAMPLE_BY}")
    single = isinstance(paths_or_name, (str, os.PathLike))
    entries = [paths_or_name] if single else list(paths_or_name)
    if not entries:
        raise ValueError("paths_or_name is an empty list: pass at least one file, folder or dataset name")
    cache = str(cache_dir) if cache_dir is not None else None

    # Resolve every entry before loading anything, so a bad one fails first.
    files: list[Path] = []
    hub_name = None
    for entry in entries:
        if not isinstance(entry, (str, os.PathLike)):
            raise TypeError(f"paths_or_name entries must be paths or a dataset name, got {type(entry).__name__}")
        path = Path(os.path.expanduser(os.fspath(entry)))
        if path.exists():
            files.extend(_expand(path))
        elif _hub_offline():
            raise _missing(entry, "HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set, so the Hub was not consulted")
        elif not single:
            raise _missing(entry, "the entries of a list must be local paths; a Hub dataset is passed on its own")
        elif not isinstance(entry, str) or _looks_like_path(entry):
            raise _missing(entry, "it looks like a local path, so the Hub was not consulted")
        else:
            hub_name = entry

    if files:
        from .bad_samples import BadSamples

        bad_samples = bad_samples if bad_samples is not None else BadSamples("error")
        readable = []
        for f in files:
            problem = _file_problem(f)
            if problem is None:
                readable.append(f)
            else:
                bad_samples.report(f, problem)
        if not readable:
            raise ValueError(f"none of the {len(files)} data files can be read (e.g. {files[0]}); pass text files")
        files = readable

    if hub_name is not None:
        try:
            ds = datasets.load_dataset(hub_name, split=split, cache_dir=cache)
        except Exception as e:  # noqa: BLE001 -- any failure here means "not a reachable dataset"
            raise _missing(hub_name, f"loading it from the Hub failed: {type(e).__name__}: {e}") from e
        parts = [_select_text(ds, text_column, f"dataset {hub_name!r}")]
        strip_flags = [False]
    else:
        # Consecutive files of one format are loaded together; the groups are concatenated in order.
        groups: list[tuple[str, list[Path]]] = []
        for f in files:
            builder = SUPPORTED_EXTENSIONS[f.suffix.lower()]
            if groups and groups[-1][0] == builder:
                groups[-1][1].append(f)
            else:
                groups.append((builder, [f]))
        parts, strip_flags = [], []
        for builder, group in groups:
            kwargs = {"sample_by": sample_by} if builder == "text" else {}
            source = str(group[0]) if len(group) == 1 else f"{len(group)} {builder} files ({group[0]}, ...)"
            try:
                ds = datasets.load_dataset(builder, data_files=[str(f) for f in group], split="train",
                                           cache_dir=cache, **kwargs)
            except Exception as err:  # noqa: BLE001 - malformed JSON/parquet: name the files, not the builder
                raise ValueError(f"{source} cannot be read as {builder} data ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0][:200] if str(err) else ''}); fix the file") from None
            if builder == "text" and sample_by == "paragraph" and 0 < len(ds) <= len(group) and \
                    any("\n" in t.strip() for t in ds["text"]):
                warnings.warn(f"{source}: sample_by='paragraph' found no empty line between paragraphs, so each file is "
                              "one document; pass --sample-by line (sample_by='line') for one document per line (e.g. "
                              "WikiText, whose separator lines hold a space)", UserWarning, stacklevel=2)
            parts.append(_select_text(ds, "text" if builder == "text" else text_column, source))
            strip_flags.append(builder == "text" and sample_by == "paragraph")

    cleaned = [part.map(_keep_documents, batched=True, remove_columns=["text"], fn_kwargs={"strip_newlines": flag},
                        desc="Dropping blank documents")
               for part, flag in zip(parts, strip_flags)]
    return cleaned[0] if len(cleaned) == 1 else datasets.concatenate_datasets(cleaned)


# --------------------------------------------------------------------------------------------------------- tokenizer
def _text_batches(data: Any, text_column: str) -> Iterator[list[str]]:
    if isinstance(data, datasets.Dataset):
        if text_column not in data.column_names:
            raise ValueError(f"the dataset has no column {text_column!r}; its columns are {data.column_names}. "
                             "Pass text_column=<the column holding the documents>")
        for batch in data.select_columns([text_column]).iter(batch_size=1000):
            yield [t for t in batch[text_column] if t]
    elif isinstance(data, datasets.IterableDataset):
        for example in data:
            if text_column not in example:
                raise ValueError(f"the dataset has no column {text_column!r}; its columns are {list(example)}")
            yield [example[text_column]]
    else:
        for item in data:
            if isinstance(item, str):
                yield [item]
            elif isinstance(item, (list, tuple)) and all(isinstance(t, str) for t in item):
                yield list(item)
            else:
                raise TypeError(f"the iterator must yield strings or lists of strings, got {type(item).__name__}")


def train_tokenizer(dataset_or_iterator: datasets.Dataset | datasets.IterableDataset | Iterable[str],
                    vocab_size: int, out_dir: str | os.PathLike | None = None, *, text_column: str = "text",
                    min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on the documents and return it as a `PreTrainedTokenizerFast`.

    Special tokens: `<|endoftext|>` (id 0; bos = eos = unk) and `<pad>` (id 1). `vocab_size` counts the 256 byte
    tokens and the 2 special tokens, so it must be at least 258. The result depends only on the corpus (and
    `vocab_size`, `min_frequency`). When `out_dir` is given it is saved there with `save_pretrained`.
    """
    if isinstance(dataset_or_iterator, (str, bytes)):
        raise TypeError("pass a Dataset or an iterable of documents, not a single string")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size={vocab_size!r} is too small for a byte-level BPE: it needs the 256-byte alphabet "
                         f"plus the special tokens {list(SPECIAL_TOKENS)}, so vocab_size >= {MIN_VOCAB_SIZE}")
    if not isinstance(min_frequency, int) or min_frequency < 0:
        raise ValueError(f"min_frequency={min_frequency!r} must be a non-negative int")

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    n_docs = 0

    def documents() -> Iterator[list[str]]:
        nonlocal n_docs
        for batch in _text_batches(dataset_or_iterator, text_column):
            n_docs += len(batch)
            yield batch

    bpe.train_from_iterator(documents(), trainer=trainer)
    if n_docs == 0:
        raise ValueError("no text to train the tokenizer on: the dataset/iterator yielded no non-empty documents")

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN,
                                        unk_token=EOS_TOKEN, pad_token=PAD_TOKEN)
    assert tokenizer.eos_token_id == 0 and tokenizer.pad_token_id == 1, "special tokens must be ids 0 and 1"
    if out_dir is not None:
        tokenizer.save_pretrained(os.fspath(out_dir))
    return tokenizer


def load_tokenizer(path_or_name: str | os.PathLike) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained` on a saved folder (or a Hub name when online)."""
    name = os.fspath(path_or_name)
    if not os.path.exists(os.path.expanduser(name)) and _hub_offline():
        raise FileNotFoundError(f"{name!r} is neither a tokenizer folder on disk nor reachable on the Hub "
                                "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set); check the path")
    return AutoTokenizer.from_pretrained(os.path.expanduser(name))


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of what decides the token ids: the backend's vocab, merges, normalizer and pre-tokenizer, and the EOS id."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)  # call-time settings that transformers toggles; they do not change ids
    state.pop("padding", None)
    payload = json.dumps([state, tokenizer.eos_token_id], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------- packing
def _tokenize_documents(batch: dict[str, list], tokenizer: PreTrainedTokenizerBase, text_column: str,
                        eos_id: int) -> dict[str, list]:
    """Batched `map` function: token ids of each non-blank document followed by one EOS."""
    docs = [d for d in batch[text_column] if d is not None and d.strip()]
    ids = tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"] if docs else []
    return {"input_ids": [list(x) + [eos_id] for x in ids]}


def _pack(tokenized: datasets.Dataset, seq_len: int) -> tuple[list[np.ndarray], int]:
    """Concatenate the documents' ids in order and cut them into full blocks; returns the blocks and the token count."""
    blocks: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.int32)
    total = 0
    for table in tokenized.with_format("arrow").iter(batch_size=10_000):
        for chunk in table.column("input_ids").chunks:
            flat = chunk.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
            total += len(flat)
            buf = np.concatenate([carry, flat]) if len(carry) else flat
            n = len(buf) // seq_len
            if n:
                blocks.append(buf[: n * seq_len].reshape(n, seq_len))
            carry = buf[n * seq_len:].copy()
    return blocks, total


def check_document_dataset(dataset, text_column: str) -> None:
    """One split (a `datasets.Dataset`) holding documents in `text_column`; else one clear error."""
    if isinstance(dataset, datasets.DatasetDict):
        raise TypeError(f"pass one split (a datasets.Dataset), not a DatasetDict with splits {list(dataset)}")
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}")
    if text_column not in dataset.column_names:
        raise ValueError(f"the dataset has no column {text_column!r}; its columns are {dataset.column_names}. "
                         "Pass text_column=<the column holding the documents>")


def save_to_cache(dataset: datasets.Dataset, target: Path) -> datasets.Dataset:
    """`save_to_disk` written atomically to `target` (a crash leaves no half-written cache), then reloaded from
    disk."""
    from ..atomic import write_atomically

    write_atomically(target, lambda tmp: dataset.save_to_disk(str(tmp)))
    return datasets.load_from_disk(str(target))


def build_lm_dataset(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, seq_len: int, num_proc: int = 1,
                     cache_dir: str | os.PathLike | None = None, *, text_column: str = "text") -> datasets.Dataset:
    """Tokenize and pack `dataset` into blocks of `seq_len` tokens: column "input_ids" (torch int64 via set_format).

    Each non-blank document becomes its tokens plus one EOS; documents are concatenated in order and cut into blocks of
    exactly `seq_len` tokens, dropping the final partial block. Labels are the inputs (the model shifts), added by
    `lm_collate`. Tokenization runs as `dataset.map(batched=True, num_proc=num_proc)`; packing is one sequential pass
    over Arrow batches and holds the packed ids in memory (4 bytes a token) until they are saved.

    With `cache_dir`, the packed dataset is saved (`save_to_disk`, written to a temp folder then renamed) under
    `cache_dir/lm-<key>`, key = hash(dataset fingerprint, `tokenizer_hash`, seq_len, text_column), and later calls
    with the same key `load_from_disk` it without tokenizing. Several ranks may race to write it; the first rename wins
    (to save work, let one rank build it first and the others wait at a barrier).
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"seq_len={seq_len!r} is too short: a block needs at least 2 tokens to hold one "
                         "(input, next-token) pair; pass seq_len >= 2")
    if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc={num_proc!r} must be an int >= 1")
    check_document_dataset(dataset, text_column)
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError("the tokenizer has no eos_token; set one (e.g. tokenizer.eos_token = '<|endoftext|>')")

    key_src = json.dumps([_PACK_FORMAT_VERSION, dataset._fingerprint, tokenizer_hash(tokenizer), seq_len, text_column])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    target = Path(cache_dir).expanduser() / f"lm-{key}" if cache_dir is not None else None
    if target is not None and target.is_dir():
        packed = datasets.load_from_disk(str(target))
        packed.set_format("torch", columns=["input_ids"])
        return packed

    tokenized = dataset.map(
        _tokenize_documents, batched=True, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=dataset.column_names,
        fn_kwargs={"tokenizer": tokenizer, "text_column": text_column, "eos_id": eos_id},
        features=datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))}), desc="Tokenizing")
    blocks, total = _pack(tokenized, seq_len)
    if not blocks:
        raise ValueError(f"the corpus is too small: it has {total} tokens ({len(tokenized)} documents, each followed by "
                         f"EOS) but one block needs seq_len={seq_len} tokens; use more text or a smaller seq_len")

    column = pa.chunked_array([pa.FixedSizeListArray.from_arrays(pa.array(b.reshape(-1)), seq_len) for b in blocks])
    table = pa.table({"input_ids": column})
    packed = datasets.Dataset(InMemoryTable(table), fingerprint=key)
    if target is not None:
        packed = save_to_cache(packed, target)
    packed.set_format("torch", columns=["input_ids"])
    return packed



def lm_collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack packed blocks: {"input_ids": (B, seq_len) int64, "labels": a copy (the model shifts internally)}."""
    ids = torch.stack([torch.as_tensor(ex["input_ids"], dtype=torch.long) for ex in examples])
    return {"input_ids": ids, "labels": ids.clone()}


def make_lm_dataloader(dataset: Any, micro_batch_size: int, dp_rank: int, dp_size: int, seed: int,
                       start_step: int = 0, drop_last: bool = True, *, shuffle: bool = True,
                       num_workers: int = 0) -> DataLoader:
    """A DataLoader of this DP rank's micro-batches, positioned at `start_step` (micro-batches already consumed by
    this rank since the start of training, across epochs).

    Its `sampler` (a `DPSampler`) starts in epoch `start_step // steps_per_epoch(...)` at the right offset; call
    `loader.sampler.set_epoch(e)` before each epoch as with DistributedSampler. `drop_last=True` drops the tail that
    does not divide over the ranks and each rank's final partial micro-batch; `drop_last=False` pads the shards and
    keeps the partial batch. Batches: {"input_ids", "labels"} from `lm_collate`.
    """
    return make_dp_dataloader(dataset, micro_batch_size, dp_rank, dp_size, seed, lm_collate, start_step, drop_last,
                              shuffle=shuffle, num_workers=num_workers)
