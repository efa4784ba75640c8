"""MLM pretraining data: masking statistics (selection rate, 80/10/10, special tokens, labels), whole-word masking,
determinism, and the sentence-order-prediction samples. The WordPiece tokenizer is built from a vocab written here."""

from __future__ import annotations

import random
import string

import datasets
import pytest
import torch
from transformers import BertTokenizer

from adlr_hf.data.mlm import MLMCollator, build_mlm_dataset, split_sentences, word_start_table

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "big", "small", "house", "tree", "walk", "play", "red", "blue"]
SUFFIXES = ["##s", "##ing", "##ed"]


@pytest.fixture(scope="module")
def tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + WORDS + SUFFIXES
    vocab += list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase if f"##{c}" not in SUFFIXES]
    return BertTokenizer(vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))})


def _documents(n_docs: int, seed: int = 0) -> list[str]:
    """Documents of sentences (one per line) mixing whole-vocabulary words, suffixed words ("cats", "walked") and
    spelled-out words that WordPiece splits into many pieces ("qzx" -> q ##z ##x)."""
    rng = random.Random(seed)

    def word():
        r = rng.random()
        if r < 0.6:
            return rng.choice(WORDS)
        if r < 0.8:
            return rng.choice(WORDS) + rng.choice(["s", "ing", "ed"])
        return "".join(rng.choice("qxzjkv") for _ in range(rng.randint(2, 5)))

    return ["\n".join(" ".join(word() for _ in range(rng.randint(4, 14))) + " ." for _ in range(rng.randint(2, 9)))
            for _ in range(n_docs)]


@pytest.fixture(scope="module")
def samples(tokenizer):
    """About 100k non-special tokens of SOP samples."""
    ds = datasets.Dataset.from_dict({"text": _documents(1700)})
    out = build_mlm_dataset(ds, tokenizer, seq_len=128, sop=True)
    return out


def _collate_all(collator, samples, batch_size=256):
    batches = [collator([samples[j] for j in range(i, min(i + batch_size, len(samples)))])
               for i in range(0, len(samples), batch_size)]
    originals = [[samples[j]["input_ids"] for j in range(i, min(i + batch_size, len(samples)))]
                 for i in range(0, len(samples), batch_size)]
    return batches, originals


def _flat(batches, originals):
    """(original ids, masked ids, labels, real-token mask) over all positions of all batches."""
    orig, ids, labels, real = [], [], [], []
    for batch, rows in zip(batches, originals):
        padded = torch.zeros_like(batch["input_ids"])
        for r, row in enumerate(rows):
            padded[r, :len(row)] = torch.tensor(row)
        orig.append(padded.flatten())
        ids.append(batch["input_ids"].flatten())
        labels.append(batch["labels"].flatten())
        real.append(batch["attention_mask"].flatten().bool())
    return torch.cat(orig), torch.cat(ids), torch.cat(labels), torch.cat(real)


def _check_statistics(tokenizer, orig, ids, labels, real, probability):
    special = torch.isin(orig, torch.tensor(tokenizer.all_special_ids)) | ~real
    selected = labels != -100
    eligible = ~special
    assert eligible.sum() > 100_000, "enough tokens for the statistics"
    assert not (selected & special).any(), "special tokens and padding are never selected"
    assert torch.equal(labels[selected], orig[selected]), "labels are the original ids at selected positions"
    assert (labels[~selected] == -100).all()
    assert torch.equal(ids[~selected], orig[~selected]), "unselected tokens are untouched"
    rate = selected.sum().item() / eligible.sum().item()
    assert abs(rate - probability) < 0.01, rate
    n = selected.sum().item()
    masked = (ids[selected] == tokenizer.mask_token_id).sum().item() / n
    kept = (ids[selected] == orig[selected]).sum().item() / n
    randomised = 1 - masked - kept
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(randomised - 0.1) < 0.02, \
        (masked, kept, randomised)
    return selected


