"""The `adlr-hf` command."""

from __future__ import annotations

import argparse
import sys


def _cmd_list(args) -> int:
    from .registry import list_models

    rows = list_models()
    name_width = max([len("name"), *(len(row["name"]) for row in rows)])
    family_width = max([len("family"), *(len(row["family"]) for row in rows)])
    print(f"{'name':<{name_width}} {'family':<{family_width}} {'parameters':>14}  description")
    for row in rows:
        print(f"{row['name']:<{name_width}} {row['family']:<{family_width}} {row['parameters']:>14,}  "
              f"{row['description']}")
    return 0


def _cmd_convert(args) -> int:
    import inspect
    import logging

    from .registry import converters

    logging.basicConfig(level=logging.INFO, format="adlr-hf: %(levelname)s: %(message)s")
    converter = converters()[args.kind]
    function = converter.load()
    accepted = inspect.signature(function).parameters
    kwargs = {"overwrite": args.overwrite}
    for option in _all_converter_options():
        value = getattr(args, option.dest, None)
        if value is None:
            continue
        if option.dest not in accepted:
            raise ValueError(f"{option.flag} does not apply to kind {args.kind!r}; drop it.")
        kwargs[option.dest] = value
    out = function(args.src, args.out, **kwargs)
    print(f"converted {args.src} -> {out}")
    return 0


def _all_converter_options():
    from .registry import converters

    return [option for converter in converters().values() for option in converter.options]


def _cmd_evaluate(args) -> int:
    """`adlr-hf evaluate`: the evaluation a task offers under `--task` (adlr_hf.evaluation); under torchrun every rank
    evaluates (TP/DP) and only rank 0 prints and writes."""
    import json
    import os

    from .tasks import evaluations_for, find_evaluation

    record_evaluation = None
    if args.update_card:  # checked first, so a missing card module fails before any work
        try:
            from .hub.record import record_evaluation
        except ImportError as err:
            raise ValueError(f"--update-card needs adlr_hf.hub.record.record_evaluation, which is missing ({err}); "
                             "drop --update-card") from None
    if args.json is not None:
        out = os.path.abspath(os.path.expanduser(args.json))
        if os.path.isdir(out):
            raise ValueError(f"--json {args.json} is a directory; pass a file path such as {out}/eval.json")
        if not os.path.isdir(os.path.dirname(out)):
            raise FileNotFoundError(f"--json {args.json}: folder {os.path.dirname(out)} does not exist; create it")
    task, evaluation = find_evaluation(args.task)
    config = _model_config(args.model_dir)
    if config is not None and not evaluation.fits(task, config):
        fitting = evaluations_for(config)
        raise ValueError(f"--task {args.task} evaluates {task.auto_class_name} models; {args.model_dir} holds a "
                         f"{config.model_type!r} model. Evaluations that fit it: {', '.join(fitting) or 'none'}.")
    result = evaluation.run(args)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    figures = result.pop("figures", None)  # PNG bytes: written beside the card with --update-card, not printed
    text = json.dumps(result, indent=2)
    if args.json is not None:
        from .atomic import write_text_atomically

        write_text_atomically(out, text + "\n")
    if record_evaluation is not None:
        record_evaluation(result["model"], {**result, "figures": figures})
    print(text)
    return 0


def _model_config(model_dir):
    """The config of a model folder (or a run folder's model/), or None when there is none to read (the evaluation
    then reports the missing folder itself)."""
    from pathlib import Path

    from transformers import AutoConfig

    path = Path(model_dir).expanduser()
    folder = next((p for p in (path, path / "model") if (p / "config.json").is_file()), None)
    if folder is None:
        return None
    try:
        return AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot read {folder}/config.json as a transformers config: {err}") from None


def _cmd_train(args) -> int:
    argv = args.train_argv
    if args.nproc is not None:
        return _launch(args, argv)
    from .train import main as train_main

    return train_main(argv)


