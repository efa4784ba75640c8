"""Exact-resume checks: a run with checkpoints, and a copy of it resumed from an earlier checkpoint, must agree bit
for bit (losses, evaluations, final weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def metrics(run_dir: Path) -> list[dict]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("time", "tokens_per_second", "images_per_second",
                                                                      "examples_per_second", "frames_per_second")}
            for line in lines if line.strip()]


def run_then_resume(rank, cases):
    """Worker: for each (argv, resume_step) run argv to the end, copy the run folder to `<out>-resumed`, and resume the
    copy from its checkpoint at `resume_step` (the copy's later checkpoints are removed first)."""
    import torch.distributed as dist

    from adlr_hf.train import run
    from adlr_hf.training.args import build_parser
    from adlr_hf.training.checkpoint import CHECKPOINTS, checkpoint_name

    for argv, resume_step in cases:
        out = Path(argv[argv.index("--out") + 1])
        run(build_parser().parse_args(argv))
        copy = out.with_name(out.name + "-resumed")
        if rank == 0:
            shutil.copytree(out, copy)
            for ckpt in (copy / CHECKPOINTS).iterdir():
                if ckpt.name.startswith("step_") and int(ckpt.name.split("_")[1]) > resume_step:
                    shutil.rmtree(ckpt)
            shutil.rmtree(copy / "model")
        if dist.is_initialized():
            dist.barrier()
        resumed = list(argv)
        resumed[resumed.index("--out") + 1] = str(copy)
        run(build_parser().parse_args(resumed + ["--resume", str(copy / CHECKPOINTS / checkpoint_name(resume_step))]))


def assert_same_run(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    assert metrics(a) == metrics(b), f"{b.name}: the resumed run's metrics differ from the uninterrupted run"
    wa, wb = load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not (wa[k] == wb[k]).all()]
    assert not different, f"{b.name}: resumed weights differ in {different[:5]}"