def test_token_masking_statistics_and_labels(tokenizer, samples):
    for probability in (0.15, 0.3):
        collator = MLMCollator(tokenizer, mlm_probability=probability, seed=int(probability * 100))
        batches, originals = _collate_all(collator, samples)
        assert set(batches[0]) == {"input_ids", "token_type_ids", "attention_mask", "labels", "sentence_order_label"}
        _check_statistics(tokenizer, *_flat(batches, originals), probability)


def test_whole_word_masking_selects_whole_words(tokenizer, samples):
    collator = MLMCollator(tokenizer, whole_word=True, seed=3)
    assert (collator.mask_replace_prob, collator.random_replace_prob) == (0.8, 0.1), "80/10/10 kept"
    batches, originals = _collate_all(collator, samples)
    orig, ids, labels, real = _flat(batches, originals)
    selected = _check_statistics(tokenizer, orig, ids, labels, real, 0.15)
    starts = word_start_table(tokenizer)[orig]
    assert not starts[torch.isin(orig, torch.tensor([tokenizer.convert_tokens_to_ids(s) for s in SUFFIXES]))].any()
    special = torch.isin(orig, torch.tensor(tokenizer.all_special_ids)) | ~real
    # A word starts at a word-start token or right after a special token (a segment truncated at its front can begin
    # with a "##" piece); the pieces of one word share an id, and each special token has an id of its own.
    starts = starts | torch.roll(special, 1)
    word_id = torch.cumsum(starts.long(), 0)
    size = torch.bincount(word_id)
    chosen = torch.bincount(word_id, weights=selected.double()).long()
    assert not ((chosen > 0) & (chosen < size)).any(), "no word is selected in part: all its pieces or none"
    assert ((chosen == size) & (size > 1)).sum() > 1000, "multi-piece words were selected whole"


def test_word_starts_for_byte_level_bpe():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[MASK]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["the cats played in the garden", "the dog walked"] * 50, trainer)
    bpe = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    table = word_start_table(bpe)
    tokens = bpe.convert_ids_to_tokens(bpe("the gardens played").input_ids)
    starts = [bool(table[bpe.convert_tokens_to_ids(t)]) for t in tokens]
    assert starts == [t.startswith("Ġ") for t in tokens] and sum(starts) == 2, (tokens, starts)
    assert table[bpe.mask_token_id] and table[bpe.cls_token_id]
    batch = MLMCollator(bpe, whole_word=True, mlm_probability=0.5, seed=0)([bpe("the gardens played walked")])
    assert batch["labels"].shape == batch["input_ids"].shape


def test_masks_are_reproducible(tokenizer, samples):
    rows = [samples[i] for i in range(64)]
    a, b = MLMCollator(tokenizer, seed=7)(rows), MLMCollator(tokenizer, seed=7)(rows)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = MLMCollator(tokenizer, seed=8)(rows)
    assert not torch.equal(a["labels"], c["labels"])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    d, e = MLMCollator(tokenizer, generator=g1)(rows), MLMCollator(tokenizer, generator=g2)(rows)
    assert torch.equal(d["input_ids"], e["input_ids"]) and torch.equal(d["labels"], e["labels"])
    collator = MLMCollator(tokenizer, seed=7)
    assert not torch.equal(collator(rows)["labels"], collator(rows)["labels"]), "each call draws new masks"


def _segments(tokenizer, sample):
    ids = sample["input_ids"]
    sep = tokenizer.sep_token_id
    first = ids.index(sep)
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == sep and ids.count(sep) == 2
    assert sample["token_type_ids"] == [0] * (first + 1) + [1] * (len(ids) - first - 1)
    return ids[1:first], ids[first + 1:-1]


