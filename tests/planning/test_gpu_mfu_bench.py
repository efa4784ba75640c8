"""scripts/bench/gpu_mfu.py: without a GPU it exits 0 with a "no GPU" line and no ratio; its measuring loop (run on
the CPU as a smoke test) reports Megatron's model FLOPs over the median step time and the peak."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adlr_hf.hub.systems import megatron_flops_per_iteration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "gpu_mfu.py"


def _run(*args):
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    return lines, json.loads(lines[-1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script measures instead")
def test_without_a_gpu_it_says_so_and_gives_no_ratio():
    lines, result = _run()
    assert any(line.startswith("no GPU:") for line in lines)
    assert result["bench"] == "gpu_mfu" and result["ratio"] is None and result["skipped"] == "no GPU"


def test_the_measuring_loop_on_the_cpu():
    lines, result = _run("--device", "cpu", "--model", "megatron-gpt-tiny", "--seq-len", "64", "--micro-batch-size",
                         "2", "--steps", "2", "--warmup", "1", "--peak-tflops", "0.5")
    # megatron-gpt-tiny: 2 layers, hidden 64, vocabulary 1024.
    assert result["model_flops_per_step"] == megatron_flops_per_iteration(2, 64, 2, 64, 1024)
    step = result["median_step_seconds"]  # rounded to 1e-6 s: a relative error of up to 5e-7 / step
    achieved = result["model_flops_per_step"] / step / 1e12
    assert result["achieved_tflops"] == pytest.approx(achieved, rel=1e-9 + 5e-7 / step)
    # the ratio is rounded to 4 decimals, from the unrounded throughput
    assert result["ratio"] == pytest.approx(result["achieved_tflops"] / 0.5, abs=5e-5 + 1e-12) and result["ratio"] > 0
    assert result["smoke_test_only"] is True and result["parameters"] == 173_824
    assert any(line.startswith("MFU = ") for line in lines)
