"""`python -m adlr_hf.train`: train any adlr_hf model under `deepspeed`, `accelerate launch`, `torchrun` or `python`.

Everything that can be checked without the process group (paths, batch arithmetic, TP vs world size, the resume
folder) is checked first, so a bad command fails in a second with one clear message and writes nothing.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import torch


def _world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def validate(args, world: int | None = None):
    """Checks that need no process group; returns (DeepSpeed config or None, model config, init folder, task).
    `world`: the number of processes the run will have (default: the launcher's WORLD_SIZE)."""
    from .data.text import SUPPORTED_EXTENSIONS
    from .parallel.state import check_tp_size
    from .tasks import task_for_training
    from .training.checkpoint import check_checkpoint, resolve_checkpoint
    from .training.engines import load_deepspeed_config, resolve_batch_config, zero_stage

    world = _world_size_from_env() if world is None else world
    check_tp_size(args.tp, world)
    _check_numbers(args)
    # An unknown variant or a bad config fails here, before any process group exists.
    config, init_from = load_model_config(args.model, args.overrides)
    task = task_for_training(config, args.task)
    if getattr(args, "lr_schedule", None) is None:  # the task's default schedule (recorded, so a resume keeps it)
        args.lr_schedule = task.lr_schedule
    if getattr(args, "weight_decay", None) is None:  # the task's default weight decay (recorded with the run's flags)
        args.weight_decay = task.weight_decay
    if args.tp > 1 and hasattr(config, "check_tp_size"):
        config.check_tp_size(args.tp)
    if args.activation_checkpointing:
        _check_activation_checkpointing(config, task)
    task.check_args(args, config)
    if args.data:
        for path in args.data:
            looks_local = os.sep in path or Path(path).suffix in SUPPORTED_EXTENSIONS or path.startswith(".")
            if looks_local and not Path(path).exists():
                raise FileNotFoundError(f"--data {path!r} does not exist; pass the task's files or folders.")
    tokenizer = getattr(args, "tokenizer", None)
    if tokenizer not in (None, "train") and not Path(tokenizer).exists():
        raise FileNotFoundError(f"--tokenizer {tokenizer!r} does not exist; pass a tokenizer folder or `train`.")
    if args.resume is not None:
        args.resume_checkpoint = resolve_checkpoint(args.resume or args.out)
        _check_resume(args, world, check_checkpoint(args.resume_checkpoint))
    ds_config = None
    if args.engine == "deepspeed":
        ds_config = resolve_batch_config(load_deepspeed_config(args.deepspeed_config), args.micro_batch_size,
                                         args.grad_accum, world // args.tp, args.clip_grad)
        if zero_stage(ds_config) == 3 and args.tp > 1:
            raise ValueError(f"ZeRO stage 3 cannot be combined with --tp {args.tp}; use ZeRO 0-2 with tensor "
                             "parallelism, or --tp 1 with ZeRO-3.")
        if hasattr(config, "check_zero_stage"):  # a model that cannot train under some ZeRO stage says so here
            config.check_zero_stage(zero_stage(ds_config))
    elif args.deepspeed_config:
        raise ValueError("--deepspeed-config is for --engine deepspeed; with Accelerate pass DeepSpeed settings "
                         "to `accelerate launch --use_deepspeed` (or use configs/accelerate/*.yaml).")
    return ds_config, config, init_from, task


# Flags that set the learning-rate schedule: a resume must keep them, or the schedule silently changes.
SCHEDULE_FLAGS = ("steps", "epochs", "lr", "min_lr", "lr_schedule", "poly_exp", "warmup_steps", "micro_batch_size",
                  "grad_accum")


def schedule_of(args) -> dict:
    return {name: getattr(args, name) for name in SCHEDULE_FLAGS}


def _check_numbers(args) -> None:
    at_least = {"micro_batch_size": 1, "grad_accum": 1, "seq_len": 1, "log_every": 1, "num_proc": 1,
                "warmup_steps": 0, "save_every": 0, "eval_every": 0, "save_total_limit": 0}
    for name, low in at_least.items():
        value = getattr(args, name, low)
        if value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.epochs is not None and not args.epochs > 0:
        raise ValueError(f"--epochs must be > 0, got {args.epochs}")
    if not getattr(args, "poly_exp", 1.0) > 0:
        raise ValueError(f"--poly-exp must be > 0, got {args.poly_exp}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}; write e.g. --lr 3e-4")
    if not 0 <= args.min_lr <= args.lr:
        raise ValueError(f"--min-lr must be in [0, --lr={args.lr}], got {args.min_lr}")
    for name in ("weight_decay", "clip_grad"):
        if getattr(args, name) is not None and getattr(args, name) < 0:  # weight decay None: the task's default
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if not 0 <= args.eval_fraction < 1:
        raise ValueError(f"--eval-fraction must be in [0, 1), got {args.eval_fraction}")
    if not args.collective_timeout > 0:
        raise ValueError(f"--collective-timeout must be > 0 seconds, got {args.collective_timeout}")


def _check_resume(args, world: int, saved: dict) -> None:
    """The checkpoint must match the launch (TP degree, number of processes) and, unless allowed, the schedule."""
    ckpt = args.resume_checkpoint
    layout = {"tp": (saved.get("tp"), args.tp), "world size": (saved.get("world_size"), world)}
    wrong = {k: v for k, v in layout.items() if v[0] is not None and v[0] != v[1]}
    if wrong:
        detail = ", ".join(f"{k} {a} in the checkpoint, {b} now" for k, (a, b) in wrong.items())
        raise ValueError(f"cannot resume {ckpt}: {detail}; relaunch with the checkpoint's layout (--tp "
                         f"{saved.get('tp')} on {saved.get('world_size')} processes).")
    before, now = saved.get("schedule") or {}, schedule_of(args)
    changed = {k: (before[k], now[k]) for k in now if k in before and before[k] != now[k]}
    if changed:
        detail = ", ".join(f"--{k.replace('_', '-')} {a} -> {b}" for k, (a, b) in changed.items())
        if not args.allow_schedule_change:
            raise ValueError(f"resuming {ckpt} with other schedule flags than it was trained with ({detail}) would "
                             "change the learning-rate schedule; pass the checkpoint's values, or "
                             "--allow-schedule-change to continue with the new ones.")
        print(f"adlr_hf.train: resuming with a changed schedule ({detail}) as --allow-schedule-change asks",
              file=sys.stderr, flush=True)


def _check_activation_checkpointing(config, task) -> None:
    model_class = task.model_class(config)
    if model_class is not None and not model_class.supports_gradient_checkpointing:
        raise ValueError(f"--activation-checkpointing: {model_class.__name__} (task {task.name}) cannot recompute its "
                         "layers; drop the "
                         "flag (it is available for models whose layers support gradient checkpointing, such as "
                         "the transformer families).")


def load_model_config(model: str, overrides: list[str]):
    """(config, folder to load weights from or None) for `--model` (a variant, a config.json or a model folder)
    with `--set` overrides applied."""
    from transformers import AutoConfig

    from .registry import get_config
    from .training.args import parse_overrides
    from .training.checkpoint import unreadable_reason

    values = parse_overrides(overrides)
    path = Path(model)
    try:
        if path.is_file() and path.suffix == ".json":
            try:
                raw = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError) as err:
                raise ValueError(f"--model {model!r} is not valid JSON ({err}); fix the file") from None
            model_type = raw.pop("model_type", None) if isinstance(raw, dict) else None
            if model_type is None:
                raise ValueError(f"--model {model!r} has no model_type; it is not a config.json")
            return AutoConfig.for_model(model_type, **{**raw, **values}), None
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"--model folder {model!r} has no config.json; pass a saved model folder")
            config = AutoConfig.from_pretrained(path, **values)
            weights = sorted(path.glob("*.safetensors"))
            for file in weights:
                problem = unreadable_reason(file)
                if problem:
                    raise ValueError(f"--model folder {model!r}: {file.name}: {problem}; re-save or re-copy the "
                                     "model")
            has_weights = bool(weights) or any(path.glob("*.bin"))
            return config, (path if has_weights else None)
        return get_config(model, **values), None
    except (TypeError, KeyError, OSError) as err:  # a wrong-typed or missing config value, an unreadable file
        raise ValueError(f"--model {model!r} does not give a usable config ({type(err).__name__}: {err}); fix its "
                         "config.json or the --set values") from None


