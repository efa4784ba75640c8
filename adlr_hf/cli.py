"""The `adlr-hf` command."""

from __future__ import annotations

import argparse
import sys


def _cmd_list(args) -> int:
    from .registry import list_models

    rows = list_models()
    print(f"{'name':<24} {'family':<16} {'parameters':>14}  description")
    for row in rows:
        print(f"{row['name']:<24} {row['family']:<16} {row['parameters']:>14,}  {row['description']}")
    return 0


# `adlr-hf convert KIND`: KIND -> (module, function), imported only when that kind runs. Families add their kinds here.
CONVERTERS: dict[str, tuple[str, str]] = {
    "gpt2-hf": ("adlr_hf.models.megatron_gpt.convert_megatron_gpt", "convert_gpt2_hf"),
    "megatron-gpt": ("adlr_hf.models.megatron_gpt.convert_megatron_gpt", "convert_megatron_gpt"),
    "partialconv": ("adlr_hf.models.pd_resnet.convert_pd_resnet", "convert_partialconv"),
    "torchvision": ("adlr_hf.models.pd_resnet.convert_pd_resnet", "convert_torchvision"),
    "bert-hf": ("adlr_hf.models.megatron_bert.convert_megatron_bert", "convert_bert_hf"),
    "megatron-bert": ("adlr_hf.models.megatron_bert.convert_megatron_bert", "convert_megatron_bert"),
}


def _cmd_convert(args) -> int:
    import importlib
    import inspect
    import logging

    logging.basicConfig(level=logging.INFO, format="adlr-hf: %(levelname)s: %(message)s")
    module, function = CONVERTERS[args.kind]
    converter = getattr(importlib.import_module(module), function)
    accepted = inspect.signature(converter).parameters
    options = {"vocab_size": args.vocab_size, "num_attention_heads": args.num_attention_heads, "arch": args.arch,
               "padding_mode": args.padding_mode}
    kwargs = {"overwrite": args.overwrite}
    for name, value in options.items():
        if value is None:
            continue
        if name not in accepted:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to kind {args.kind!r}; drop it.")
        kwargs[name] = value
    out = converter(args.src, args.out, **kwargs)
    print(f"converted {args.src} -> {out}")
    return 0


def _cmd_evaluate(args) -> int:
    """`adlr-hf evaluate`: zero-shot WikiText perplexity / LAMBADA accuracy (adlr_hf.evaluation); under torchrun every
    rank evaluates (TP/DP) and only rank 0 prints and writes."""
    import json
    import os

    record_evaluation = None
    if args.update_card:  # checked first, so a missing card module fails before any work
        try:
            from .hub.card import record_evaluation
        except ImportError as err:
            raise ValueError(f"--update-card needs adlr_hf.hub.card.record_evaluation, which is missing ({err}); "
                             "drop --update-card") from None
    if args.json is not None:
        out = os.path.abspath(os.path.expanduser(args.json))
        if os.path.isdir(out):
            raise ValueError(f"--json {args.json} is a directory; pass a file path such as {out}/eval.json")
        if not os.path.isdir(os.path.dirname(out)):
            raise FileNotFoundError(f"--json {args.json}: folder {os.path.dirname(out)} does not exist; create it")
    from .evaluation import IMAGE_TASK, evaluate_image_model_dir, evaluate_model_dir

    from .evaluation import EMOTION_TASKS, evaluate_emotion_model_dir

    if args.task in EMOTION_TASKS:
        result = evaluate_emotion_model_dir(args.model_dir, args.task, args.data, split=args.split,
                                            tune_thresholds_on=args.tune_thresholds_on, batch_size=args.batch_size,
                                            max_length=args.seq_len, tp=args.tp)
    elif args.task == IMAGE_TASK:
        result = evaluate_image_model_dir(args.model_dir, args.data, split=args.split, batch_size=args.batch_size,
                                          tp=args.tp)
    else:
        result = evaluate_model_dir(args.model_dir, args.task, args.data, seq_len=args.seq_len, stride=args.stride,
                                    batch_size=args.batch_size, tp=args.tp)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    text = json.dumps(result, indent=2)
    if args.json is not None:
        tmp = f"{out}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, out)
    if record_evaluation is not None:
        record_evaluation(result["model"], result)
    print(text)
    return 0


