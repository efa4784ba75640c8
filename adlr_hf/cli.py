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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adlr-hf", description="NVIDIA ADLR research models as Hugging Face models")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="print the registered model variants")
    p_list.set_defaults(func=_cmd_list)
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
