"""Multi-label emotion data (arXiv 1812.01207): SemEval-2018 Task 1 E-c and GoEmotions, as `datasets` splits of
{"id", "text", "labels"} with multi-hot float label vectors, plus tokenization and a padding collator.

    data = load_emotion_data("goemotions", "/data/goemotions", label_set="ekman")   # EmotionData
    data.splits["train"][0]   # {"id": "eebbqej", "text": "...", "labels": [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]}
    data.labels               # ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    tokenized = tokenize_emotion_dataset(data.splits["train"], tokenizer, max_length=128)
    batch = EmotionCollator(tokenizer.pad_token_id)([tokenized[0], tokenized[1]])

Formats:
- SemEval-2018 E-c (English), official files `2018-E-c-En-{train,dev,test}.txt`: tab-separated with a header
  `ID  Tweet  anger anticipation disgust fear joy love optimism pessimism sadness surprise trust`, labels 0/1. A test
  file without gold labels (columns missing or holding `NONE`) gives a split without "labels". The
  NVIDIA/sentiment-discovery copies (`train.csv`, `val.csv`, `test.csv`: comma-separated, an unnamed index column
  first) read the same way. `label_set="plutchik"` keeps the paper's 8 Plutchik emotions (drops love, optimism,
  pessimism). Tweets are cleaned with `process_tweet` (the reference's preprocessing) unless `clean=False`.
- GoEmotions (Demszky et al. 2020, `train.tsv`, `dev.tsv`, `test.tsv`): no header, three tab-separated fields
  (text, comma-separated label ids into `emotions.txt`, comment id). Lines are split on tabs only, so texts with
  quotes stay verbatim. `label_set`: "all" (27 emotions + neutral), "ekman" (`ekman_mapping.json`: anger, disgust,
  fear, joy, sadness, surprise + neutral; an example gets every group one of its labels maps to) or "sentiment"
  (`sentiment_dict.json`: positive, negative, ambiguous + neutral). Texts are used as they are.

Splits are named "train", "validation", "test".

Tokenization: `max_length` tokens with truncation from the right (the start of the text is kept), no special tokens
added, no padding; `EmotionCollator` pads each batch to its longest row on the tokenizer's side ("right" by
default; the classifiers pool the last real token, so "left" gives the same logits).
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch

SEMEVAL_EC_LABELS = ["anger", "anticipation", "disgust", "fear", "joy", "love", "optimism", "pessimism", "sadness",
                     "surprise", "trust"]
PLUTCHIK_LABELS = ["anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust"]
SEMEVAL_LABEL_SETS = {"all": SEMEVAL_EC_LABELS, "plutchik": PLUTCHIK_LABELS}
GOEMOTIONS_LABEL_SETS = ("all", "ekman", "sentiment")
KINDS = ("goemotions", "semeval")
NEUTRAL = "neutral"

_FEATURES = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                               "labels": datasets.Sequence(datasets.Value("float32"))})
_UNLABELED_FEATURES = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string")})


# -- the reference's tweet cleaning ----------------------------------------------------------------------------------
_HASHTAG = re.compile(r"#(\S+)")
_BAD_HASHTAG = re.compile(r"(\S+)!!")
_MENTION = re.compile(r"@(\S+)")
_LEADING_NAMES = re.compile(r"^\s*((?:@\S+\s*)+)")
_TAIL_NAMES = re.compile(r"\s*((?:@\S+\s*)+)$")
_EMOJI_NAME = re.compile(r":(\S+?):")

try:  # the reference spells emoji out with the `emoji` package; without it they are dropped with other non-ASCII
    import emoji as _emoji
except ImportError:  # pragma: no cover - depends on the environment
    _emoji = None


def _remove_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def process_tweet(text: str, save_text_formatting: bool = True, keep_emoji: bool = False,
                  keep_usernames: bool = False) -> str:
    """The tweet cleaning of NVIDIA/sentiment-discovery `data_utils/preprocess.py` `process_tweet`, with its defaults.

    With `save_text_formatting` (the default): URLs `https…` → "xxxx", emoji → ":name:" (when the `emoji` package
    is installed), hashtags `#word` → "word!!", mentions kept. Always: literal "\\n", whitespace and `<br>` → space,
    the entities `&amp; &#039; &gt; &lt;` unescaped (only these four, as the reference), accents stripped, then
    everything but printable ASCII and whitespace dropped and runs of whitespace collapsed.
    Without it: URLs and "xxx…" removed, hashtag signs dropped, mentions removed (or, with `keep_usernames`, only
    leading/trailing ones). The reference's `\\x..` pattern never matches (`{2,3,4}` is not a quantifier): skipped.
    """
    s = str(text)
    if save_text_formatting:
        s = re.sub(r"https\S+", "xxxx", s)
    else:
        s = re.sub(r"https\S+", " ", s)
        s = re.sub(r"x{3,5}", " ", s)
    s = re.sub(r"\\n", " ", s)
    s = re.sub(r"\s", " ", s)
    s = s.replace("<br>", " ").replace("&amp;", "&").replace("&#039;", "'").replace("&gt;", ">").replace("&lt;", "<")
    if _emoji is not None and (save_text_formatting or keep_emoji):
        s = _emoji.demojize(s)
        if not save_text_formatting:
            s = s.replace("face_with", "").replace("face_", "").replace("_face", "")
            s = _EMOJI_NAME.sub(r" \1 ", s).replace("(_", "(").replace("_", " ")
    s = _remove_accents(s)
    if save_text_formatting:
        s = _HASHTAG.sub(r"\1!!", s)
    else:
        s = _HASHTAG.sub(r"\1", s)
        s = _BAD_HASHTAG.sub(r"\1", s)
        if keep_usernames:
            s = " ".join(s.split())
            s = _LEADING_NAMES.sub(" ", s)
            s = _TAIL_NAMES.sub(" ", s)
            s = _MENTION.sub(r"\1", s)
        else:
            s = _MENTION.sub(" ", s)
    s = "".join(c for c in s if c.isspace() or 31 < ord(c) < 127)
    return " ".join(s.split())


# -- readers ---------------------------------------------------------------------------------------------------------
@dataclass
class EmotionData:
    splits: datasets.DatasetDict  # "train" / "validation" / "test" (those present)
    labels: list[str]  # label names, in label-vector order
    kind: str  # "goemotions" | "semeval"
    label_set: str
    source: str  # the folder or file read


def _multi_hot(active, names_index: dict[str, int]) -> list[float]:
    vector = [0.0] * len(names_index)
    for name in active:
        vector[names_index[name]] = 1.0
    return vector


def read_semeval_ec(path, label_set: str = "all", clean: bool = True) -> datasets.Dataset:
    """One SemEval-2018 E-c file (official tab-separated `.txt`, or the reference's `.csv`) as a Dataset."""
    path = Path(path)
    if label_set not in SEMEVAL_LABEL_SETS:
        raise ValueError(f"label_set={label_set!r} is not one of {sorted(SEMEVAL_LABEL_SETS)} for SemEval E-c")
    if not path.is_file():
        raise FileNotFoundError(f"SemEval E-c file {str(path)!r} does not exist")
    names = SEMEVAL_LABEL_SETS[label_set]
    index = {name: i for i, name in enumerate(names)}
    delimiter = "," if path.suffix == ".csv" else "\t"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter=delimiter,
                               quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE))
    if not rows:
        raise ValueError(f"{path} is empty; expected a header `ID<TAB>Tweet<TAB>anger ... trust`")
    header = [h.strip() for h in rows[0]]
    if "ID" not in header or "Tweet" not in header:
        raise ValueError(f"{path} has header {header[:5]}...; expected columns ID, Tweet and the 11 emotions "
                         "(the SemEval-2018 Task 1 E-c format)")
    id_col, text_col = header.index("ID"), header.index("Tweet")
    label_cols = {name: header.index(name) for name in SEMEVAL_EC_LABELS if name in header}
    labeled = len(label_cols) == len(SEMEVAL_EC_LABELS)
    records: dict[str, list] = {"id": [], "text": [], "labels": []}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ValueError(f"{path}:{line_no} has {len(row)} fields, the header has {len(header)}")
        values = [row[label_cols[name]].strip() for name in label_cols]
        if labeled and any(v.upper() == "NONE" for v in values):
            labeled = False  # an official test file without gold labels
        if labeled and any(v not in ("0", "1") for v in values):
            raise ValueError(f"{path}:{line_no}: emotion columns must hold 0 or 1, got {values}")
        records["id"].append(row[id_col])
        records["text"].append(process_tweet(row[text_col]) if clean else row[text_col])
        if labeled:
            records["labels"].append(_multi_hot([n for n in names if row[label_cols[n]].strip() == "1"], index))
    if not records["id"]:
        raise ValueError(f"{path} holds no examples")
    if not labeled:
        return datasets.Dataset.from_dict({"id": records["id"], "text": records["text"]}, features=_UNLABELED_FEATURES)
    return datasets.Dataset.from_dict(records, features=_FEATURES)