def run(args) -> dict:
    from .data.sampling import make_dp_dataloader, steps_per_epoch
    from .parallel import apply_tp_plan, init_parallel, model_parallel_seed
    from .parallel.state import barrier
    from .training.checkpoint import write_run_config
    from .training.engines import engine_class
    from .training.reporting import machine_name
    from .training.schedule import build_scheduler
    from .training.trainer import Trainer, TrainPlan, seeded_collate

    ds_config, config, init_from, task = validate(args)
    engine = engine_class(args.engine).from_args(args, ds_config)
    engine.init_distributed()
    state = init_parallel(args.tp, timeout=args.collective_timeout)
    is_main = state.rank == 0
    run_dir = Path(args.out)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier()

    data = task.build(args, config, init_from, run_dir, is_main)
    micro_per_epoch = steps_per_epoch(len(data.train), args.micro_batch_size, state.dp_size)
    if micro_per_epoch == 0:
        raise ValueError(f"{len(data.train)} training samples are too few for micro batch {args.micro_batch_size} × "
                         f"{state.dp_size} data-parallel ranks; add data or lower them.")
    total_steps = args.steps or max(1, math.ceil((args.epochs or 1.0) * micro_per_epoch / args.grad_accum))

    # TP-invariant initialisation: the full model is built from the seed on every rank, then sharded.
    torch.manual_seed(args.seed)
    model = task.build_model(data, init_from)
    n_params = sum(p.numel() for p in model.parameters())
    if is_main:  # the run describes itself: its resolved config and processor, before any checkpoint
        write_run_config(run_dir, model, data)
    if state.tp_size > 1:
        apply_tp_plan(model, state.tp_group)
    model_parallel_seed(args.seed, state.tp_rank)
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()

    optimizer = task.build_optimizer(model, args)
    scheduler = build_scheduler(optimizer, args.lr_schedule, total_steps, args.warmup_steps, args.lr, args.min_lr,
                                getattr(args, "poly_exp", 1.0))
    engine.setup(model, optimizer, scheduler, state)

    def train_loader(start_step=0):
        return make_dp_dataloader(data.train, args.micro_batch_size, state.dp_rank, state.dp_size, args.seed,
                                  data.collate, start_step)

    eval_loader = None
    if data.eval is not None:
        eval_loader = make_dp_dataloader(data.eval, args.micro_batch_size, state.dp_rank, state.dp_size, args.seed,
                                         data.eval_collate or data.collate, shuffle=False,
                                         drop_last=len(data.eval) >= state.dp_size * args.micro_batch_size)
    plan = TrainPlan(total_steps=total_steps, grad_accum=args.grad_accum, micro_batch_size=args.micro_batch_size,
                     units_per_sample=data.units_per_sample, unit=task.unit, seq_len=data.seq_len,
                     save_every=args.save_every, save_total_limit=args.save_total_limit,
                     eval_every=args.eval_every, log_every=args.log_every,
                     progress=not args.no_progress, reports_perplexity=task.reports_perplexity,
                     meta={"model": args.model, "overrides": args.overrides, "task": task.name, "data": data.data,
                           "seed": args.seed, "activation_checkpointing": args.activation_checkpointing,
                           "schedule": schedule_of(args), **engine.describe()})
    generators = {}
    if (generator := seeded_collate(data.collate)) is not None:
        generators["collate"] = generator
    trainer = Trainer(engine, state, plan, train_loader(), eval_loader, run_dir, metric=data.metric,
                      generators=generators)
    if getattr(args, "resume_checkpoint", None) is not None:
        trainer.resume_from(args.resume_checkpoint)
        trainer.train_loader = train_loader(trainer.consumed_micro_batches)
    result = trainer.train()  # ends with a checkpoint of the last step; a signal stops it with one

    # The model is exported before the final evaluation, so a failing evaluation loses nothing.
    export_dir = None
    if not args.no_export:
        export_dir = run_dir / "model"
        with engine.export_context():
            if state.dp_rank == 0:
                engine.module.save_pretrained(export_dir)
        if is_main:
            data.save_processor(export_dir)
        barrier()
    try:
        result.update(trainer.final_evaluation())
    except Exception as err:  # noqa: BLE001 - reported, never allowed to take the trained model with it
        result["final_evaluation_error"] = f"{type(err).__name__}: {err}"
        print(f"adlr_hf.train: error: the final evaluation failed ({type(err).__name__}: {err}); the trained model "
              f"is saved in {export_dir or run_dir} and its checkpoint in {run_dir / 'checkpoints'}",
              file=sys.stderr, flush=True)
    else:
        if export_dir is not None and is_main:
            data.save_processor(export_dir)  # what the final pass decided (e.g. tuned thresholds) goes in too
    info = {
        "model": args.model, "model_type": data.config.model_type, "task": task.name, "parameters": n_params,
        "tp": state.tp_size, "dp": state.dp_size, "world_size": state.world_size, **engine.describe(),
        "data": data.data, "seq_len": data.seq_len, "micro_batch_size": args.micro_batch_size,
        "grad_accum": args.grad_accum, "lr": args.lr, "seed": args.seed,
        "activation_checkpointing": args.activation_checkpointing, **data.extra_info, **result, "out": str(run_dir),
        "export": str(export_dir) if export_dir else None, "machine": machine_name(),
    }
    text = trainer.summary(info)
    if text:
        print(text, flush=True)
    return info


