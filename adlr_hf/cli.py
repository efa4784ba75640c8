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
}


def _cmd_convert(args) -> int:
    import importlib
    import inspect
    import logging

    logging.basicConfig(level=logging.INFO, format="adlr-hf: %(levelname)s: %(message)s")
    module, function = CONVERTERS[args.kind]
    converter = getattr(importlib.import_module(module), function)
    accepted = inspect.signature(converter).parameters
    options = {"vocab_size": args.vocab_size, "num_attention_heads": args.num_attention_heads}
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adlr-hf", description="NVIDIA ADLR research models as Hugging Face models")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="print the registered model variants")
    p_list.set_defaults(func=_cmd_list)
    p_conv = sub.add_parser("convert", help="convert a foreign checkpoint into an adlr_hf model folder")
    p_conv.add_argument("kind", metavar="KIND", choices=sorted(CONVERTERS),
                        help=f"one of {', '.join(sorted(CONVERTERS))}")
    p_conv.add_argument("src", metavar="SRC", help="source checkpoint folder")
    p_conv.add_argument("out", metavar="OUT", help="output folder (written atomically)")
    p_conv.add_argument("--vocab-size", type=int, default=None,
                        help="true vocabulary size (strips Megatron's padding when no tokenizer is beside SRC)")
    p_conv.add_argument("--num-attention-heads", type=int, default=None,
                        help="attention heads, for Megatron checkpoints that saved no args")
    p_conv.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p_conv.set_defaults(func=_cmd_convert)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"adlr-hf: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
