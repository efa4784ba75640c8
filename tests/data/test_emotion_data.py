"""Emotion data: GoEmotions on the real files (all / Ekman / sentiment), SemEval-2018 E-c on tiny files written here
(tweet cleaning, Plutchik subset, unlabeled test), tokenization and the padding collator."""

from pathlib import Path

import pytest
import torch

from adlr_hf.data.emotion import (
    PLUTCHIK_LABELS,
    SEMEVAL_EC_LABELS,
    EmotionCollator,
    load_emotion_data,
    load_goemotions,
    parse_data_spec,
    process_tweet,
    read_semeval_ec,
    tokenize_emotion_dataset,
)

GOEMOTIONS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "goemotions"
needs_goemotions = pytest.mark.skipif(not (GOEMOTIONS / "train.tsv").is_file(),
                                      reason=f"GoEmotions not found at {GOEMOTIONS} (../shared/data is absent)")


@pytest.fixture(scope="module")
def goemotions_all():
    return load_goemotions(GOEMOTIONS, "all")


@needs_goemotions
def test_goemotions_real_files_all_labels(goemotions_all):
    data = goemotions_all
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 43410, "validation": 5426, "test": 5427}
    assert len(data.labels) == 28 and data.labels[27] == "neutral" and data.labels[0] == "admiration"
    first = data.splits["train"][0]
    assert first["id"] == "eebbqej" and first["text"] == "My favourite food is anything I didn't have to cook myself."
    assert first["labels"] == [0.0] * 27 + [1.0]
    labels = data.splits["train"].with_format("numpy")[:]["labels"]
    counts = labels.sum(0)
    assert counts[data.labels.index("grief")] == 77 and counts[data.labels.index("neutral")] == 14219  # SOURCE.md
    assert int((labels.sum(1) > 1).sum()) == 7102
    # Texts with CSV-style quotes stay verbatim (lines are split on tabs only).
    assert any(t.startswith('"') for t in data.splits["train"]["text"][:5000])


@needs_goemotions
def test_goemotions_ekman_mapping(goemotions_all):
    ekman = load_goemotions(GOEMOTIONS, "ekman")
    assert ekman.labels == ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    full = goemotions_all.splits["validation"]
    mapped = ekman.splits["validation"]
    groups = {"anger": ["anger", "annoyance", "disapproval"], "joy": ["joy", "amusement", "approval", "excitement",
              "gratitude", "love", "optimism", "relief", "pride", "admiration", "desire", "caring"]}
    for i in range(300):
        active = {goemotions_all.labels[j] for j, v in enumerate(full[i]["labels"]) if v}
        got = {ekman.labels[j] for j, v in enumerate(mapped[i]["labels"]) if v}
        assert ("anger" in got) == bool(active & set(groups["anger"]))
        assert ("joy" in got) == bool(active & set(groups["joy"]))
        assert ("neutral" in got) == ("neutral" in active)
        assert got, "every GoEmotions example has at least one label"
    sentiment = load_goemotions(GOEMOTIONS, "sentiment")
    assert sentiment.labels == ["positive", "negative", "ambiguous", "neutral"]


def test_process_tweet_matches_the_reference_rules():
    text = "@bob I &amp; you #happy https://t.co/xyz caf\u00e9 &lt;3 &#039;yes&#039;\\nnext<br>line  \u2764"
    cleaned = process_tweet(text)
    assert cleaned.startswith("@bob I & you happy!! xxxx cafe <3 'yes' next line")
    assert all(31 < ord(c) < 127 for c in cleaned)
    assert process_tweet("see http://a.b/c now") == "see http://a.b/c now"  # only https, as the reference
    assert process_tweet("&quot;hi&quot;") == "&quot;hi&quot;"  # only the four entities the reference unescapes
    assert process_tweet("@bob #yay https://x.y", save_text_formatting=False) == "yay"


