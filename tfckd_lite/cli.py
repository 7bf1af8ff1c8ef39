"""Command line: ``python -m tfckd_lite <command> ...`` (also installed as ``tfckd-lite``).

Each command lives next to the code it drives and registers itself through a
``register(subparsers)`` function that adds its parser and sets ``func`` on it; this module
only lists them, so ``--help`` stays cheap (the modules are imported when the CLI starts, but
none of them loads data or models at import time).

Errors. A *library error* is printed as one line ``error: <message>`` on stderr with exit
status 2 (the status argparse gives a malformed command line), without a traceback; the
top-level flag ``--debug`` (``python -m tfckd_lite --debug train ...``) lets it propagate with
its traceback instead. What counts as a library error (:func:`library_error_message`):

1. an exception of a class the library defines: :class:`tfckd_lite.audio.AudioError` (missing,
   unreadable, empty or corrupt audio), ``CheckpointError`` (a refused checkpoint),
   ``CorpusError`` (a missing or malformed corpus), ``FolderBusyError`` (a run folder another
   process works in), ``UnscorableError``, ``ExperimentMismatchError`` and :class:`UsageError`
   (a flag combination the parser cannot see is wrong). The library raises these only to tell
   the user what is wrong with their input;
2. an ``OSError`` (a missing, unreadable or unwritable path, a full disk): the machine, not
   the code;
3. a ``ValueError`` or ``KeyError`` raised by a ``raise`` statement in the library's own code:
   how the library refuses bad input in words (an unknown preset or model, a config value out
   of range, a resume with another config, a dataset manifest that is not ours, a model fed the
   wrong number of channels).

Anything else keeps its traceback, because it is a bug to report: a ``TypeError``,
``AttributeError`` or ``IndexError``; a ``ValueError`` raised inside numpy or torch (the
library passed them something it should have checked); a ``KeyError`` from a failed lookup or
a ``ValueError`` from a failed unpacking in the library (no ``raise`` statement: nobody
decided to refuse anything there). Messages of several lines (e.g. the unpaired files of a
corpus) keep their lines.
"""

from __future__ import annotations

import argparse
import dis
import importlib
import sys
from pathlib import Path

# name of the module that provides register(subparsers), in the order shown by --help
COMMAND_MODULES = [
    "tfckd_lite.models.cli",
    "tfckd_lite.data.cli",
    "tfckd_lite.train.cli",
    "tfckd_lite.recipes",
    "tfckd_lite.pretrained",
    "tfckd_lite.channels",
    "tfckd_lite.experiment",
    "tfckd_lite.enhance",
]

_PACKAGE = Path(__file__).resolve().parent
EXIT_LIBRARY_ERROR = 2        # argparse's status for a usage error; ours follow it


class UsageError(ValueError):
    """A command-line mistake the parser cannot see (e.g. flags that exclude each other).

    Notebook: README.md (section "The library": the command line and its errors)
    """


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfckd_lite",
                                     description="I2S-TFCKD on DPDCRN: data, training, "
                                                 "distillation and evaluation.")
    parser.add_argument("--debug", action="store_true",
                        help="show an error's traceback instead of a one-line message")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv                   # a command may parse its flags again (train --recipe)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.debug:
        return int(args.func(args) or 0)
    try:
        result = args.func(args)
    except Exception as error:
        message = library_error_message(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_LIBRARY_ERROR
    return int(result or 0)


def library_error_message(error: BaseException) -> str | None:
    """The message to print for a library error, or ``None`` for an error that is a bug.

    Notebook: README.md (section "The library": the command line and its errors)

    The three kinds of library error, and why the rest keep their traceback, are listed in
    this module's docstring.
    """
    if type(error).__module__.split(".")[0] == __package__ or isinstance(error, OSError):
        return _text(error)
    if isinstance(error, (ValueError, KeyError)) and _raised_on_purpose(error):
        return _text(error)
    return None


def _text(error: BaseException) -> str:
    # str(KeyError("msg")) is "'msg'" (the key's repr); the library's KeyErrors carry sentences
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        return error.args[0]
    return str(error) or type(error).__name__


def _raised_on_purpose(error: BaseException) -> bool:
    """Whether ``error`` comes from a ``raise`` statement in this package's source."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next                                   # the innermost frame: where it began
    code = tb.tb_frame.f_code
    try:
        inside = Path(code.co_filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):                          # e.g. "<string>"
        return False
    if not inside:
        return False
    for instruction in dis.get_instructions(code):
        if instruction.offset == tb.tb_lasti:
            return instruction.opname == "RAISE_VARARGS"
    return False


if __name__ == "__main__":
    sys.exit(main())
