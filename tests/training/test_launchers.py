"""The real launchers users type: `adlr-hf train --nproc 2` (which execs `deepspeed --num_gpus 2`) and
`accelerate launch` (plain DDP and its DeepSpeed plugin), each starting two CPU ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_utils import common_flags, train_losses, write_corpus

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(cmd, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _check(run_dir, tp, dp, engine):
    info = json.loads((run_dir / "run_info.json").read_text())
    assert (info["tp"], info["dp"], info["engine"]) == (tp, dp, engine)
    losses = train_losses(run_dir)
    assert losses[-1] < losses[0], losses
    assert (run_dir / "model" / "model.safetensors").is_file() and (run_dir / "loss_curve.png").is_file()


def test_adlr_hf_train_nproc_execs_the_deepspeed_launcher_at_tp2(tmp_path):
    corpus = write_corpus(tmp_path)
    flags = common_flags(corpus, tmp_path / "run", steps=4) + ["--tp", "2", "--deepspeed-config",
                                                              "configs/deepspeed/zero1.json"]
    result = _run(["adlr-hf", "train", "--nproc", "2", *flags], tmp_path)
    assert "exec: " in result.stdout and "--num_gpus 2 --module adlr_hf.train" in result.stdout
    _check(tmp_path / "run", 2, 1, "deepspeed")


def test_accelerate_launch_ddp_and_deepspeed_plugin(tmp_path):
    corpus = write_corpus(tmp_path)
    flags = common_flags(corpus, tmp_path / "ddp", steps=4) + ["--engine", "accelerate", "--tp", "2"]
    _run(["accelerate", "launch", "--config_file", "configs/accelerate/cpu_2proc.yaml", "-m", "adlr_hf.train",
          *flags], tmp_path)
    _check(tmp_path / "ddp", 2, 1, "accelerate")
    flags = common_flags(corpus, tmp_path / "zero2", steps=4) + ["--engine", "accelerate"]
    _run(["accelerate", "launch", "--config_file", "configs/accelerate/deepspeed_zero2_2proc.yaml", "-m",
          "adlr_hf.train", *flags], tmp_path)
    _check(tmp_path / "zero2", 1, 2, "accelerate")
    assert json.loads((tmp_path / "zero2" / "run_info.json").read_text())["zero_stage"] == 2
