"""Zero-shot evaluation drivers: Megatron's sliding window, LAMBADA teacher forcing, the `adlr-hf evaluate` CLI, TP=2."""

import json
import math
import os
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from dist_utils import run_ranks
from torch import nn

from adlr_hf import MegatronGPTForCausalLM, get_config
from adlr_hf.cli import main
from adlr_hf.data.lambada import LambadaExample
from adlr_hf.data.text import train_tokenizer
from adlr_hf.evaluation import (
    evaluate_lambada,
    evaluate_model_dir,
    evaluate_wikitext,
    lambada_predictions,
    score_token_stream,
    sliding_windows,
)

REPO = Path(__file__).resolve().parents[2]
WIKITEXT2_TEST = REPO.parent / "shared" / "data" / "wikitext-2" / "test.txt"

SEQ_LEN, MAX_POS = 32, 64


def tiny_model(vocab_size=300, seed=0, max_positions=MAX_POS):
    config = get_config("megatron-gpt-tiny", vocab_size=vocab_size, max_position_embeddings=max_positions,
                        hidden_dropout=0.0, attention_dropout=0.0, embedding_dropout=0.0)
    torch.manual_seed(seed)
    return MegatronGPTForCausalLM(config).eval()


def random_ids(n, vocab_size=300, seed=1):
    return torch.randint(0, vocab_size, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model():
    return tiny_model()


# ------------------------------------------------------------------------------------------------- window layout
def reference_scored_targets(num_tokens, seq_len, stride):
    """Megatron-LM v1.0 `_LMDataset.__getitem__`: (window start, stream indices of the scored targets) per window."""
    targets = max(num_tokens - 1 - stride, 0)
    windows = []
    for idx in range(max(math.ceil(targets / stride) + 1, 1)):
        start = idx * stride
        real = len(range(start, min(start + seq_len + 1, num_tokens)))
        pad_mask = ([1] * real + [0] * (seq_len + 1 - real))[1:]
        if stride != seq_len and idx != 0:
            pad_mask = [0] * (seq_len - stride) + pad_mask[-stride:]
        windows.append((start, [start + 1 + j for j, m in enumerate(pad_mask) if m]))
    return windows


@pytest.mark.parametrize("num_tokens, seq_len, stride", [
    (2, 8, 2), (9, 8, 2), (10, 8, 2), (11, 8, 2), (40, 8, 2), (41, 8, 3), (100, 16, 16), (57, 16, 1), (30, 16, 5),
])
def test_windows_match_the_reference_masks(num_tokens, seq_len, stride):
    ours = [(w.start, list(range(w.first_scored, w.end))) for w in sliding_windows(num_tokens, seq_len, stride)]
    # The reference also makes some trailing windows that score only padding; we skip them.
    assert ours == [(start, scored) for start, scored in reference_scored_targets(num_tokens, seq_len, stride)
                    if scored]


@pytest.mark.parametrize("num_tokens, seq_len, stride", [(500, 32, 32), (501, 32, 7), (33, 32, 8), (700, 64, 32)])
def test_every_target_scored_once_with_enough_context(num_tokens, seq_len, stride):
    windows = sliding_windows(num_tokens, seq_len, stride)
    scored = [k for w in windows for k in range(w.first_scored, w.end)]
    assert scored == list(range(1, num_tokens))  # each of the T - 1 targets exactly once, in order
    for w in windows:
        assert w.end - w.start <= seq_len + 1
        if w.start > 0:  # context of target k = tokens [start, k)
            assert w.first_scored - w.start >= seq_len - stride + 1


# ------------------------------------------------------------------------------------------ scoring vs direct maths
def direct_nll(model, ids):
    """Sum of NLL of ids[1:] from one forward over ids[:-1] (float64 sum)."""
    with torch.no_grad():
        logits = model(ids[None, :-1]).logits[0]
    return F.cross_entropy(logits.float(), ids[1:], reduction="none").double().sum().item()


def test_one_window_equals_full_forward(model):
    ids = random_ids(SEQ_LEN + 1)  # exactly one window: seq_len targets
    nll, count = score_token_stream(model, ids, seq_len=SEQ_LEN, stride=8, progress=False)
    assert count == SEQ_LEN
    assert nll == pytest.approx(direct_nll(model, ids), rel=1e-6, abs=1e-6)
    shorter = random_ids(20)
    nll, count = score_token_stream(model, shorter, seq_len=SEQ_LEN, stride=8, progress=False)
    assert count == 19 and nll == pytest.approx(direct_nll(model, shorter), rel=1e-6, abs=1e-6)


def naive_reference_nll(model, ids, seq_len, stride):
    """The reference's windows one by one, unpadded and unbatched, with full logits."""
    total = 0.0
    for start, scored in reference_scored_targets(len(ids), seq_len, stride):
        if not scored:
            continue
        with torch.no_grad():
            logp = F.log_softmax(model(ids[None, start : start + seq_len]).logits[0].double(), -1)
        total -= sum(logp[k - start - 1, ids[k]].item() for k in scored)
    return total


def test_overlapping_windows_equal_naive_reference(model):
    ids = random_ids(150)
    nll, count = score_token_stream(model, ids, seq_len=SEQ_LEN, stride=8, batch_size=4, progress=False)
    assert count == len(ids) - 1
    assert nll == pytest.approx(naive_reference_nll(model, ids, SEQ_LEN, 8), rel=1e-6)


def test_non_overlapping_equals_independent_chunks(model):
    ids = random_ids(150)  # 149 targets: 4 full chunks of 32 and a tail of 21
    nll, count = score_token_stream(model, ids, seq_len=SEQ_LEN, stride=SEQ_LEN, batch_size=3, progress=False)
    chunks = sum(direct_nll(model, ids[i : i + SEQ_LEN + 1]) for i in range(0, len(ids) - 1, SEQ_LEN))
    assert count == 149 and nll == pytest.approx(chunks, rel=1e-6)


def test_batch_size_does_not_change_the_result(model):
    ids = random_ids(120)
    one = score_token_stream(model, ids, seq_len=SEQ_LEN, stride=16, batch_size=1, progress=False)
    many = score_token_stream(model, ids, seq_len=SEQ_LEN, stride=16, batch_size=5, progress=False)
    assert one[1] == many[1] == 119 and one[0] == pytest.approx(many[0], rel=1e-6)


def test_scoring_restores_training_mode(model):
    model.train()
    score_token_stream(model, random_ids(10), seq_len=SEQ_LEN, progress=False)
    assert model.training
    model.eval()


@pytest.mark.parametrize("kwargs, match", [
    (dict(seq_len=32, stride=33), "stride=33 is larger than seq_len=32"),
    (dict(seq_len=MAX_POS + 1), "exceeds the model's max_position_embeddings"),
    (dict(seq_len=32, stride=0), "stride=0"),
    (dict(seq_len=32, batch_size=0), "batch_size=0"),
])
def test_bad_window_settings(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        score_token_stream(model, random_ids(50), progress=False, **kwargs)


def test_too_short_stream(model):
    with pytest.raises(ValueError, match="at least 2"):
        score_token_stream(model, [5], seq_len=8, progress=False)


# ------------------------------------------------------------------------------------------------------- LAMBADA
class NextTokenModel(nn.Module):
    """Logits whose argmax after token t is table[t]; records each batch to check padding and masks."""

    def __init__(self, table, max_positions=16):
        super().__init__()
        self.register_buffer("table", torch.tensor(table))
        self.config = SimpleNamespace(max_position_embeddings=max_positions)
        self.batches = []

    def forward(self, input_ids, attention_mask=None, **kwargs):
        self.batches.append((input_ids.clone(), attention_mask.clone()))
        logits = torch.full((*input_ids.shape, len(self.table)), -1.0)
        return SimpleNamespace(logits=logits.scatter(-1, self.table[input_ids].unsqueeze(-1), 1.0))


NEXT = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # t -> t + 1 (mod 10)
EXAMPLES = [
    LambadaExample([1, 2], [3, 4]),  # argmax 3, 4: strict and last token right
    LambadaExample([5], [7, 8]),  # argmax 6, 8: strict wrong, last token right
    LambadaExample([2], [3, 9]),  # argmax 3, 4: both wrong
    LambadaExample([1, 1, 1], [2]),  # argmax 2: both right
]


def test_lambada_strict_vs_last_token_hand_computed():
    from adlr_hf.metrics.lambada_accuracy import LambadaAccuracy

    fake = NextTokenModel(NEXT)
    preds, refs = lambada_predictions(fake, EXAMPLES, batch_size=3, pad_id=0, progress=False)
    assert preds == [[3, 4], [6, 8], [3, 4], [2]] and refs == [[3, 4], [7, 8], [3, 9], [2]]
    out = LambadaAccuracy(keep_in_memory=True).compute(predictions=preds, references=refs)
    assert out == {"accuracy": 0.5, "accuracy_last_token": 0.75, "num_examples": 4}
    # Each example is its own right-padded row; padding is masked out.
    ids, mask = fake.batches[0]
    assert ids.tolist() == [[1, 2, 3], [5, 7, 0], [2, 3, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0], [1, 1, 0]]
    assert fake.batches[1][0].tolist() == [[1, 1, 1]]


def test_lambada_long_context_keeps_its_last_tokens():
    fake = NextTokenModel(NEXT)
    preds, _ = lambada_predictions(fake, [LambadaExample([7, 7, 7, 1, 2], [3, 4])], seq_len=3, progress=False)
    assert preds == [[3, 4]] and fake.batches[0][0].tolist() == [[1, 2, 3]]


class WordTokenizer:
    """`w<i>` -> i; a leading space is ignored (whitespace-split words)."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [int(word[1:]) for word in text.split()]}


def test_evaluate_lambada_reads_jsonl(tmp_path):
    path = tmp_path / "lambada_test.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["w1 w2 w3 w4", "w5 w7", "w8 w8 w9"]) + "\n")
    out = evaluate_lambada(NextTokenModel(NEXT), WordTokenizer(), path, batch_size=2, progress=False)
    assert out == {"accuracy": pytest.approx(2 / 3), "accuracy_last_token": pytest.approx(2 / 3), "num_examples": 3}


# ----------------------------------------------------------------------------------------------- real data, CLI
WORDS = ("the model splits each layer across ranks and every rank holds one slice of the weight matrix tensor "
         "parallel data gradient optimizer perplexity window context").split()


def synthetic_wikitext(lines=40, seed=0):
    import random

    rng = random.Random(seed)
    out = [" \n", " = Tensor parallel = \n", " \n"]
    for i in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 25))]
        out.append(" " + " ".join(words) + f" , 1 @,@ {i:03d} @-@ fold ( {rng.choice(WORDS)} ) . \n")
    return "".join(out)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved tiny Megatron-GPT with a byte-level BPE trained on synthetic WikiText-like text."""
    folder = tmp_path_factory.mktemp("tiny_gpt")
    tokenizer = train_tokenizer(synthetic_wikitext(200, seed=1).splitlines(), vocab_size=300)
    tiny_model(vocab_size=len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def small_wikitext(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "wiki.test.tokens"
    path.write_text(synthetic_wikitext(12))
    return path


@pytest.mark.skipif(not WIKITEXT2_TEST.exists(), reason=f"shared WikiText-2 data not present at {WIKITEXT2_TEST}")
def test_end_to_end_on_wikitext2_test_prefix(tmp_path):
    text = WIKITEXT2_TEST.read_text(encoding="utf-8")[:8000]
    small = tmp_path / "wiki.test.tokens"
    small.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")
    tokenizer = train_tokenizer([line for line in text.splitlines() if line.strip()], vocab_size=512)
    model = tiny_model(vocab_size=len(tokenizer), max_positions=64)
    out = evaluate_wikitext(model, tokenizer, small, stride=32, batch_size=8, progress=False)
    t, t_o = out["num_tokens"], out["num_original_tokens"]
    assert t > 64 * 10 and t_o > 1000  # several windows
    assert all(math.isfinite(out[k]) for k in ("perplexity", "adjusted_perplexity"))
    exponent = math.log(out["perplexity"]) * (t - 1) / (t_o - 1)
    assert exponent < 20  # below the clamp, so the identity below must hold
    assert out["adjusted_perplexity"] == pytest.approx(math.exp(exponent), rel=1e-6)


def test_cli_wikitext_writes_json(model_dir, small_wikitext, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["evaluate", str(model_dir), "--task", "wikitext2", "--data", str(small_wikitext), "--seq-len", "32",
               "--stride", "16", "--batch-size", "4", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert {"task", "model", "data", "metrics"} <= set(result) and result["task"] == "wikitext2"
    assert set(result["metrics"]) == {"perplexity", "adjusted_perplexity", "num_tokens", "num_original_tokens"}
    assert result["settings"] == {"seq_len": 32, "stride": 16, "batch_size": 4, "tp": 1}
    assert json.loads(capsys.readouterr().out) == result
    # The same numbers as the Python API on the loaded folder.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    api = evaluate_wikitext(AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir),
                            small_wikitext, seq_len=32, stride=16, progress=False)
    assert result["metrics"]["num_tokens"] == api["num_tokens"]
    assert result["metrics"]["perplexity"] == pytest.approx(api["perplexity"], rel=1e-6)


def test_cli_lambada_and_run_folder(model_dir, tmp_path):
    data = tmp_path / "lambada_test.jsonl"
    data.write_text("".join(json.dumps({"text": line.strip()}) + "\n"
                            for line in synthetic_wikitext(6).splitlines() if len(line.split()) > 3))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model").symlink_to(model_dir)  # a training run's folder: RUN/model is used
    out = tmp_path / "lambada.json"
    assert main(["evaluate", str(run), "--task", "lambada", "--data", str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == str(run / "model")
    assert set(result["metrics"]) == {"accuracy", "accuracy_last_token", "num_examples"}
    assert result["metrics"]["num_examples"] == 7


def test_cli_update_card_calls_record_evaluation(model_dir, small_wikitext, monkeypatch):
    calls = []
    card = types.ModuleType("adlr_hf.hub.record")
    card.record_evaluation = lambda folder, result: calls.append((folder, result))
    monkeypatch.setitem(sys.modules, "adlr_hf.hub.record", card)
    try:
        import adlr_hf.hub  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "adlr_hf.hub", types.ModuleType("adlr_hf.hub"))
    assert main(["evaluate", str(model_dir), "--task", "wikitext103", "--data", str(small_wikitext),
                 "--seq-len", "32", "--update-card"]) == 0
    assert len(calls) == 1 and calls[0][0] == str(model_dir) and calls[0][1]["task"] == "wikitext103"


BAD = {
    "missing model folder": (["{tmp}/nope"], "does not exist"),
    "not a model folder": (["{tmp}"], "no config.json"),
    "missing data": (["{model}", "--data", "{tmp}/missing.tokens"], "does not exist"),
    "unknown task": (["{model}", "--task", "wikitext"], "unknown task 'wikitext'"),
    "jsonl given to wikitext": (["{model}", "--data", "{tmp}/l.jsonl"], "JSON lines"),
    "wikitext given to lambada": (["{model}", "--task", "lambada"], "is not JSON"),
    "seq-len above max positions": (["{model}", "--seq-len", "1000"], "exceeds the model's max_position_embeddings"),
    "stride above seq-len": (["{model}", "--seq-len", "16", "--stride", "32"], "larger than seq_len"),
    "tp without a launcher": (["{model}", "--tp", "2"], "tp_size=2 does not divide the world size 1"),
    "json folder missing": (["{model}", "--json", "{tmp}/no/such/dir/eval.json"], "does not exist"),
    "card module missing": (["{model}", "--update-card"], "--update-card needs"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_cli_bad_inputs_exit_2_and_write_nothing(case, model_dir, small_wikitext, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "adlr_hf.hub.record", None)  # an import of it fails
    (tmp_path / "l.jsonl").write_text('{"text": "a b c"}\n')
    args, match = BAD[case]
    args = [a.format(tmp=tmp_path, model=model_dir) for a in args]
    defaults = {"--task": "wikitext2", "--data": str(small_wikitext), "--json": str(tmp_path / "eval.json")}
    for flag, value in defaults.items():
        if flag not in args:
            args += [flag, value]
    before = sorted(os.listdir(tmp_path))
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adlr-hf: error:") and match in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_evaluate_model_dir_rejects_missing_tokenizer(model_dir, small_wikitext, tmp_path):
    folder = tmp_path / "no_tok"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).symlink_to(Path(model_dir) / name)
    with pytest.raises(ValueError, match="cannot load a tokenizer"):
        evaluate_model_dir(folder, "wikitext2", small_wikitext, seq_len=32, progress=False)


# ------------------------------------------------------------------------------------------------------ TP and DP
def _tp_worker(rank, model_dir, data, lambada, expected, out_json):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import adlr_hf.evaluation.lm_eval as lm_eval
    from adlr_hf.parallel import init_parallel, is_tensor_parallel
    from adlr_hf.parallel.state import ParallelState

    state = init_parallel(tp_size=2)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, tp_size=2)
    assert is_tensor_parallel(model)
    got = evaluate_wikitext(model, tokenizer, data, seq_len=32, stride=8, batch_size=4, progress=False)
    assert got["num_tokens"] == expected["wikitext"]["num_tokens"]
    for key in ("perplexity", "adjusted_perplexity"):
        assert got[key] == pytest.approx(expected["wikitext"][key], rel=1e-5), key
    assert evaluate_lambada(model, tokenizer, lambada, batch_size=3, progress=False) == expected["lambada"]

    # The CLI under a launcher: both ranks evaluate, rank 0 writes.
    assert main(["evaluate", model_dir, "--task", "wikitext2", "--data", data, "--seq-len", "32", "--stride", "8",
                 "--tp", "2", "--json", out_json]) == 0
    torch.distributed.barrier()
    written = json.loads(Path(out_json).read_text())["metrics"]
    assert written["perplexity"] == pytest.approx(expected["wikitext"]["perplexity"], rel=1e-5)

    # Data parallelism: the same two processes as a DP group of 2 around an unsharded model.
    dp_state = ParallelState(2, rank, 1, 0, 2, rank, None, torch.distributed.group.WORLD)
    lm_eval.get_parallel_state = lambda: dp_state
    replica = AutoModelForCausalLM.from_pretrained(model_dir, tp_size=1)
    assert not is_tensor_parallel(replica) and state.tp_size == 2
    got = evaluate_wikitext(replica, tokenizer, data, seq_len=32, stride=8, batch_size=4, progress=False)
    assert got["num_tokens"] == expected["wikitext"]["num_tokens"]
    assert got["perplexity"] == pytest.approx(expected["wikitext"]["perplexity"], rel=1e-5)
    assert evaluate_lambada(replica, tokenizer, lambada, batch_size=3, progress=False) == expected["lambada"]


@pytest.mark.slow
def test_tp2_and_dp2_equal_tp1(model_dir, small_wikitext, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lambada = tmp_path / "lambada.jsonl"
    lambada.write_text("".join(json.dumps({"text": line.strip()}) + "\n"
                               for line in synthetic_wikitext(7).splitlines() if len(line.split()) > 3))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    expected = {
        "wikitext": evaluate_wikitext(model, tokenizer, small_wikitext, seq_len=32, stride=8, progress=False),
        "lambada": evaluate_lambada(model, tokenizer, lambada, progress=False),
    }
    run_ranks(_tp_worker, str(model_dir), str(small_wikitext), str(lambada), expected, str(tmp_path / "tp2.json"))