def _semeval_split_of(name: str) -> str | None:
    lowered = name.lower()
    if "train" in lowered:
        return "train"
    if "dev" in lowered or "val" in lowered:
        return "validation"
    if "test" in lowered:
        return "test"
    return None


def load_semeval_ec(folder, label_set: str = "all", clean: bool = True) -> EmotionData:
    """The SemEval E-c splits found in `folder` (file names containing train / dev|val / test; `*gold*` preferred for
    test), or a single file (returned as its split)."""
    folder = Path(folder)
    if folder.is_file():
        files = [folder]
    elif folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".txt", ".csv", ".tsv") and _semeval_split_of(p.name))
    else:
        raise FileNotFoundError(f"SemEval E-c data {str(folder)!r} does not exist")
    chosen: dict[str, Path] = {}
    for path in files:
        split = _semeval_split_of(path.name) or "train"
        if split not in chosen or "gold" in path.name.lower():
            chosen[split] = path
    if not chosen:
        raise FileNotFoundError(f"{folder} holds no SemEval E-c files (expected e.g. 2018-E-c-En-train.txt, "
                                "2018-E-c-En-dev.txt, 2018-E-c-En-test.txt)")
    splits = datasets.DatasetDict({split: read_semeval_ec(p, label_set, clean) for split, p in sorted(chosen.items())})
    return EmotionData(splits, list(SEMEVAL_LABEL_SETS[label_set]), "semeval", label_set, str(folder))


