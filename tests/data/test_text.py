"""Text/LM data pipeline: loading, default corpus, tokenizer, packing + cache, DP sharding, resume, errors."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from adlr_hf.data import default_corpus, text
from adlr_hf.data.text import (
    EOS_TOKEN,
    PAD_TOKEN,
    build_lm_dataset,
    dp_sampler,
    load_text_dataset,
    load_tokenizer,
    make_lm_dataloader,
    steps_per_epoch,
    train_tokenizer,
)

datasets.disable_progress_bars()

REPO = Path(__file__).resolve().parents[2]
WIKITEXT_VALID = REPO.parent / "shared" / "data" / "wikitext-2" / "valid.txt"

WORDS = ("the model splits each layer across ranks and every rank holds one slice of the weight matrix "
         "tensor parallel data parallel gradient optimizer naïve café — 東京 🙂 tokens").split()


def make_docs(n=60, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) + rng.choice([".", "!", "?"])
            for _ in range(n)]


@pytest.fixture(scope="module")
def docs():
    return make_docs()


@pytest.fixture(scope="module")
def tokenizer(docs):
    return train_tokenizer(iter(docs), vocab_size=320)


@pytest.fixture(scope="module")
def doc_dataset(docs):
    return datasets.Dataset.from_dict({"text": docs})


@pytest.fixture(scope="module")
def packed(doc_dataset, tokenizer):
    return build_lm_dataset(doc_dataset, tokenizer, seq_len=8)


def expected_stream(tok, documents):
    ids = []
    for d in documents:
        ids += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return ids


# ------------------------------------------------------------------------------------------------------------ loading
def test_text_paragraphs_and_lines(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("first line\nsame para\n\nsecond\n\n\n\nthird\n\n \n\n\n\nlast\n", encoding="utf-8")
    ds = load_text_dataset(f, cache_dir=tmp_path / "c")
    assert ds.column_names == ["text"]
    assert ds["text"] == ["first line\nsame para", "second", "third", "last"]  # blank/space-only paragraphs dropped
    lines = load_text_dataset(f, sample_by="line", cache_dir=tmp_path / "c")
    assert lines["text"] == ["first line", "same para", "second", "third", "last"]


def test_paragraph_mode_warns_when_file_has_no_empty_lines(tmp_path):
    f = tmp_path / "wt.text"
    f.write_text(" = Title = \n \n Body one . \n \n Body two . \n", encoding="utf-8")
    with pytest.warns(UserWarning, match="sample_by='line'"):
        assert len(load_text_dataset(f, cache_dir=tmp_path / "c")) == 1
    assert load_text_dataset(f, sample_by="line", cache_dir=tmp_path / "c")["text"] == [
        " = Title = ", " Body one . ", " Body two . "]


def test_json_jsonl_parquet_folder_and_list(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.jsonl").write_text("".join(json.dumps({"id": i, "body": b}) + "\n"
                                          for i, b in enumerate(["one", "  ", "two"])), encoding="utf-8")
    (data / "b.json").write_text(json.dumps([{"id": 7, "body": "three"}, {"id": 8, "body": ""}]), encoding="utf-8")
    datasets.Dataset.from_dict({"id": [1, 2], "body": ["four", "five\n\nstill five"]}).to_parquet(
        str(data / "sub" / "c.parquet"))
    (data / ".hidden.jsonl").write_text(json.dumps({"body": "hidden"}) + "\n", encoding="utf-8")
    (data / "notes.md").write_text("ignored", encoding="utf-8")
    (data / "z.txt").write_text("six\n\nseven\n", encoding="utf-8")

    ds = load_text_dataset(data, text_column="body", cache_dir=tmp_path / "c")
    assert ds.column_names == ["text"]
    # sorted paths: a.jsonl, b.json, sub/c.parquet, z.txt
    assert ds["text"] == ["one", "two", "three", "four", "five\n\nstill five", "six", "seven"]

    listed = load_text_dataset([data / "z.txt", str(data / "a.jsonl")], text_column="body", cache_dir=tmp_path / "c")
    assert listed["text"] == ["six", "seven", "one", "two"]
    assert load_text_dataset(data / "sub" / "c.parquet", "body", cache_dir=tmp_path / "c")["text"][0] == "four"


def test_hub_name_only_when_online(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    calls = []

    def fake_load(name, split=None, cache_dir=None, **kw):
        calls.append(name)
        if name == "owner/unreachable":
            raise ConnectionError("no network")
        return datasets.Dataset.from_dict({"content": ["hub doc", " "], "n": [1, 2]})

    monkeypatch.setattr(text.datasets, "load_dataset", fake_load)
    assert load_text_dataset("owner/corpus", text_column="content")["text"] == ["hub doc"]
    with pytest.raises(FileNotFoundError, match="owner/unreachable.*neither a file.*reachable dataset.*no network"):
        load_text_dataset("owner/unreachable")
    with pytest.raises(FileNotFoundError, match="looks like a local path"):
        load_text_dataset(str(tmp_path / "missing.txt"))
    assert calls == ["owner/corpus", "owner/unreachable"]


# ------------------------------------------------------------------------------------------------------------- errors
def test_missing_path_offline_fails_first(tmp_path):
    good = tmp_path / "ok.txt"
    good.write_text("hello\n", encoding="utf-8")
    missing = tmp_path / "nope" / "train.jsonl"
    cache = tmp_path / "hf-cache"
    for arg in (missing, "some-owner/some-dataset", [good, missing]):
        with pytest.raises(FileNotFoundError, match=r"neither a file or folder on disk nor a reachable dataset") as e:
            load_text_dataset(arg, cache_dir=cache)
        assert str(missing if arg != "some-owner/some-dataset" else arg) in str(e.value)
        assert "OFFLINE" in str(e.value)
    assert not cache.exists()  # raised before anything was loaded


def test_bad_inputs(tmp_path, doc_dataset, tokenizer):
    (tmp_path / "x.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unsupported suffix '\.csv'"):
        load_text_dataset(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no text data files"):
        load_text_dataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="sample_by"):
        load_text_dataset(tmp_path / "x.csv", sample_by="sentence")

    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"body": "x", "id": 1}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['body', 'id'\]"):
        load_text_dataset(f, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="not strings"):
        load_text_dataset(f, text_column="id", cache_dir=tmp_path / "c")

    no_text = datasets.Dataset.from_dict({"body": ["a"], "label": [0]})
    with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['body', 'label'\]"):
        build_lm_dataset(no_text, tokenizer, seq_len=8)
    with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['body', 'label'\]"):
        train_tokenizer(no_text, vocab_size=300)

    for bad in (1, 0, -4, 2.0):
        with pytest.raises(ValueError, match=rf"seq_len={bad!r} is too short.*seq_len >= 2"):
            build_lm_dataset(doc_dataset, tokenizer, seq_len=bad)

    out = tmp_path / "tok"
    with pytest.raises(ValueError, match=r"vocab_size=257 is too small.*256-byte alphabet.*vocab_size >= 258"):
        train_tokenizer(iter(["abc"]), vocab_size=257, out_dir=out)
    assert not out.exists()

    cache = tmp_path / "lm"
    tiny = datasets.Dataset.from_dict({"text": ["hi", "  "]})
    n_tokens = len(tokenizer("hi", add_special_tokens=False)["input_ids"]) + 1
    with pytest.raises(ValueError, match=rf"too small: it has {n_tokens} tokens \(1 documents.*seq_len=64"):
        build_lm_dataset(tiny, tokenizer, seq_len=64, cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())

    with pytest.raises(ValueError, match="dp_rank=2"):
        dp_sampler(10, 2, 2, seed=0)
    with pytest.raises(ValueError, match="no full micro-batch"):
        make_lm_dataloader(list(range(3)), micro_batch_size=2, dp_rank=0, dp_size=2, seed=0)


# ---------------------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_special_tokens_round_trip_and_determinism(tmp_path, docs, tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1]) == [EOS_TOKEN, PAD_TOKEN]
    assert (tokenizer.eos_token, tokenizer.bos_token, tokenizer.unk_token, tokenizer.pad_token) == (
        EOS_TOKEN, EOS_TOKEN, EOS_TOKEN, PAD_TOKEN)
    assert len(tokenizer) == 320

    out = tmp_path / "tok"
    again = train_tokenizer(datasets.Dataset.from_dict({"text": docs}), vocab_size=320, out_dir=out)
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()  # deterministic
    loaded = load_tokenizer(out)
    samples = docs[:5] + ["unseen: Ωmega ∑ 🚀 <|endoftext|> x\ty  z", ""]
    for s in samples:
        ids = tokenizer(s, add_special_tokens=False)["input_ids"]
        assert loaded(s, add_special_tokens=False)["input_ids"] == ids
        assert loaded.decode(ids) == s
    assert (loaded.eos_token_id, loaded.pad_token_id, loaded.bos_token_id) == (0, 1, 0)
    assert text.tokenizer_hash(loaded) == text.tokenizer_hash(tokenizer)
    with pytest.raises(FileNotFoundError, match="neither a tokenizer folder"):
        load_tokenizer(tmp_path / "no-such-tokenizer")


# ------------------------------------------------------------------------------------------------------------ packing
def test_packing_keeps_every_token_once(docs, tokenizer, packed):
    seq_len = 8
    stream = expected_stream(tokenizer, docs)
    n_blocks = len(stream) // seq_len
    assert len(packed) == n_blocks
    ids = packed[:]["input_ids"]
    assert ids.dtype == torch.int64 and ids.shape == (n_blocks, seq_len)
    assert ids.reshape(-1).tolist() == stream[: n_blocks * seq_len]  # final partial block dropped
    assert (ids == tokenizer.eos_token_id).sum().item() == stream[: n_blocks * seq_len].count(0)


def test_packing_multiprocess_matches(doc_dataset, tokenizer, packed):
    two = build_lm_dataset(doc_dataset, tokenizer, seq_len=8, num_proc=2)
    assert torch.equal(two[:]["input_ids"], packed[:]["input_ids"])


def test_cache_reloads_without_tokenizing(tmp_path, doc_dataset, tokenizer, packed, monkeypatch):
    cache = tmp_path / "lm-cache"
    first = build_lm_dataset(doc_dataset, tokenizer, seq_len=8, cache_dir=cache)
    (entry,) = [p for p in cache.iterdir()]  # one finished entry, no temp folders left
    assert entry.name.startswith("lm-")
    assert Path(first.cache_files[0]["filename"]).parent == entry

    def boom(*a, **k):
        raise AssertionError("re-tokenized although the cache holds this dataset")

    monkeypatch.setattr(text, "_tokenize_documents", boom)
    second = build_lm_dataset(doc_dataset, tokenizer, seq_len=8, cache_dir=cache)
    assert Path(second.cache_files[0]["filename"]).parent == entry
    assert torch.equal(second[:]["input_ids"], packed[:]["input_ids"])
    # a different seq_len (or data, or tokenizer) is a different key, so it must tokenize again
    with pytest.raises(AssertionError, match="re-tokenized"):
        build_lm_dataset(doc_dataset, tokenizer, seq_len=16, cache_dir=cache)
    with pytest.raises(AssertionError, match="re-tokenized"):
        build_lm_dataset(doc_dataset.select(range(10)), tokenizer, seq_len=8, cache_dir=cache)


# ----------------------------------------------------------------------------------------------------------- sharding
def test_dp_shards_are_disjoint_and_cover():
    n = 103
    for shuffle in (True, False):
        s0, s1 = (list(dp_sampler(n, r, 2, seed=5, shuffle=shuffle)) for r in (0, 1))
        # drop_last=True: equal shards, disjoint, covering all but n % dp_size samples
        assert len(s0) == len(s1) == 51 and not set(s0) & set(s1)
        assert len(set(s0) | set(s1)) == 102 and set(s0) | set(s1) <= set(range(n))
        p0, p1 = (list(dp_sampler(n, r, 2, seed=5, shuffle=shuffle, drop_last=False)) for r in (0, 1))
        # drop_last=False: padded by repetition, so equal length and everything covered
        assert len(p0) == len(p1) == 52 and set(p0) | set(p1) == set(range(n))
    a = dp_sampler(n, 0, 2, seed=5)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first  # reshuffled each epoch
    a.set_epoch(0)
    assert list(a) == first


def test_tp_ranks_of_one_replica_get_identical_batches(packed):
    loaders = [make_lm_dataloader(packed, micro_batch_size=3, dp_rank=1, dp_size=2, seed=7) for _tp_rank in (0, 1)]
    for b0, b1 in zip(*loaders, strict=True):
        assert torch.equal(b0["input_ids"], b1["input_ids"]) and torch.equal(b0["labels"], b0["input_ids"])
    other = make_lm_dataloader(packed, micro_batch_size=3, dp_rank=0, dp_size=2, seed=7)
    assert not set(other.sampler) & set(loaders[0].sampler)  # the other DP rank gets other samples


def all_batches(loader, epochs):
    out = []
    for e in range(loader.sampler.epoch, epochs):
        loader.sampler.set_epoch(e)
        out += [b["input_ids"] for b in loader]
    return out


@pytest.mark.parametrize("drop_last", [True, False])
def test_resume_mid_run_matches_uninterrupted(packed, drop_last):
    mbs, dp_size, epochs = 3, 2, 3
    per_epoch = steps_per_epoch(len(packed), mbs, dp_size, drop_last)
    full = all_batches(make_lm_dataloader(packed, mbs, 1, dp_size, seed=11, drop_last=drop_last), epochs)
    assert len(full) == epochs * per_epoch
    assert not drop_last or all(b.shape[0] == mbs for b in full)
    for k in (0, 2, per_epoch, per_epoch + 1, epochs * per_epoch - 1):
        resumed = make_lm_dataloader(packed, mbs, 1, dp_size, seed=11, start_step=k, drop_last=drop_last)
        assert len(resumed) == per_epoch - k % per_epoch
        rest = all_batches(resumed, epochs)
        assert len(rest) == len(full) - k
        assert all(torch.equal(a, b) for a, b in zip(rest, full[k:]))


# ---------------------------------------------------------------------------------------------------- real data files
@pytest.mark.skipif(not WIKITEXT_VALID.is_file(), reason=f"real-data file {WIKITEXT_VALID} is absent "
                    "(../shared/data/wikitext-2 not checked out next to the repo)")
def test_wikitext_valid_end_to_end(tmp_path):
    ds = load_text_dataset(WIKITEXT_VALID, sample_by="line", cache_dir=tmp_path / "c")
    assert len(ds) == 2461  # non-blank lines of the 3,760
    assert ds[0]["text"] == " = Homarus gammarus = "
    tok = train_tokenizer(ds, vocab_size=1000)
    lm = build_lm_dataset(ds, tok, seq_len=256, cache_dir=tmp_path / "lm")
    stream = expected_stream(tok, ds["text"])
    assert lm[:]["input_ids"].reshape(-1).tolist() == stream[: len(stream) // 256 * 256]


# ----------------------------------------------------------------------------------------------------- default corpus
@pytest.fixture(scope="module")
def default_corpus_builds(tmp_path_factory):
    """Build the corpus here and, at the same time, in a fresh interpreter with another hash seed."""
    root = tmp_path_factory.mktemp("corpus")
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('dc', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(m.build_default_corpus(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, default_corpus.__file__, str(root / "b")],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    here = default_corpus.build_default_corpus(root / "a")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    return here, Path(out.strip())


def test_default_corpus_deterministic_and_nontrivial(tmp_path, default_corpus_builds):
    here, there = default_corpus_builds
    assert here.name == there.name and here.read_bytes() == there.read_bytes()
    size = here.stat().st_size
    assert 300_000 < size < 5_000_000
    mtime = here.stat().st_mtime_ns
    assert default_corpus.build_default_corpus(here.parents[1]) == here and here.stat().st_mtime_ns == mtime  # reused
    ds = load_text_dataset(here, cache_dir=tmp_path / "c")
    assert len(ds) == here.read_text(encoding="utf-8").count("\n\n") + 1 > 2000  # one docstring per paragraph
    assert ds[0]["text"].startswith("Abstract Base Classes")
    assert any("JSON" in t for t in ds["text"])
    with pytest.raises(ValueError, match="no docstrings found"):
        default_corpus.build_default_corpus(tmp_path, modules=["no_such_module_xyz"])
