"""`adlr-hf plan`: its flags and what it does with them (the CLI adds the subcommand with `add_plan_arguments` and
calls `run`)."""

from __future__ import annotations

import argparse


def add_plan_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True,
                        help="registered variant (adlr-hf list), a config.json or a model folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (repeatable)")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    parser.add_argument("--dp", type=int, default=1, help="data-parallel degree")
    parser.add_argument("--micro-batch-size", type=int, default=1, help="sequences per rank per micro-step")
    parser.add_argument("--grad-accum", type=int, default=None, help="micro-steps per optimizer step (default 1)")
    parser.add_argument("--global-batch-size", type=int, default=None,
                        help="sequences per optimizer step; must equal micro-batch × accumulation × DP")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per sequence (default: the model's positions)")
    parser.add_argument("--deepspeed-config", default=None,
                        help="DeepSpeed JSON (ZeRO stage, bf16/fp16); default: ZeRO-0, fp32")
    parser.add_argument("--activation-checkpointing", action="store_true",
                        help="recompute each layer in backward (peak uses the checkpointed activations)")
    parser.add_argument("--gpus-per-node", type=int, default=None,
                        help="GPUs per node (default 8, or TP × DP when smaller)")
    parser.add_argument("--nodes", type=int, default=None, help="nodes (default TP × DP / --gpus-per-node)")
    parser.add_argument("--gpu-memory-gib", type=float, default=None, help="say whether the peak fits in this much")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write plan.json, ds_config.json, hostfile and launch.sh here")
    return parser


def run(args) -> int:
    from ..train import load_model_config
    from ..training.engines import load_deepspeed_config, resolve_batch_config
    from .launch import check_out_folder, commands, hostfile_text, write_plan_folder
    from .layout import resolve_layout
    from .plan import make_plan, model_dims
    from .report import render_table, to_json

    if args.out is not None:
        check_out_folder(args.out)
    if args.gpu_memory_gib is not None and not args.gpu_memory_gib > 0:
        raise ValueError(f"--gpu-memory-gib {args.gpu_memory_gib} must be positive")
    config, _ = load_model_config(args.model, args.overrides)
    model_dims(config, args.model)  # a model the plan cannot describe is named before any other check
    seq_len = args.seq_len if args.seq_len is not None else getattr(config, "max_position_embeddings", None)
    if seq_len is None:
        raise ValueError(f"{args.model} has no max_position_embeddings; pass --seq-len")
    layout = resolve_layout(args.tp, args.dp, args.micro_batch_size, seq_len, args.grad_accum,
                            args.global_batch_size, args.gpus_per_node, args.nodes, args.activation_checkpointing)
    ds_config = resolve_batch_config(load_deepspeed_config(args.deepspeed_config), layout.micro_batch_size,
                                     layout.grad_accum, layout.dp, 1.0)
    plan = make_plan(args.model, config, layout, ds_config, args.gpu_memory_gib)
    launch = commands(args.model, layout, args.overrides, args.out)
    plan["launch"] = {**launch, "hostfile": hostfile_text(layout), "deepspeed_config": ds_config}
    if args.out is not None:
        write_plan_folder(args.out, plan, ds_config, layout, args.model, args.overrides)
    print(to_json(plan) if args.json else render_table(plan, launch, args.out))
    return 0
