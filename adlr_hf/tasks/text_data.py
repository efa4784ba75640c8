"""Pieces the text tasks share: their command-line options, `--data` to a text dataset, the tokenizer (trained,
loaded, or the resumed run's), and the held-out split."""

from __future__ import annotations

from pathlib import Path

from ..family import Option
from ..parallel.state import barrier, rank0_first

SEQ_LEN = Option("--seq-len", dict(type=int, default=128, help="text tasks: tokens per sample (the maximum for "
                                                               "classification)"))
TEXT_COLUMN = Option("--text-column", dict(default="text", help="text tasks: the column holding the text"))
TOKENIZER = Option("--tokenizer", dict(default=None, help="tokenizer folder, or `train` to train one on --data "
                                                          "(default: the model folder's tokenizer, else `train`)"))
VOCAB_SIZE = Option("--vocab-size", dict(type=int, default=None, help="vocabulary size when training a tokenizer"))
SAMPLE_BY = Option("--sample-by", dict(choices=["paragraph", "line", "document"], default="paragraph",
                                       help="text tasks: how .txt files split into documents (default paragraph: "
                                            "blank-line separated; line for WikiText-style files)"))
TEXT_OPTIONS = (SEQ_LEN, TEXT_COLUMN, TOKENIZER, VOCAB_SIZE, SAMPLE_BY)


def load_text(args, is_main: bool):
    """The `--data` texts as a `datasets.Dataset` (the embedded default corpus when no --data), the paths, and what
    `--on-bad-sample skip` left out (for run_info.json)."""
    from ..data.bad_samples import BadSamples
    from ..data.default_corpus import build_default_corpus
    from ..data.text import load_text_dataset

    paths = args.data or [str(rank0_first(build_default_corpus, is_main))]
    bad = BadSamples(args.on_bad_sample)
    raw = rank0_first(lambda: load_text_dataset(paths if len(paths) > 1 else paths[0], text_column=args.text_column,
                                                sample_by=getattr(args, "sample_by", "paragraph"), bad_samples=bad),
                      is_main)
    return raw, paths, bad.summary()


def resolve_tokenizer(args, raw, vocab_size: int, init_from, run_dir: Path, is_main: bool, train_fn):
    """(tokenizer, trained): `--tokenizer` (a folder or `train`), else the model folder's own, else one trained on
    the data with `train_fn(data, vocab_size, out_dir)`. Saved under RUN/tokenizer."""
    from ..data.text import load_tokenizer

    tok_dir = run_dir / "tokenizer"
    source = args.tokenizer
    if source is None:
        has_own = init_from is not None and (Path(init_from) / "tokenizer_config.json").exists()
        source = str(init_from) if has_own else "train"
    resumed = getattr(args, "resume_checkpoint", None)
    if source == "train" and resumed is not None and (resumed.parent.parent / "tokenizer").is_dir():
        # A resumed run keeps the tokenizer its checkpoint was trained with: training one again need not give
        # identical merges, and any difference would change the data.
        source = str(resumed.parent.parent / "tokenizer")
    if source == "train":
        if is_main:
            train_fn(raw, args.vocab_size or vocab_size, tok_dir)
        barrier()
        tokenizer, trained = load_tokenizer(tok_dir), True
    else:
        tokenizer, trained = load_tokenizer(source), False
        if is_main:
            tokenizer.save_pretrained(tok_dir)
    return tokenizer, trained


def limit_to_positions(tokenizer, config) -> None:
    """A saved tokenizer truncates to the model's positions (`pipeline(..., truncation=True)` then fits)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit:
        tokenizer.model_max_length = int(limit)


def split_off_eval(dataset, fraction: float):
    """Hold out the last `fraction` of the samples (at least one when there are two or more)."""
    n_eval = int(len(dataset) * fraction) if fraction > 0 else 0
    if fraction > 0 and len(dataset) >= 2:
        n_eval = max(1, n_eval)
    train = dataset.select(range(len(dataset) - n_eval))
    return train, (dataset.select(range(len(dataset) - n_eval, len(dataset))) if n_eval else None)


def check_text_args(args, config) -> None:
    """What the text tasks can check before any folder, rank or cache exists: --seq-len against the positions, and
    every local data file readable (unless --on-bad-sample skip)."""
    from ..data.text import check_text_files

    if getattr(args, "seq_len", None) is not None:
        check_seq_len(args.seq_len, config)
    if args.data and args.on_bad_sample == "error":
        check_text_files(args.data)


def check_seq_len(seq_len: int, config) -> None:
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and seq_len > limit:
        raise ValueError(f"--seq-len {seq_len} exceeds the model's max_position_embeddings={limit}; lower "
                         "--seq-len or --set max_position_embeddings=...")