def main(argv=None) -> int:
    from .training.args import build_parser

    from .training.signals import TrainingStopped

    args = build_parser().parse_args(argv)
    try:
        info = run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"adlr_hf.train: error: {err}", file=sys.stderr, flush=True)
        return 2
    except TrainingStopped as stopped:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"adlr_hf.train: {stopped}. Resume with the same command plus `--resume {args.out}`.",
                  file=sys.stderr, flush=True)
        _shut_down_process_group()
        return stopped.exit_code
    except KeyboardInterrupt:  # Ctrl-C before training started (data preparation, set-up)
        print("adlr_hf.train: interrupted before the first step; nothing to resume (run the command again).",
              file=sys.stderr, flush=True)
        return 130
    _shut_down_process_group()
    return 1 if info.get("final_evaluation_error") else 0


def _shut_down_process_group() -> None:
    """Leave together and tear the group down before interpreter exit: gloo's threads otherwise can abort a rank
    ("terminate called without an active exception") after the run has finished."""
    import torch.distributed as dist

    from .parallel.state import destroy_parallel

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        deepspeed_comm = sys.modules.get("deepspeed.comm.comm")
        if deepspeed_comm is not None and getattr(deepspeed_comm, "cdb", None) is not None:
            deepspeed_comm.destroy_process_group()  # also drops DeepSpeed's cached groups
        else:
            dist.destroy_process_group()
    destroy_parallel()  # the groups died with the process group; a later run in this process makes new ones


if __name__ == "__main__":
    sys.exit(main())
