"""`adlr-hf plan` on the command line: the issue's example (table, JSON, the files --out writes: the checked
DeepSpeed config, the hostfile and launch.sh), and one clear error per bad input, with nothing written."""

import json
import subprocess
from pathlib import Path

import pytest

from adlr_hf.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = ["plan", "--model", "megatron-gpt-8.3b", "--tp", "8", "--dp", "64", "--micro-batch-size", "8", "--seq-len",
           "1024", "--deepspeed-config", "configs/deepspeed/zero1_bf16.json"]


def test_the_issue_example_writes_the_launch_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "plan83"
    assert main([*EXAMPLE, "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((out / "plan.json").read_text()) == printed
    assert printed["layout"] == {"tp": 8, "dp": 64, "micro_batch_size": 8, "grad_accum": 1, "seq_len": 1024,
                                 "gpus_per_node": 8, "nodes": 64, "activation_checkpointing": False, "world": 512,
                                 "global_batch_size": 512}
    (rank,) = printed["ranks"]
    assert rank["tp_ranks"] == list(range(8)) and rank["parameters"] == 1_043_549_184
    ds = json.loads((out / "ds_config.json").read_text())
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]) == \
        (8, 1, 512)
    assert ds["zero_optimization"]["stage"] == 1 and ds["bf16"] == {"enabled": True}
    assert printed["launch"]["deepspeed_config"] == ds
    hosts = (out / "hostfile").read_text().splitlines()
    assert len(hosts) == 64 and hosts[0] == "node-00 slots=8" and hosts[-1] == "node-63 slots=8"
    script = (out / "launch.sh").read_text()
    assert (out / "launch.sh").stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(out / "launch.sh")]).returncode == 0
    assert ('deepspeed --hostfile "$HERE/hostfile" --master_addr node-00 --master_port 29500 --module adlr_hf.train '
            '--model megatron-gpt-8.3b --tp 8 --micro-batch-size 8 --grad-accum 1 --seq-len 1024 --deepspeed-config '
            '"$HERE/ds_config.json" --data "$DATA" --out "$OUT"') in script
    assert printed["launch"]["deepspeed"].startswith(f"deepspeed --hostfile {out}/hostfile --master_addr node-00 ")
    assert printed["launch"]["torchrun"].startswith("torchrun --nnodes 64 --nproc-per-node 8 --rdzv-backend c10d "
                                                    "--rdzv-endpoint node-00:29500")


def test_table_output(capsys):
    assert main(["plan", "--model", "megatron-gpt-mini", "--tp", "2", "--dp", "2", "--micro-batch-size", "4",
                 "--grad-accum", "2", "--seq-len", "128", "--activation-checkpointing", "--gpu-memory-gib", "1"]) == 0
    text = capsys.readouterr().out
    for expected in ("TP 2 × DP 2 = 4 GPUs on 1 node(s) × 4", "micro-batch 4 × accumulation 2 × DP 2 = 16 sequences",
                     "ZeRO-0, fp32, AdamW, activation checkpointing", "per rank (TP ranks 0..1)",
                     "activations checkpointed", "fits in 1 GiB", "TP all-reduces / step", "recompute",
                     "DP / ZeRO / step", "all_reduce of gradients", "deepspeed --num_gpus 4 --module adlr_hf.train"):
        assert expected in text, expected


@pytest.mark.parametrize("extra,message", [
    (["--tp", "3", "--dp", "8"], "num_attention_heads=32 is not divisible by tp_size=3"),
    (["--tp", "2", "--dp", "4", "--set", "make_vocab_size_divisible_by=0"],
     "make_vocab_size_divisible_by=0 cannot pad the vocabulary (50257) to a multiple of --tp 2"),
    (["--tp", "4", "--dp", "3"], "TP 4 × DP 3 = 12 GPUs is not a multiple of --gpus-per-node 8"),
    (["--tp", "8", "--dp", "64", "--micro-batch-size", "3", "--global-batch-size", "512"],
     "micro-batch 3 × DP 64 = 192 sequences per micro-step does not fit the global batch 512"),
    (["--tp", "8", "--dp", "8", "--nodes", "4"], "--nodes 4 × --gpus-per-node 8 = 32 GPUs, but TP 8 × DP 8 = 64"),
    (["--tp", "2", "--dp", "4", "--deepspeed-config", "configs/deepspeed/zero3.json"],
     "ZeRO stage 3 cannot be combined with --tp 2"),
    (["--tp", "8", "--dp", "1", "--seq-len", "2048"],
     "--seq-len 2048 exceeds the model's max_position_embeddings=1024"),
    (["--tp", "0"], "--tp=0 must be an integer >= 1"),
])
def test_bad_input_gives_one_error_and_writes_nothing(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "plan"
    assert main(["plan", "--model", "megatron-gpt-8.3b", *extra, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adlr-hf: error: ") and message in lines[0], captured.err
    assert captured.out == "" and not out.exists() and list(tmp_path.iterdir()) == []


def test_out_folder_that_is_not_a_plan_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["plan", "--model", "megatron-gpt-tiny", "--out", str(tmp_path)]) == 2
    assert "is not empty and holds no plan.json" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_model_that_is_not_a_transformer_lm_is_refused(capsys):
    assert main(["plan", "--model", "pd-resnet-tiny"]) == 2
    assert "adlr-hf plan models transformer language models" in capsys.readouterr().err
