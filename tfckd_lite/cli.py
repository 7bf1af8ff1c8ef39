"""Command line: ``python -m tfckd_lite <command> ...`` (also installed as ``tfckd-lite``).

Each command lives next to the code it drives and registers itself through a
``register(subparsers)`` function that adds its parser and sets ``func`` on it; this module
only lists them, so ``--help`` stays cheap (the modules are imported when the CLI starts, but
none of them loads data or models at import time).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name of the module that provides register(subparsers), in the order shown by --help
COMMAND_MODULES = [
    "tfckd_lite.models.cli",
    "tfckd_lite.data.cli",
    "tfckd_lite.train",
    "tfckd_lite.pretrained",
    "tfckd_lite.experiment",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfckd_lite",
                                     description="I2S-TFCKD on DPDCRN: data, training, "
                                                 "distillation and evaluation.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