def _cmd_train(args) -> int:
    argv = args.train_argv
    if args.nproc:
        # Multi-process runs go through DeepSpeed's own launcher (it also reads --hostfile for many nodes).
        import os
        import shutil

        launcher = shutil.which("deepspeed")
        if launcher is None:
            raise FileNotFoundError("the `deepspeed` launcher is not on PATH; activate the environment that "
                                    "installed adlr_hf.")
        command = [launcher, "--num_gpus", str(args.nproc), "--module", "adlr_hf.train", *argv]
        print("exec:", " ".join(command), flush=True)
        os.execv(launcher, command)
    from .train import main as train_main

    return train_main(argv)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adlr-hf", description="NVIDIA ADLR research models as Hugging Face models")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="print the registered model variants")
    p_list.set_defaults(func=_cmd_list)
    from .training.args import add_training_arguments

    p_train = add_training_arguments(sub.add_parser(
        "train", help="train a model (same flags as `python -m adlr_hf.train`; --nproc N starts N local ranks)"))
    p_train.set_defaults(func=_cmd_train)
    p_conv = sub.add_parser("convert", help="convert a foreign checkpoint into an adlr_hf model folder")
    p_conv.add_argument("kind", metavar="KIND", choices=sorted(CONVERTERS),
                        help=f"one of {', '.join(sorted(CONVERTERS))}")
    p_conv.add_argument("src", metavar="SRC", help="source checkpoint folder")
    p_conv.add_argument("out", metavar="OUT", help="output folder (written atomically)")
    p_conv.add_argument("--vocab-size", type=int, default=None,
                        help="true vocabulary size (strips Megatron's padding when no tokenizer is beside SRC)")
    p_conv.add_argument("--num-attention-heads", type=int, default=None,
                        help="attention heads, for Megatron checkpoints that saved no args")
    p_conv.add_argument("--arch", default=None, help="image models: resnet18..152 / vgg11..19 (inferred if omitted)")
    p_conv.add_argument("--padding-mode", default=None, choices=["partial", "zeros", "reflect", "replicate"],
                        help="image models: padding of the converted model (default: from the source kind)")
    p_conv.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p_conv.set_defaults(func=_cmd_convert)
    p_eval = sub.add_parser("evaluate", help="zero-shot WikiText perplexity or LAMBADA accuracy of a model folder, "
                                             "or top-1/top-5 accuracy of an image classifier")
    p_eval.add_argument("model_dir", metavar="MODEL_DIR", help="saved model folder (config.json, weights, tokenizer)")
    p_eval.add_argument("--task", required=True, metavar="TASK",
                        help="wikitext103, wikitext2, lambada, image-classification, goemotions or semeval-ec")
    p_eval.add_argument("--data", required=True, metavar="PATH",
                        help="wiki.test.tokens (or .raw) for wikitext*, lambada_test.jsonl for lambada, an image "
                             "folder (<split>/<class>/<image>) for image-classification, the GoEmotions folder or the "
                             "SemEval-2018 E-c folder/file for goemotions / semeval-ec")
    p_eval.add_argument("--split", default="test",
                        help="image-classification, goemotions, semeval-ec: the split to score (default test; "
                             "val/validation/dev too)")
    p_eval.add_argument("--seq-len", type=int, default=None, help="window length (default: the model's max positions)")
    p_eval.add_argument("--tune-thresholds-on", default=None, metavar="SPLIT",
                        help="goemotions / semeval-ec: tune per-label thresholds on this split (e.g. dev) instead of "
                             "using the model's config.thresholds")
    p_eval.add_argument("--stride", type=int, default=None,
                        help="tokens scored per window after the first (Megatron's --overlapping-eval; "
                             "default 32, or the window length when that is shorter)")
    p_eval.add_argument("--batch-size", type=int, default=8, help="windows or examples per forward (default 8)")
    p_eval.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (run under torchrun)")
    p_eval.add_argument("--json", default=None, metavar="OUT", help="write {task, model, data, settings, metrics} here")
    p_eval.add_argument("--update-card", action="store_true", help="record the result in the model card (README.md)")
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
    return parser


def main(argv=None) -> int:
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
