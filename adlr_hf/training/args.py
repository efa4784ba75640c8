"""Arguments shared by `python -m adlr_hf.train` and `adlr-hf train` (same names, same defaults)."""

from __future__ import annotations

import argparse

from ..tasks import all_tasks


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    model = parser.add_argument_group("model and data")
    model.add_argument("--model", default="megatron-gpt-tiny",
                       help="registered variant (see `adlr-hf list`), a config.json, or a model folder to continue from")
    model.add_argument("--task", default=None,
                       help="the training task (default: the model family's own); one of: " + ", ".join(
                           f"{t.name} ({t.description})" for t in all_tasks()))
    model.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set hidden_dropout=0 (repeatable)")
    model.add_argument("--data", nargs="+", default=None,
                       help="the task's data: text/json/jsonl/parquet files or folders for text tasks (default: an "
                            "embedded corpus of Python standard-library docstrings), an image folder, ...")
    model.add_argument("--eval-fraction", type=float, default=0.02,
                       help="share of packed blocks held out for --eval-every (0 disables evaluation)")
    model.add_argument("--num-proc", type=int, default=1, help="processes for tokenization")

    par = parser.add_argument_group("parallelism and engine")
    par.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (must divide the world size)")
    par.add_argument("--engine", choices=["deepspeed", "accelerate"], default="deepspeed")
    par.add_argument("--deepspeed-config", default=None,
                     help="DeepSpeed JSON (e.g. configs/deepspeed/zero1.json); default: ZeRO-0 fp32")
    par.add_argument("--nproc", type=int, default=None,
                     help="`adlr-hf train` only: start this many local processes with the deepspeed launcher")
    par.add_argument("--collective-timeout", type=float, default=600.0, metavar="SECONDS",
                     help="how long a rank waits for the others in one collective before the job fails (a rank that "
                          "died makes the others fail within this time; default 600)")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--steps", type=int, default=None, help="optimizer steps (default: from --epochs)")
    opt.add_argument("--epochs", type=float, default=None, help="passes over the data (default 1 if --steps unset)")
    opt.add_argument("--micro-batch-size", type=int, default=4)
    opt.add_argument("--grad-accum", type=int, default=1)
    opt.add_argument("--lr", type=float, default=3e-4)
    opt.add_argument("--min-lr", type=float, default=0.0)
    opt.add_argument("--lr-schedule", choices=["cosine", "linear", "poly", "constant"], default=None,
                     help="after the warm-up (default: the task's; cosine, poly for semantic segmentation)")
    opt.add_argument("--poly-exp", type=float, default=1.0,
                     help="--lr-schedule poly: the exponent of (1 - progress) (default 1.0, the segmentation "
                          "reference's; DeepLab uses 0.9)")
    opt.add_argument("--warmup-steps", type=int, default=0)
    opt.add_argument("--weight-decay", type=float, default=None,
                     help="(default: the task's; 0.01, 1e-4 for semantic segmentation, the reference's)")
    opt.add_argument("--clip-grad", type=float, default=1.0, help="max gradient norm (0 disables clipping)")
    opt.add_argument("--activation-checkpointing", action="store_true",
                     help="recompute each transformer layer in backward (Megatron's --checkpoint-activations): "
                     "activation memory of one layer instead of all, for about one more forward per step")
    opt.add_argument("--seed", type=int, default=1234)

    run = parser.add_argument_group("run")
    run.add_argument("--out", default="runs/latest", help="run folder: checkpoints, metrics, the exported model")
    run.add_argument("--save-every", type=int, default=0,
                     help="also checkpoint every N steps (0: only the checkpoint every run writes at its end)")
    run.add_argument("--save-total-limit", type=int, default=0, metavar="N",
                     help="keep only the newest N checkpoints (0: keep all)")
    run.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0: only at the end)")
    run.add_argument("--log-every", type=int, default=1)
    run.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_OR_CHECKPOINT",
                     help="continue a run: a checkpoint folder, a run folder (its latest complete checkpoint), or "
                          "nothing for the --out folder's")
    run.add_argument("--allow-schedule-change", action="store_true",
                     help="resume even though the schedule flags (--steps, --lr, ...) differ from the checkpoint's")
    run.add_argument("--on-bad-sample", choices=["error", "skip"], default="error",
                     help="a sample that cannot be read (a corrupt image, undecodable text): stop with its path "
                          "(error, before step 1) or leave it out and count it in run_info.json (skip)")
    run.add_argument("--no-export", action="store_true", help="skip the final Hugging Face export")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    run.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    add_task_arguments(parser)
    return parser


def add_option_groups(parser: argparse.ArgumentParser, owners) -> None:
    """Add each owner's `Option`s in a group named after it; a flag several owners share is added once."""
    seen = {action.dest for action in parser._actions}
    for title, options in owners:
        fresh = [option for option in options if option.dest not in seen]
        if not fresh:
            continue
        group = parser.add_argument_group(title)
        for option in fresh:
            group.add_argument(option.flag, **option.kwargs)
            seen.add(option.dest)


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_groups(parser, [(f"task {task.name}", task.arguments) for task in all_tasks()])


def build_parser(prog: str = "python -m adlr_hf.train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train an adlr_hf model (DeepSpeed or Accelerate).")
    return add_training_arguments(parser)


def parse_overrides(items: list[str]) -> dict:
    """`KEY=VALUE` pairs with JSON-ish values (numbers, true/false, null) for config overrides."""
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r} is not KEY=VALUE; write e.g. --set hidden_dropout=0")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