def test_sentence_order_samples(tokenizer):
    """Sentence k of every document is made of token "s<k>" only, so a sample's order is readable from its tokens."""
    order_tokens = [f"s{k}" for k in range(12)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + order_tokens
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    rng = random.Random(1)
    docs = ["\n".join(" ".join([f"s{k}"] * rng.randint(1, 30)) for k in range(rng.randint(1, 12)))
            for _ in range(1200)]
    ds = datasets.Dataset.from_dict({"text": docs})
    seq_len = 48
    out = build_mlm_dataset(ds, tok, seq_len=seq_len, sop=True)
    assert out.column_names == ["input_ids", "token_type_ids", "attention_mask", "sentence_order_label"]
    labels = out["sentence_order_label"]
    assert len(labels) > 1500 and abs(sum(labels) / len(labels) - 0.5) < 0.04, "labels balanced"
    truncated = 0
    for sample in out:
        a, b = _segments(tok, sample)
        assert a and b and len(sample["input_ids"]) <= seq_len
        assert sample["attention_mask"] == [1] * len(sample["input_ids"])
        truncated += len(sample["input_ids"]) == seq_len
        order_a, order_b = ({int(t[1:]) for t in tok.convert_ids_to_tokens(s)} for s in (a, b))
        if sample["sentence_order_label"] == 0:
            assert max(order_a) < min(order_b), "in order: A's sentences come before B's"
        else:
            assert min(order_a) > max(order_b), "swapped: B's sentences came first in the document"
    assert truncated > 100, "long pairs are truncated to seq_len"
    again = build_mlm_dataset(ds, tok, seq_len=seq_len, sop=True)
    assert again["input_ids"] == out["input_ids"] and again["sentence_order_label"] == labels, "deterministic"
    two = build_mlm_dataset(ds, tok, seq_len=seq_len, sop=True, num_proc=2)
    assert two["input_ids"] == out["input_ids"] and two["sentence_order_label"] == labels, "independent of num_proc"
    other_seed = build_mlm_dataset(ds, tok, seq_len=seq_len, sop=True, seed=99)
    assert other_seed["sentence_order_label"] != labels


def test_without_sop_and_cache(tokenizer, tmp_path):
    ds = datasets.Dataset.from_dict({"text": _documents(30, seed=4) + ["", "   ", "one sentence ."]})
    out = build_mlm_dataset(ds, tokenizer, seq_len=32, sop=False, cache_dir=tmp_path)
    assert out.column_names == ["input_ids", "token_type_ids", "attention_mask"]
    for sample in out:
        ids = sample["input_ids"]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id and ids.count(3) == 1
        assert len(ids) <= 32 and set(sample["token_type_ids"]) == {0}
    assert [p.name.startswith("mlm-") for p in tmp_path.iterdir()] == [True]
    cached = build_mlm_dataset(ds, tokenizer, seq_len=32, sop=False, cache_dir=tmp_path)
    assert cached["input_ids"] == out["input_ids"]
    batch = MLMCollator(tokenizer, seed=0)([out[i] for i in range(4)])
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert split_sentences("A b. C d!  E f?\nG h") == ["A b.", "C d!", "E f?", "G h"]
    assert split_sentences(["x", " ", "y"]) == ["x", "y"]


def test_bad_inputs(tokenizer):
    ds = datasets.Dataset.from_dict({"text": ["the cat sat .\nthe dog ran ."]})
    with pytest.raises(ValueError, match="seq_len=4 is too short.*seq_len >= 5"):
        build_mlm_dataset(ds, tokenizer, seq_len=4)
    with pytest.raises(ValueError, match="no column 'body'"):
        build_mlm_dataset(ds, tokenizer, seq_len=16, text_column="body")
    with pytest.raises(TypeError, match="DatasetDict"):
        build_mlm_dataset(datasets.DatasetDict({"train": ds}), tokenizer, seq_len=16)
    with pytest.raises(ValueError, match="no samples.*at least 2 sentences.*sop=False"):
        build_mlm_dataset(datasets.Dataset.from_dict({"text": ["just one ."]}), tokenizer, seq_len=16)
    with pytest.raises(ValueError, match="num_proc=0"):
        build_mlm_dataset(ds, tokenizer, seq_len=16, num_proc=0)
    with pytest.raises(ValueError, match="seed or generator"):
        MLMCollator(tokenizer, seed=1, generator=torch.Generator())
    plain = BertTokenizer(vocab={"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "a": 3})
    plain.cls_token = None
    with pytest.raises(ValueError, match="no cls_token"):
        build_mlm_dataset(ds, plain, seq_len=16)
