"""The ``skelmtl`` command line: one name per command, each a module of a room.

Usage: skelmtl [-v | -q] COMMAND [OPTIONS]   (e.g. skelmtl -v data info STORE)

Subcommands are listed in :data:`COMMANDS` as ``name -> (module, help)``; the module is
imported only when its subcommand runs, so ``skelmtl --help`` never imports torch,
onnxruntime or mediapipe, and a missing extra is one line naming what to install. Each
module provides ``add_arguments(parser)`` and ``main(args) -> int``;
:func:`edge.commands.runner.run_command` runs it and turns errors and signals into the exit
status (0 success, 2 bad input, 128 + signal, 141 for a closed pipe).

``-v``/``-q`` before the command set the standard :mod:`logging` module's levels for the
whole process (``-v`` every INFO record, ``-vv`` DEBUG, ``-q`` warnings only, ``-qq``
errors only); a command's own output (results, events, tables) is printed regardless.

This module sits on top of every room (edge, trainer, calibration): it is the only place
that names them all, by module name.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from edge import __version__
from edge.commands.runner import install_hint, run_command, under_stop_handlers

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("trainer.datasets.cli", "convert published datasets to a clip store; summarise one"),
    "extract": ("edge.commands.extract", "videos -> landmarks -> clip store (MediaPipe)"),
    "train": ("trainer.train", "train a model from a YAML config"),
    "eval": ("trainer.evaluate", "score a model (checkpoint, FP32/INT8 ONNX, TensorRT engine) on a clip store"),
    "experiment": ("trainer.experiment", "run the MTL-vs-STL experiment (resumable)"),
    "accuracy": ("trainer.accuracy", "the accuracy table: our models vs the peer (resumable)"),
    "export": ("trainer.export", "checkpoint -> ONNX with metadata"),
    "calibrate": ("calibration.quantize", "ONNX -> INT8 Q/DQ ONNX from real clips"),
    "convert-landmarks": ("calibration.convert_landmarks", "MediaPipe .tflite -> ONNX front end (once); --check compares with MediaPipe"),
    "build-engine": ("calibration.engine", "Q/DQ ONNX -> TensorRT engine (on the Jetson)"),
    "selfcheck": ("calibration.selfcheck", "prove the TensorRT path on this device: engine, layer precisions, agreement with ONNX Runtime"),
    "run": ("edge.commands.run", "stream a source through a model; events as JSON lines"),
    "bench": ("edge.bench", "per-stage latency benchmark"),
    "demo": ("edge.commands.demo", "run the bundled model on bundled real clips"),
}

# The trainer's torch commands need torch 2.13, which needs Python 3.10; edge/,
# calibration/ and the dataset readers (`skelmtl data`, numpy only) run on 3.8 (JetPack
# 5). On an older Python a torch command says so in one line instead of failing
# somewhere inside its imports.
TRAINER_PYTHON = (3, 10)
TORCH_COMMANDS = frozenset({"train", "eval", "experiment", "accuracy", "export"})

_VERBOSITY = re.compile(r"-(v+|q+)|--(verbose|quiet)")


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skelmtl",
        description="Multi-task recognition of body actions and hand gestures from skeletons.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {k:<13} {h}" for k, (_, h) in COMMANDS.items())
        + "\n\nrun 'skelmtl COMMAND --help' for a command's options",
    )
    p.add_argument("--version", action="version", version=f"skelmtl {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log more (INFO; -vv: DEBUG); before the command")
    p.add_argument("-q", "--quiet", action="count", default=0,
                   help="log less (warnings only; -qq: errors only); before the command")
    p.add_argument("command", nargs="?", help="one of the commands below")
    return p


def split_verbosity(argv: Sequence[str]) -> tuple[int, list[str]]:
    """The leading ``-v``/``-q`` flags as one number (each -v +1, each -q -1), and the rest."""
    verbosity, rest = 0, list(argv)
    while rest:
        m = _VERBOSITY.fullmatch(rest[0])
        if m is None:
            break
        word = m.group(1) or m.group(2)
        sign = 1 if word[0] == "v" else -1
        verbosity += sign * (len(word) if m.group(1) else 1)
        rest.pop(0)
    return verbosity, rest


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skelmtl`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    # First thing: a stop during the imports (torch takes seconds) is a stop too.
    return under_stop_handlers("skelmtl", lambda: _main(args))


def _main(argv: list[str]) -> int:
    top = _top_parser()
    verbosity, argv = split_verbosity(argv)
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv)  # handles --help / --version
        top.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module_name, help_text = COMMANDS[name]
    if name in TORCH_COMMANDS and sys.version_info[:2] < TRAINER_PYTHON:
        print(f"skelmtl {name}: needs Python {'.'.join(map(str, TRAINER_PYTHON))} or newer "
              f"(training needs torch); this is Python {sys.version.split()[0]}",
              file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        print(f"skelmtl {name}: needs the missing module {e.name!r} "
              f"({install_hint(e.name or '')})", file=sys.stderr)
        return 2
    return run_command(name, module, rest, help_text=help_text, verbosity=verbosity)


if __name__ == "__main__":
    sys.exit(main())
