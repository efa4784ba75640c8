"""WikiText-2/103 for zero-shot perplexity, read and detokenized the way Megatron-LM evaluates it.

Reference: NVIDIA/Megatron-LM tag v1.0, `tasks/zeroshot_gpt2/detokenizer.py` (`wikitext_detokenizer`) and
`tasks/zeroshot_gpt2/datasets.py` (`_build_wikitext103_dataset`); the same steps are in `evaluate_gpt2.py` at abe36e2.

    doc = read_wikitext("wiki.test.tokens")      # WikitextDocument(text=<detokenized>, num_original_tokens=T_o, ...)

Both official formats read the same way: `wiki.*.tokens` (rare words replaced by `<unk>`) and `wiki.*.raw` (the
original words). Both are word-tokenized with spaces around punctuation and `@-@`-style number separators, so both
are detokenized with the same rules and T_o is counted the same way on either.

The file is read as bytes and decoded as UTF-8 (as the reference does), so line endings are kept verbatim.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "WikitextDocument", "detokenize_brackets", "detokenize_contractions", "detokenize_misc",
    "detokenize_number_separators", "detokenize_punctuation", "original_word_count", "read_wikitext",
    "wikitext_detokenize",
]


# ------------------------------------------------------------------------------------------------ detokenizer rules
# One function per rule group of `wikitext_detokenizer`, in the reference's order; each is a pure str -> str.

def detokenize_contractions(text: str) -> str:
    """`"s '"` -> `"s'"` (plural possessive), then the reference's `/' [0-9]/` rule.

    The second rule is kept as the reference wrote it: a regex with literal slashes whose replacement inserts the
    literal text `[0-9]`. It only fires on the exact characters "/' <digit>/", which WikiText never contains, so it
    is a no-op in practice; it stays for fidelity.
    """
    text = text.replace("s '", "s'")
    return re.sub(r"/' [0-9]/", r"/'[0-9]/", text)


def detokenize_number_separators(text: str) -> str:
    """`" @-@ "` -> `"-"`, `" @,@ "` -> `","`, `" @.@ "` -> `"."` (WikiText's escaped hyphens and number separators)."""
    for escaped, plain in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")):
        text = text.replace(escaped, plain)
    return text


def detokenize_punctuation(text: str) -> str:
    """Drop the space before `:` `;` `.` `!` `?` `,` when the mark stands alone between spaces."""
    for mark in (":", ";", ".", "!", "?", ","):
        text = text.replace(f" {mark} ", f"{mark} ")
    return text


def detokenize_brackets(text: str) -> str:
    """Remove the spaces just inside `( )`, `[ ]`, `{ }`, `" "` and `' '` pairs (non-greedy, left to right)."""
    text = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", text)
    text = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", text)
    text = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", text)
    text = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', text)
    return re.sub(r"'\s*([^']*?)\s*'", r"'\1'", text)


def detokenize_misc(text: str) -> str:
    """Heading marks (`= = =` -> `===`, longest first), ` ° ` -> `°`, spaces at line ends/starts, ` N ` -> ` 1 `,
    ` 's` -> `'s`."""
    for spaced, tight in (("= = = =", "===="), ("= = =", "==="), ("= =", "=="),
                          (" \N{DEGREE SIGN} ", "\N{DEGREE SIGN}"), (" \n", "\n"), ("\n ", "\n"), (" N ", " 1 "),
                          (" 's", "'s")):
        text = text.replace(spaced, tight)
    return text


_RULE_GROUPS = (detokenize_contractions, detokenize_number_separators, detokenize_punctuation, detokenize_brackets,
                detokenize_misc)


def wikitext_detokenize(text: str) -> str:
    """Megatron-LM's `wikitext_detokenizer`: every rule group above, in the reference's order."""
    for rule_group in _RULE_GROUPS:
        text = rule_group(text)
    return text


# ------------------------------------------------------------------------------------------------------- counting
def original_word_count(text: str) -> int:
    """T_o as the reference computes it: `len(text.strip().split(" "))` on the original (not detokenized) file.

    It splits on single spaces only, so a newline does not separate words, and runs of spaces count empty strings;
    that is the reference's definition, and the adjusted perplexity divides by `T_o - 1`.
    """
    return len(text.strip().split(" "))


# -------------------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class WikitextDocument:
    """A WikiText split ready for tokenization: the detokenized text and the reference's word count."""

    path: str
    text: str  # detokenized; tokenize this as one stream
    num_original_tokens: int  # T_o, counted on the file before detokenizing


def _check_text(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}); a WikiText split is a `wiki.*.tokens` or "
                         "`wiki.*.raw` text file") from None
    if "\x00" in text:
        raise ValueError(f"{path} contains NUL bytes, so it is not a WikiText text file; pass `wiki.*.tokens` "
                         "or `wiki.*.raw`")
    if not text.strip():
        raise ValueError(f"{path} is empty; pass a WikiText split such as `wiki.test.tokens`")
    first = text.lstrip().split("\n", 1)[0].strip()
    if first.startswith("{"):
        try:
            json.loads(first)
        except ValueError:
            pass
        else:
            raise ValueError(f"{path} holds JSON lines, not WikiText; for LAMBADA's jsonl use the lambada task")
    return text


def read_wikitext(path: str | os.PathLike) -> WikitextDocument:
    """Read a WikiText split (`wiki.{train,valid,test}.{tokens,raw}`), count T_o and detokenize it.

    Raises FileNotFoundError for a missing file and ValueError for one that is not UTF-8 text, is empty, or holds
    JSON lines.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"WikiText file {path} does not exist; pass the path of e.g. `wiki.test.tokens`")
    if not path.is_file():
        raise ValueError(f"{path} is a directory; pass the WikiText file itself, e.g. {path / 'wiki.test.tokens'}")
    text = _check_text(path, path.read_bytes())
    return WikitextDocument(path=os.fspath(path), text=wikitext_detokenize(text),
                            num_original_tokens=original_word_count(text))