def _launch(args, argv: list[str]) -> int:
    """Multi-process runs go through DeepSpeed's own launcher (it also reads --hostfile for many nodes), the one
    installed beside this interpreter. Flags are checked here first; each rank gets an equal share of the cores,
    as torchrun gives it."""
    import os
    import sys
    from pathlib import Path

    from .checks import check_int

    check_int("--nproc", args.nproc, 1)
    from .train import validate
    from .training.args import build_parser

    # Every check that needs no process group runs here, before any rank starts (with the ranks' world size).
    validate(build_parser().parse_args(argv), world=args.nproc)
    launcher = Path(sys.executable).with_name("deepspeed")
    if not launcher.is_file():
        raise FileNotFoundError(f"the `deepspeed` launcher is not beside {sys.executable}; install deepspeed into "
                                "this environment.")
    threads = max(1, (os.cpu_count() or 1) // args.nproc)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    command = [str(launcher), "--num_gpus", str(args.nproc), "--module", "adlr_hf.train", *argv]
    print(f"exec: OMP_NUM_THREADS={env['OMP_NUM_THREADS']} " + " ".join(command), flush=True)
    os.execve(str(launcher), command, env)
    return 0  # not reached


def _cmd_publish(args) -> int:
    """`adlr-hf publish`: a Hub-layout folder with a model card (adlr_hf.hub); --push uploads it afterwards."""
    import logging

    from .hub.publish import PushUnavailable, publish, push_to_hub

    logging.basicConfig(level=logging.INFO, format="adlr-hf: %(levelname)s: %(message)s")
    out = publish(args.source, args.out_dir, repo_id=args.repo_id, max_shard_size=args.max_shard_size,
                  license=args.license, force=args.force)
    print(f"published {args.source} -> {out}")
    if args.push:
        try:
            url = push_to_hub(out, args.repo_id)
        except PushUnavailable as err:
            print(f"adlr-hf: error: {err}", file=sys.stderr)
            return 2
        print(f"pushed {out} -> {url}")
    return 0


def _cmd_propagate(args) -> int:
    """`adlr-hf propagate`: extra segmentation pairs by SDC-Net video propagation (adlr_hf.data.video_propagation)."""
    from .data.video_propagation import propagate_dataset

    out = propagate_dataset(args.sdc_model, args.data, args.out, steps=args.steps, mode=args.mode,
                            overwrite=args.overwrite, device=args.device, layout=args.layout, split=args.split)
    print(f"propagated {args.data} -> {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adlr-hf", description="NVIDIA ADLR research models as Hugging Face models")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="print the registered model variants")
    p_list.set_defaults(func=_cmd_list)
    from .training.args import add_training_arguments

    p_train = add_training_arguments(sub.add_parser(
        "train", help="train a model (same flags as `python -m adlr_hf.train`; --nproc N starts N local ranks)"))
    p_train.set_defaults(func=_cmd_train)
    from .registry import converters
    from .tasks import all_tasks
    from .training.args import add_option_groups

    kinds = converters()
    p_conv = sub.add_parser("convert", help="convert a foreign checkpoint into an adlr_hf model folder")
    p_conv.add_argument("kind", metavar="KIND", choices=sorted(kinds),
                        help="; ".join(f"{k}: {c.help}" for k, c in sorted(kinds.items())))
    p_conv.add_argument("src", metavar="SRC", help="source checkpoint folder")
    p_conv.add_argument("out", metavar="OUT", help="output folder (written atomically)")
    p_conv.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    add_option_groups(p_conv, [(f"kind {c.kind}", c.options) for c in kinds.values()])
    p_conv.set_defaults(func=_cmd_convert)
    evaluations = [(t, e) for t in all_tasks() for e in t.evaluations]
    p_eval = sub.add_parser("evaluate", help="evaluate a model folder on a task's protocol (" +
                            ", ".join(e.name for _, e in evaluations) + ")")
    p_eval.add_argument("model_dir", metavar="MODEL_DIR", help="saved model folder (config.json, weights, processor)")
    p_eval.add_argument("--task", required=True, metavar="TASK",
                        help="; ".join(f"{e.name} ({t.name} models)" for t, e in evaluations))
    p_eval.add_argument("--data", required=True, metavar="PATH",
                        help="; ".join(f"{e.name}: {e.data_help}" for _, e in evaluations))
    p_eval.add_argument("--split", default="test",
                        help="tasks that read a split: the split to score (default test; val/validation/dev too)")
    p_eval.add_argument("--seq-len", type=int, default=None,
                        help="text tasks: window or example length (default: the model's max positions)")
    p_eval.add_argument("--batch-size", type=int, default=8, help="windows or examples per forward (default 8)")
    p_eval.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (run under torchrun)")
    p_eval.add_argument("--json", default=None, metavar="OUT", help="write {task, model, data, settings, metrics} here")
    p_eval.add_argument("--update-card", action="store_true",
                        help="record the result in the model card (README.md), with any figures the evaluation draws "
                             "(written beside it)")
    add_option_groups(p_eval, [(f"evaluation {e.name}", e.options) for _, e in evaluations])
    p_eval.set_defaults(func=_cmd_evaluate)
    p_pub = sub.add_parser("publish", help="write a Hub-layout model folder with a model card (optionally push it)")
    p_pub.add_argument("source", metavar="RUN_OR_CHECKPOINT",
                       help="a run folder (adlr-hf train --out), a model folder, or RUN/checkpoints/step_N")
    p_pub.add_argument("out_dir", metavar="OUT_DIR", help="output folder (written atomically)")
    p_pub.add_argument("--repo-id", default=None, metavar="ORG/NAME", help="Hub repository (card snippets, --push)")
    p_pub.add_argument("--max-shard-size", default="5GB", help="shard weights above this size (default 5GB)")
    p_pub.add_argument("--license", default="apache-2.0", help="license id for the card (default apache-2.0)")
    p_pub.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR that is not a publish")
    p_pub.add_argument("--push", action="store_true", help="upload OUT_DIR to --repo-id (needs a token and network)")
    p_pub.set_defaults(func=_cmd_publish)
    p_prop = sub.add_parser("propagate", help="synthesise segmentation training pairs by propagating labels along an "
                                              "SDC-Net reconstruction model's motion (arXiv 1812.01593)")
    p_prop.add_argument("sdc_model", metavar="SDC_MODEL", help="an SDCNet2DRecon model folder")
    p_prop.add_argument("--data", required=True, metavar="DIR",
                        help="folder layout: images/<stem>.*, labels/<stem>.png and sequences/<stem>/ frames around "
                             "each labelled frame (one named like the image); or a Cityscapes root with leftImg8bit/, "
                             "gtFine/ (labelIds) and leftImg8bit_sequence/")
    p_prop.add_argument("--layout", default="auto", choices=["auto", "folder", "cityscapes"],
                        help="the --data layout (default auto: cityscapes when DIR has leftImg8bit/, else folder)")
    p_prop.add_argument("--split", default="train",
                        help="cityscapes layout: the split whose labelled frames are propagated (default train)")
    p_prop.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: images/ and labels/ (<stem>_fwd<k>, <stem>_bwd<k>), written atomically")
    p_prop.add_argument("--steps", type=int, default=1, metavar="K", help="propagate K frames each way (default 1)")
    p_prop.add_argument("--mode", default="jp", choices=["jp", "lp"],
                        help="jp: propagated labels with synthesised images (default); lp: with the real frames")
    p_prop.add_argument("--device", default=None, help="where the model runs (default: cuda if available, else cpu)")
    p_prop.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p_prop.set_defaults(func=_cmd_propagate)
    from .planning.command import add_plan_arguments, run as run_plan

    p_plan = add_plan_arguments(sub.add_parser(
        "plan", help="plan a training layout without running it: memory, FLOPs and communication per rank, and the "
                     "launch files (adlr_hf.planning)"))
    p_plan.set_defaults(func=run_plan)
    return parser


def main(argv=None) -> int:
    from .registry import plugin_errors

    if plugin_errors():
        print(f"adlr-hf: error: {plugin_errors()[0]}", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "train":
        # The training entry point parses its own flags; forward them unchanged (minus --nproc).
        rest = argv[argv.index("train") + 1:]
        args.train_argv = _without_option(rest, "--nproc")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"adlr-hf: error: {err}", file=sys.stderr)
        return 2


def _without_option(argv: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == flag:
            skip = True
        elif not item.startswith(flag + "="):
            out.append(item)
    return out


if __name__ == "__main__":
    sys.exit(main())