def _write_semeval(folder: Path):
    header = "ID\tTweet\t" + "\t".join(SEMEVAL_EC_LABELS)
    rows = [("2018-En-1", "So #angry https://t.co/abc &amp; sad", "1 0 0 0 0 0 0 1 1 0 0"),
            ("2018-En-2", "what a lovely day \U0001F600", "0 0 0 0 1 1 1 0 0 0 0"),
            ("2018-En-3", "nothing to feel", "0 0 0 0 0 0 0 0 0 0 0")]
    lines = [header] + [f"{i}\t{t}\t" + "\t".join(v.split()) for i, t, v in rows]
    (folder / "2018-E-c-En-train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "2018-E-c-En-dev.txt").write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    test = [header] + [f"{i}\t{t}\t" + "\t".join(["NONE"] * 11) for i, t, _ in rows[:2]]
    (folder / "2018-E-c-En-test.txt").write_text("\n".join(test) + "\n", encoding="utf-8")


def test_semeval_ec_reader_cleans_tweets_and_selects_plutchik(tmp_path):
    _write_semeval(tmp_path)
    data = load_emotion_data(None, tmp_path)
    assert data.kind == "semeval" and data.labels == SEMEVAL_EC_LABELS
    assert {k: len(v) for k, v in data.splits.items()} == {"test": 2, "train": 3, "validation": 2}
    train = data.splits["train"]
    assert train[0]["text"] == "So angry!! xxxx & sad"
    assert train[0]["labels"] == [1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    assert train[2]["labels"] == [0.0] * 11
    assert "labels" not in data.splits["test"].column_names  # official test file without gold labels
    plutchik = load_emotion_data("semeval", tmp_path, "plutchik")
    assert plutchik.labels == PLUTCHIK_LABELS
    assert plutchik.splits["train"][0]["labels"] == [1, 0, 0, 0, 0, 1, 0, 0]  # anger, sadness (pessimism dropped)
    assert plutchik.splits["train"][1]["labels"] == [0, 0, 0, 0, 1, 0, 0, 0]  # joy (love, optimism dropped)
    raw = read_semeval_ec(tmp_path / "2018-E-c-En-train.txt", clean=False)
    assert raw[0]["text"] == "So #angry https://t.co/abc &amp; sad"


def test_bad_inputs_get_clear_errors(tmp_path):
    (tmp_path / "bad.txt").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="expected columns ID, Tweet"):
        read_semeval_ec(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_emotion_data(None, tmp_path / "missing")
    with pytest.raises(ValueError, match="label_set='ekman' is not one of"):
        read_semeval_ec(tmp_path / "bad.txt", label_set="ekman")


def test_data_spec_forms():
    assert parse_data_spec(["/d"]) == (None, None, "/d")
    assert parse_data_spec(["goemotions", "/d"]) == ("goemotions", None, "/d")
    assert parse_data_spec(["goemotions-ekman", "/d"]) == ("goemotions", "ekman", "/d")
    assert parse_data_spec(["goemotions:/d"], label_set="ekman") == ("goemotions", "ekman", "/d")
    assert parse_data_spec(["semeval-plutchik:/d"]) == ("semeval", "plutchik", "/d")
    with pytest.raises(ValueError, match="kind must be one of"):
        parse_data_spec(["imdb", "/d"])


def test_tokenize_and_collate_both_padding_sides(tmp_path):
    from adlr_hf.models.mlstm import MLSTMByteTokenizer

    _write_semeval(tmp_path)
    train = load_emotion_data("semeval", tmp_path).splits["train"]
    tokenized = tokenize_emotion_dataset(train, MLSTMByteTokenizer(), max_length=10)
    assert tokenized.column_names == ["labels", "input_ids"] or set(tokenized.column_names) == {"labels", "input_ids"}
    assert len(tokenized[0]["input_ids"]) == 10 and bytes(tokenized[2]["input_ids"]) == b"nothing to"
    examples = [tokenized[2], {"input_ids": [65, 66], "labels": tokenized[0]["labels"]}]
    right = EmotionCollator(256, "right")(examples)
    left = EmotionCollator(256, "left")(examples)
    assert right["input_ids"][1].tolist() == [65, 66] + [256] * 8
    assert left["input_ids"][1].tolist() == [256] * 8 + [65, 66]
    assert left["attention_mask"][1].tolist() == [0] * 8 + [1, 1]
    assert right["labels"].dtype == torch.float32 and right["labels"].shape == (2, 11)
