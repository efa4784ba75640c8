"""LAMBADA cloze examples, built the way Megatron-LM's zero-shot evaluation builds them.

Reference: NVIDIA/Megatron-LM tag v1.0, `tasks/zeroshot_gpt2/datasets.py` (`_LambadaDataset.get_tokens`).
Data: OpenAI's detokenized `lambada_test.jsonl` (5,153 lines), one JSON object `{"text": ...}` per line.

Strict protocol (`--strict-lambada`, what the paper's README recommends): the target is the last
whitespace-separated word, tokenized with a leading space; the context is the text before that word, stripped,
tokenized on its own. Non-strict: the whole text is tokenized and the target is its last token only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LambadaExample", "lambada_pair", "read_lambada", "tokenize_lambada"]


def read_lambada(path: str | os.PathLike) -> list[str]:
    """The `text` of every line of a LAMBADA jsonl file, in file order (blank lines are skipped).

    Raises FileNotFoundError for a missing file and ValueError, naming the line, for anything else.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"LAMBADA file {path} does not exist; pass OpenAI's `lambada_test.jsonl`")
    if not path.is_file():
        raise ValueError(f"{path} is a directory; pass the LAMBADA jsonl file itself")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; pass OpenAI's `lambada_test.jsonl`") from None
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"{path} line {number} is not JSON; LAMBADA jsonl has one {{\"text\": ...}} object "
                             f"per line (got {line[:60]!r})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{path} line {number} has no string \"text\" field; LAMBADA jsonl has one "
                             f"{{\"text\": ...}} object per line")
        if len(record["text"].split()) < 2:
            raise ValueError(f"{path} line {number} has fewer than two words, so there is no context to predict "
                             "its last word from; remove the line")
        texts.append(record["text"])
    if not texts:
        raise ValueError(f"{path} holds no examples; pass OpenAI's `lambada_test.jsonl`")
    return texts


def lambada_pair(text: str) -> tuple[str, str]:
    """(context, target) under the strict protocol: target = last whitespace-separated word, context = the text up to
    its last occurrence, stripped."""
    target = text.split()[-1]
    return text[: text.rfind(target)].strip(), target


@dataclass(frozen=True)
class LambadaExample:
    context_ids: list[int]
    target_ids: list[int]


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_lambada(texts: list[str], tokenizer, strict: bool = True) -> list[LambadaExample]:
    """Token ids of each example's context and target (see the module docstring for the two protocols)."""
    examples = []
    for text in texts:
        if strict:
            context, target = lambada_pair(text)
            context_ids, target_ids = _ids(tokenizer, context), _ids(tokenizer, " " + target)
        else:
            ids = _ids(tokenizer, text)
            context_ids, target_ids = ids[:-1], ids[-1:]
        if not context_ids or not target_ids:
            raise ValueError(f"LAMBADA example {text[:60]!r} tokenizes to an empty context or target; "
                             "every example needs at least one context token and one target token")
        examples.append(LambadaExample(context_ids, target_ids))
    return examples