def _read_json_mapping(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the GoEmotions folder needs it for this label set")
    return json.loads(path.read_text(encoding="utf-8"))


def goemotions_label_names(folder, label_set: str = "all") -> tuple[list[str], list[list[str]]]:
    """(label names of `label_set`, and for each of the 28 original labels the names it maps to)."""
    folder = Path(folder)
    if label_set not in GOEMOTIONS_LABEL_SETS:
        raise ValueError(f"label_set={label_set!r} is not one of {list(GOEMOTIONS_LABEL_SETS)} for GoEmotions")
    emotions_file = folder / "emotions.txt"
    if not emotions_file.is_file():
        raise FileNotFoundError(f"{emotions_file} is missing; a GoEmotions folder holds emotions.txt and "
                                "train.tsv / dev.tsv / test.tsv")
    original = [line.strip() for line in emotions_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if label_set == "all":
        return original, [[name] for name in original]
    mapping = _read_json_mapping(folder / ("ekman_mapping.json" if label_set == "ekman" else "sentiment_dict.json"))
    groups = list(mapping)
    group_of = {member: group for group, members in mapping.items() for member in members}
    targets = []
    for name in original:
        if name == NEUTRAL:
            targets.append([NEUTRAL])
        elif name in group_of:
            targets.append([group_of[name]])
        else:
            raise ValueError(f"GoEmotions label {name!r} is not in the {label_set} mapping of {folder}")
    return groups + [NEUTRAL], targets


def read_goemotions_split(path, num_original: int, targets: list[list[str]], names: list[str]) -> datasets.Dataset:
    path = Path(path)
    index = {name: i for i, name in enumerate(names)}
    records: dict[str, list] = {"id": [], "text": [], "labels": []}
    with path.open(encoding="utf-8", newline="") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                raise ValueError(f"{path}:{line_no} has {len(fields)} tab-separated fields; GoEmotions rows are "
                                 "text<TAB>label ids<TAB>comment id")
            text, ids, comment_id = fields
            try:
                label_ids = [int(x) for x in ids.split(",")]
            except ValueError:
                raise ValueError(f"{path}:{line_no}: label ids {ids!r} are not comma-separated integers") from None
            if any(not 0 <= i < num_original for i in label_ids):
                raise ValueError(f"{path}:{line_no}: label ids {label_ids} outside [0, {num_original})")
            active = {name for i in label_ids for name in targets[i]}
            records["id"].append(comment_id)
            records["text"].append(text)
            records["labels"].append(_multi_hot(sorted(active, key=index.get), index))
    if not records["id"]:
        raise ValueError(f"{path} holds no examples")
    return datasets.Dataset.from_dict(records, features=_FEATURES)


def load_goemotions(folder, label_set: str = "all") -> EmotionData:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"GoEmotions folder {str(folder)!r} does not exist")
    names, targets = goemotions_label_names(folder, label_set)
    splits = {}
    for split, file in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        if (folder / file).is_file():
            splits[split] = read_goemotions_split(folder / file, len(targets), targets, names)
    if not splits:
        raise FileNotFoundError(f"{folder} holds none of train.tsv, dev.tsv, test.tsv")
    return EmotionData(datasets.DatasetDict(splits), names, "goemotions", label_set, str(folder))


def detect_kind(path) -> str:
    """"goemotions" for a folder with emotions.txt, "semeval" for E-c files; else a clear error."""
    path = Path(path)
    if path.is_dir() and (path / "emotions.txt").is_file():
        return "goemotions"
    if path.is_file() or (path.is_dir() and any(_semeval_split_of(p.name) for p in path.iterdir()
                                                if p.suffix in (".txt", ".csv", ".tsv"))):
        return "semeval"
    raise ValueError(f"cannot tell the emotion data format of {str(path)!r}: expected a GoEmotions folder (emotions.txt, "
                     "train.tsv, ...) or SemEval-2018 E-c files (2018-E-c-En-train.txt, ...)")


def load_emotion_data(kind: str | None, path, label_set: str | None = None, clean: bool = True) -> EmotionData:
    """`kind` "goemotions" | "semeval" | None (detected); `label_set` per kind (default "all")."""
    if not Path(path).exists():
        raise FileNotFoundError(f"emotion data {str(path)!r} does not exist")
    kind = kind or detect_kind(path)
    if kind == "goemotions":
        return load_goemotions(path, label_set or "all")
    if kind == "semeval":
        return load_semeval_ec(path, label_set or "all", clean=clean)
    raise ValueError(f"unknown emotion data kind {kind!r}; choose one of {list(KINDS)}")


def parse_data_spec(items, label_set: str | None = None) -> tuple[str | None, str | None, str]:
    """`--data` of the emotion task → (kind, label set, path). Accepted: `PATH` (kind detected), `KIND PATH`,
    `KIND-LABELSET PATH` (goemotions-ekman, goemotions-sentiment, semeval-plutchik) and `KIND:PATH`."""
    items = list(items or [])
    if len(items) == 1 and ":" in items[0] and items[0].split(":", 1)[0].split("-")[0] in KINDS:
        items = items[0].split(":", 1)
    if len(items) == 1:
        return None, label_set, items[0]
    if len(items) == 2:
        kind, _, chosen = items[0].partition("-")
        if kind not in KINDS:
            raise ValueError(f"--data {items[0]!r}: the kind must be one of {list(KINDS)} (optionally with a label set, "
                             "e.g. goemotions-ekman or semeval-plutchik)")
        if chosen and label_set and chosen != label_set:
            raise ValueError(f"--data {items[0]!r} asks for label set {chosen!r} but --labels says {label_set!r}")
        return kind, chosen or label_set, items[1]
    raise ValueError("emotion classification needs --data [KIND[-LABELSET]] PATH, e.g. `--data goemotions "
                     "/data/goemotions`, `--data goemotions-ekman /data/goemotions` or `--data semeval /data/semeval`")


# -- tokenization and batching ---------------------------------------------------------------------------------------
def _tokenize_batch(batch, tokenizer, max_length):
    return {"input_ids": tokenizer(batch["text"], add_special_tokens=False, truncation=True,
                                   max_length=max_length)["input_ids"]}


def tokenize_emotion_dataset(dataset: datasets.Dataset, tokenizer, max_length: int = 128,
                             num_proc: int | None = None, sort_by_length: bool = False) -> datasets.Dataset:
    """Adds "input_ids" (at most `max_length` tokens, truncated at the end); keeps "labels" (when present).
    `sort_by_length` orders the examples by token count (stable), for evaluation with little padding."""
    if max_length < 1:
        raise ValueError(f"max_length={max_length} must be >= 1")
    keep = [c for c in ("labels",) if c in dataset.column_names]
    out = dataset.map(_tokenize_batch, batched=True, fn_kwargs={"tokenizer": tokenizer, "max_length": max_length},
                      remove_columns=[c for c in dataset.column_names if c not in keep], num_proc=num_proc,
                      desc="Tokenizing")
    empty = sum(1 for ids in out["input_ids"] if len(ids) == 0)
    if empty:
        raise ValueError(f"{empty} examples tokenize to nothing (empty texts); drop them before training")
    if sort_by_length:
        lengths = [len(ids) for ids in out["input_ids"]]
        out = out.select(sorted(range(len(lengths)), key=lengths.__getitem__))
    return out


class EmotionCollator:
    """Pads "input_ids" to the batch's longest row with `pad_token_id` on `padding_side`; returns input_ids,
    attention_mask and (when the examples have them) float "labels" [B, num_labels]."""

    def __init__(self, pad_token_id: int, padding_side: str = "right"):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side={padding_side!r} must be 'left' or 'right'")
        if pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set one (e.g. tokenizer.pad_token = ...)")
        self.pad_token_id, self.padding_side = pad_token_id, padding_side

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [torch.as_tensor(ex["input_ids"], dtype=torch.long) for ex in examples]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(0, len(row)) if self.padding_side == "right" else slice(length - len(row), length)
            ids[i, span] = row
            mask[i, span] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "labels" in examples[0]:
            batch["labels"] = torch.stack([torch.as_tensor(ex["labels"], dtype=torch.float32) for ex in examples])
        return batch
