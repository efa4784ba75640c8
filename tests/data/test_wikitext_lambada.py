"""WikiText reading, Megatron's detokenizer rule group by rule group, T_o; LAMBADA jsonl and strict/non-strict pairs."""

import json
from pathlib import Path

import pytest

from adlr_hf.data.lambada import lambada_pair, read_lambada, tokenize_lambada
from adlr_hf.data.wikitext import (
    detokenize_brackets,
    detokenize_contractions,
    detokenize_misc,
    detokenize_number_separators,
    detokenize_punctuation,
    original_word_count,
    read_wikitext,
    wikitext_detokenize,
)

REPO = Path(__file__).resolve().parents[2]
WIKITEXT2_TEST = REPO.parent / "shared" / "data" / "wikitext-2" / "test.txt"


# ------------------------------------------------------------------------------------------------- detokenizer rules
def test_contractions():
    assert detokenize_contractions("the players ' union") == "the players' union"
    assert detokenize_contractions("the player ' s") == "the player ' s"  # needs an "s" before the quote
    # The reference's literal-slash regex (a no-op on real WikiText), reproduced verbatim.
    assert detokenize_contractions("a/' 5/b") == "a/'[0-9]/b"
    assert detokenize_contractions("rock ' 5 roll") == "rock ' 5 roll"


def test_number_separators():
    assert detokenize_number_separators("a guest @-@ starring role") == "a guest-starring role"
    assert detokenize_number_separators("1 @,@ 000 @.@ 5 km") == "1,000.5 km"
    assert detokenize_number_separators("x@-@y") == "x@-@y"  # only the spaced form


def test_punctuation():
    assert detokenize_punctuation("Hello , world . Yes ! No ? a : b ; c") == "Hello, world. Yes! No? a: b; c"
    assert detokenize_punctuation("the end .") == "the end ."  # a mark needs a space on both sides
    assert detokenize_punctuation("3 . 5 ,") == "3. 5 ,"


def test_brackets():
    assert detokenize_brackets("see ( the figure ) here") == "see (the figure) here"
    assert detokenize_brackets("[ 1 ] and { x y }") == "[1] and {x y}"
    assert detokenize_brackets('as " Craig " in') == 'as "Craig" in'
    assert detokenize_brackets("the ' Hi ' sign") == "the 'Hi' sign"
    assert detokenize_brackets('" a " b " c "') == '"a" b "c"'  # non-greedy, left to right


def test_misc():
    assert detokenize_misc(" = = = Career = = = ") == " === Career === "
    assert detokenize_misc("= = = = A = = = =") == "==== A ===="
    assert detokenize_misc("= = B = =") == "== B =="
    assert detokenize_misc("it was 20 \N{DEGREE SIGN} C") == "it was 20\N{DEGREE SIGN}C"
    assert detokenize_misc("a \n b") == "a\nb"
    assert detokenize_misc("the N rule") == "the 1 rule"
    assert detokenize_misc("Teddy 's Story") == "Teddy's Story"


def test_full_detokenizer_in_reference_order():
    raw = (' = Robert <unk> = \n \n Robert <unk> is an English film , television and theatre actor . He had a '
           'guest @-@ starring role in " Teddy \'s Story " , 1 @,@ 200 @.@ 5 km away ( roughly ) . \n')
    expected = (' = Robert <unk> =\n\nRobert <unk> is an English film, television and theatre actor. He had a '
                'guest-starring role in "Teddy\'s Story", 1,200.5 km away (roughly).\n')
    assert wikitext_detokenize(raw) == expected
    # Order matters: punctuation runs before the line-end rule, so " . \n" becomes ".\n"; the other way round
    # the space before the period would stay.
    assert wikitext_detokenize("the actor . \n") == "the actor.\n"
    assert detokenize_punctuation(detokenize_misc("the actor . \n")) == "the actor .\n"


# --------------------------------------------------------------------------------------------------------- counting
def test_original_word_count_splits_on_single_spaces():
    assert original_word_count(" = A = \n \n B c . \n") == 8  # "=", "A", "=", "\n", "\n", "B", "c", "."
    assert original_word_count("a  b") == 3  # a double space counts an empty string, as in the reference
    assert original_word_count("one") == 1


def test_read_wikitext_small_file(tmp_path):
    path = tmp_path / "wiki.test.tokens"
    path.write_bytes(b" = A = \n \n The 1 @,@ 000 men . \r\n")
    doc = read_wikitext(path)
    assert doc.num_original_tokens == len("= A = \n \n The 1 @,@ 000 men . \r\n".strip().split(" "))
    assert doc.text == " = A =\n\nThe 1,000 men. \r\n"  # bytes decoded as-is: " \r\n" is not " \n", so kept


@pytest.mark.skipif(not WIKITEXT2_TEST.exists(), reason=f"shared data not present at {WIKITEXT2_TEST}")
def test_read_wikitext2_test_split():
    doc = read_wikitext(WIKITEXT2_TEST)
    # 241,211 words + 4,358 line breaks (each a " \n " item), minus the 3 stripped at the file's two ends.
    assert doc.num_original_tokens == 245_566
    assert " @-@ " not in doc.text and " @,@ " not in doc.text and "= = =" not in doc.text
    assert doc.text.startswith("\n= Robert <unk> =\n\nRobert <unk> is an English film, television")


def test_read_wikitext_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_wikitext(tmp_path / "missing.tokens")
    with pytest.raises(ValueError, match="directory"):
        read_wikitext(tmp_path)
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_wikitext(tmp_path / "bin")
    (tmp_path / "empty").write_text(" \n \n")
    with pytest.raises(ValueError, match="empty"):
        read_wikitext(tmp_path / "empty")
    (tmp_path / "l.jsonl").write_text('{"text": "a b c"}\n')
    with pytest.raises(ValueError, match="JSON lines"):
        read_wikitext(tmp_path / "l.jsonl")


# ---------------------------------------------------------------------------------------------------------- LAMBADA
class CharTokenizer:
    """One id per character, so the tokenized strings are visible in the ids."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


def _ids(s):
    return [ord(c) for c in s]


def test_lambada_pair_strict():
    assert lambada_pair("He saw Sam. Later he called Sam") == ("He saw Sam. Later he called", "Sam")
    assert lambada_pair("  she said\n  goodbye  ") == ("she said", "goodbye")


def test_tokenize_lambada_strict_and_non_strict():
    text = "the cat sat on the mat"
    strict = tokenize_lambada([text], CharTokenizer(), strict=True)[0]
    assert strict.context_ids == _ids("the cat sat on the") and strict.target_ids == _ids(" mat")
    loose = tokenize_lambada([text], CharTokenizer(), strict=False)[0]
    assert loose.context_ids == _ids(text[:-1]) and loose.target_ids == _ids("t")


def test_read_lambada(tmp_path):
    path = tmp_path / "lambada_test.jsonl"
    path.write_text(json.dumps({"text": "a b c"}) + "\n\n" + json.dumps({"text": "d e", "extra": 1}) + "\n")
    assert read_lambada(path) == ["a b c", "d e"]


@pytest.mark.parametrize("content, match", [
    ("not json\n", "line 1 is not JSON"),
    ('{"text": "a b"}\n{"txt": "a b"}\n', 'line 2 has no string "text"'),
    ('["a b"]\n', 'line 1 has no string "text"'),
    ('{"text": "lonely"}\n', "fewer than two words"),
    ("\n\n", "no examples"),
])
def test_read_lambada_errors(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_lambada(path)


def test_read_lambada_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_lambada(tmp_path / "nope.jsonl")
