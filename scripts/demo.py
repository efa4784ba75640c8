"""`make demo`: train a small Megatron-GPT at TP=2 with the `deepspeed` launcher, export it, generate a sample.

    python scripts/demo.py [--data PATH ...] [--steps N] [--out DIR]

Without --data it trains on a corpus every Python installation has: the docstrings of the standard library.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=None, help="text/json/jsonl/parquet files (default: stdlib docs)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default=str(REPO / "demo_out"))
    parser.add_argument("--prompt", default="Return the")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    launcher = shutil.which("deepspeed", path=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [
        launcher, "--num_gpus", "2", "--module", "adlr_hf.train",
        "--model", "megatron-gpt-mini", "--tp", "2", "--deepspeed-config", str(REPO / "configs/deepspeed/zero1.json"),
        "--seq-len", "128", "--micro-batch-size", "8", "--steps", str(args.steps), "--lr", "1e-3",
        "--warmup-steps", "30", "--min-lr", "1e-4", "--eval-every", "200", "--save-every", "200",
        "--out", args.out,
    ]
    if args.data:
        command += ["--data", *args.data]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks on two cores
    subprocess.run(command, check=True, env=env, cwd=REPO)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import adlr_hf  # noqa: F401 - registers the Auto classes

    model_dir = Path(args.out) / "model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    inputs = tokenizer(args.prompt, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=40, do_sample=True, top_k=40, temperature=0.8,
                         pad_token_id=tokenizer.pad_token_id)
    print("\nsample:", repr(tokenizer.decode(out[0], skip_special_tokens=True)))
    print(f"model folder: {model_dir}\nloss curve:   {Path(args.out) / 'loss_curve.png'}\n"
          f"metrics:      {Path(args.out) / 'metrics.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
