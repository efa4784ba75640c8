"""`adlr-hf publish` on a real (tiny) training run: Hub layout, loading three ways, card snippets, checkpoint export,
sharding, atomicity, refusal without --force, and --push without a token."""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import adlr_hf  # noqa: F401 - registers the families
from adlr_hf.cli import main as cli_main
from adlr_hf.hub import PushUnavailable, publish, push_to_hub, weights_fingerprint
from adlr_hf.training.export import export_checkpoint
from remote_code import run_without_adlr_hf

publish_mod = importlib.import_module("adlr_hf.hub.publish")  # the package re-exports a function of that name

REPO_ID = "nvidia/megatron-gpt-tiny-demo"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """`python -m adlr_hf.train` for 3 steps with a checkpoint at step 3 (a fresh process: DeepSpeed initialises
    torch.distributed, which must not leak into the test process)."""
    root = tmp_path_factory.mktemp("run")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(f"The {a} jumps over the {b} number {i % 7}." for i, (a, b) in
                                  enumerate([("fox", "dog"), ("cat", "fence"), ("cow", "moon")] * 40)) + "\n")
    run = root / "RUN"
    cmd = [sys.executable, "-m", "adlr_hf.train", "--steps", "3", "--seq-len", "32", "--micro-batch-size", "2",
           "--vocab-size", "300", "--out", str(run), "--no-progress", "--save-every", "3", "--data", str(corpus)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def published(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pub") / "megatron-gpt-tiny-demo"
    publish(run_dir, out, repo_id=REPO_ID, inference_runs=2)
    return out


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_layout_and_loading(published, run_dir):
    from transformers import AutoModelForCausalLM, pipeline

    names = {p.name for p in published.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "configuration_megatron_gpt.py", "modeling_megatron_gpt.py", "loss_curve.png", "README.md",
            "adlr_hf_systems.json", "adlr_hf_evals.json"} <= names
    assert "auto_map" in json.loads((published / "config.json").read_text())
    assert not [n for n in _siblings(published) if n.startswith(".")], "a temporary folder was left behind"

    model = AutoModelForCausalLM.from_pretrained(published).eval()
    trained = AutoModelForCausalLM.from_pretrained(run_dir / "model").eval()
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    assert torch.equal(model(ids).logits, trained(ids).logits)

    text = pipeline("text-generation", model=str(published))("The fox", max_new_tokens=5, do_sample=False)
    assert text[0]["generated_text"].startswith("The fox") and len(text[0]["generated_text"]) > len("The fox")

    systems = json.loads((published / "adlr_hf_systems.json").read_text())
    info = json.loads((run_dir / "run_info.json").read_text())
    assert systems["parameters"] == info["parameters"] == sum(p.numel() for p in model.parameters())
    assert systems["training"]["tokens_per_second"] == info["tokens_per_second"]
    assert systems["training"]["machine"] == info["machine"]
    assert systems["training"]["peak_memory_mib"] == info["peak_memory_mib"]
    assert systems["inference"]["tokens_per_second"] > 0 and systems["inference"]["new_tokens"] > 0
    assert systems["flops"]["seq_len"] == 32 and systems["flops"]["training_flops_per_token"] > 0
    assert systems["weights_sha256"] == weights_fingerprint(published)


def test_card_metadata_and_prose(published, run_dir):
    from huggingface_hub import ModelCard

    card = ModelCard.load(published / "README.md")
    data = card.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    assert data.pipeline_tag == "text-generation"
    assert {"adlr_hf", "megatron-gpt", "arxiv:1909.08053"} <= set(data.tags)
    assert data.model_name == "megatron-gpt-tiny-demo"
    assert getattr(data, "base_model", None) is None  # trained from scratch
    text = card.text
    for fact in ("Megatron-LM: Training Multi-Billion Parameter", "1909.08053", "github.com/NVIDIA/Megatron-LM",
                 "deepspeed, ZeRO stage 0", "TP=1 × DP=1", "| steps | 3 |", "| tokens | 192 |",
                 "| sequence length | 32 |", "training FLOPs per token", "inference throughput",
                 "![training loss](loss_curve.png)", "## Limitations", "No evaluation recorded yet"):
        assert fact in text, fact
    machine = json.loads((run_dir / "run_info.json").read_text())["machine"]
    assert machine in text


def test_card_snippets_run_where_adlr_hf_is_not_importable(published, tmp_path):
    """The card's python blocks, verbatim, in a fresh process without adlr_hf, resolving the repo id from a local
    Hub cache (offline): loads with trust_remote_code=True and generates."""
    blocks = re.findall(r"```python\n(.*?)```", (published / "README.md").read_text(), flags=re.S)
    assert len(blocks) == 2 and all(REPO_ID in b for b in blocks)
    assert any('pipeline("text-generation"' in b for b in blocks)
    cache = tmp_path / "hub"
    snapshot = cache / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / ("0" * 40)
    shutil.copytree(published, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    body = "\n".join(blocks) + textwrap.dedent("""
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        print("snippets-ok", type(model).__name__)
    """)
    stdout = run_without_adlr_hf(body, tmp_path / "hf_home",
                                 env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert "snippets-ok MegatronGPTForCausalLM" in stdout
    assert stdout.count("The quick brown fox") == 2


def test_checkpoint_export_and_sharded_publish(run_dir, published, tmp_path):
    ckpt = run_dir / "checkpoints" / "step_00000003"
    exported = export_checkpoint(ckpt, tmp_path / "exported")
    a, b = load_file(exported / "model.safetensors"), load_file(run_dir / "model" / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), "TP=1 export differs from the run's"
    assert (exported / "tokenizer.json").is_file() and (exported / "modeling_megatron_gpt.py").is_file()

    # A checkpoint publishes through the same export; above --max-shard-size the weights are sharded with an index.
    out = tmp_path / "from_ckpt"
    publish(ckpt, out, max_shard_size="100KB", measure_inference=False)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(out.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and set(index["weight_map"].values()) == {s.name for s in shards}
    assert not (out / "model.safetensors").exists()
    assert weights_fingerprint(out) == weights_fingerprint(published)
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(out)(ids).logits,
                               AutoModelForCausalLM.from_pretrained(published)(ids).logits, rtol=0, atol=0)
    assert "checkpoint at step 3" in (out / "README.md").read_text()
    assert not [n for n in _siblings(out) if n.startswith(".")]


def test_interrupted_publish_leaves_the_previous_one_intact(run_dir, published, tmp_path, monkeypatch):
    out = tmp_path / "pub"
    shutil.copytree(published, out)
    before = _snapshot(out)

    def crash(card, tmp):
        (tmp / "README.md").write_text("---\nhalf a card")
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(publish_mod._card, "save_card", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        publish(run_dir, out, measure_inference=False)
    assert _snapshot(out) == before
    assert _siblings(out) == [], "a temporary folder was left behind"


def test_a_killed_publish_is_recovered_on_the_next_one(published, tmp_path):
    """SIGKILL between the two renames leaves OUT_DIR missing and the old publish aside; the next publish puts it
    back (and removes temporary folders of dead processes) before it starts."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "pub"
    aside = tmp_path / f".pub.replaced-{dead.pid}-0123abcd"
    shutil.copytree(published, aside)
    (tmp_path / f".pub.writing-{dead.pid}-0123abcd").mkdir()
    publish_mod._recover_stale(out)
    assert _snapshot(out) == _snapshot(published)
    assert _siblings(out) == []


def test_refuses_a_foreign_folder_without_force(run_dir, tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="--force"):
        publish(run_dir, out)
    assert cli_main(["publish", str(run_dir), str(out)]) == 2
    assert "not a previous publish" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["todo.txt"]
    with pytest.raises(ValueError, match="replace the files it reads"):
        publish(run_dir, run_dir / "model", force=True)
    with pytest.raises(ValueError, match="inside the source"):
        publish(run_dir, run_dir / "model" / "hub")
    with pytest.raises(ValueError, match="max-shard-size"):
        publish(run_dir, tmp_path / "x", max_shard_size="lots")
    publish(run_dir, out, force=True, measure_inference=False)
    assert not (out / "todo.txt").exists() and (out / "adlr_hf_systems.json").is_file()


def test_push_without_token_gives_one_clear_message(run_dir, published, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    out = tmp_path / "pub"
    code = cli_main(["publish", str(run_dir), str(out), "--repo-id", REPO_ID, "--push"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not pushed" in err and "token" in err and f"published locally at {out}" in err
    assert (out / "README.md").is_file() and (out / "model.safetensors").is_file()

    with pytest.raises(PushUnavailable, match="--repo-id"):
        push_to_hub(published, None)
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PushUnavailable, match="network") as info:
        push_to_hub(published, REPO_ID)
    assert "token" not in str(info.value).split("missing", 1)[1].split(".")[0]


def _train_worker(rank, argv):
    from adlr_hf.train import run
    from adlr_hf.training.args import build_parser

    run(build_parser().parse_args(argv))


@pytest.mark.slow
@pytest.mark.parametrize("tp,zero", [(2, 1), (1, 3)], ids=["tp2-zero1", "dp2-zero3"])
def test_multi_rank_checkpoint_export_equals_the_runs_gathered_export(run_dir, tmp_path, tp, zero):
    """2 gloo ranks under DeepSpeed. TP=2: the two mp_rank_XX shards merge and the vocab padding (300 -> 512 rows) is
    stripped; ZeRO-3 at DP=2: zero_to_fp32 gathers the partitions. Both give exactly the run's own gathered export."""
    from dist_utils import run_ranks

    out = tmp_path / "run"
    argv = ["--steps", "3", "--seq-len", "32", "--micro-batch-size", "2", "--vocab-size", "300", "--out", str(out),
            "--no-progress", "--save-every", "3", "--data", str(run_dir.parent / "corpus.txt"), "--tp", str(tp),
            "--engine", "deepspeed", "--deepspeed-config", str(ROOT / "configs" / "deepspeed" / f"zero{zero}.json"),
            "--eval-fraction", "0"]
    run_ranks(_train_worker, argv)
    ckpt = out / "checkpoints" / "step_00000003"
    if tp == 2:
        assert sorted(p.name for p in ckpt.glob("mp_rank_*_model_states.pt")) == ["mp_rank_00_model_states.pt",
                                                                                  "mp_rank_01_model_states.pt"]
        shard = torch.load(ckpt / "mp_rank_00_model_states.pt", weights_only=True)["module"]
        assert shard["transformer.word_embeddings.weight"].shape[0] == 256  # 512 padded rows / 2 ranks
    exported = export_checkpoint(ckpt, tmp_path / "exported")
    a, b = load_file(exported / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
