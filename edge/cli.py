"""The ``skelmtl`` command line.

Usage: skelmtl data info STORE

Subcommands are listed in :data:`COMMANDS` as ``name -> (module, help)``; the module is
imported only when its subcommand runs, so ``skelmtl --help`` never imports torch,
onnxruntime or mediapipe. Each module provides ``add_arguments(parser)`` and
``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edge import __version__
from edge.errors import SkelmtlError

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("trainer.datasets.cli", "convert published datasets to a clip store; summarise one"),
    "extract": ("edge.extract", "videos -> landmarks -> clip store (MediaPipe)"),
    "train": ("trainer.train", "train a model from a YAML config"),
    "eval": ("trainer.evaluate", "evaluate a checkpoint on a clip store"),
    "experiment": ("trainer.experiment", "run the MTL-vs-STL experiment (resumable)"),
    "export": ("trainer.export", "checkpoint -> ONNX with metadata"),
    "calibrate": ("calibration.quantize", "ONNX -> INT8 Q/DQ ONNX from real clips"),
    "build-engine": ("calibration.engine", "Q/DQ ONNX -> TensorRT engine (on the Jetson)"),
    "run": ("edge.run", "stream a source through a model; events as JSON lines"),
    "bench": ("edge.bench", "per-stage latency benchmark"),
    "demo": ("edge.demo", "run the bundled model on bundled real clips"),
}


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skelmtl",
        description="Multi-task recognition of body actions and hand gestures from skeletons.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {k:<13} {h}" for k, (_, h) in COMMANDS.items())
        + "\n\nrun 'skelmtl COMMAND --help' for a command's options",
    )
    p.add_argument("--version", action="version", version=f"skelmtl {__version__}")
    p.add_argument("command", nargs="?", help="one of the commands below")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skelmtl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv)  # handles --help / --version
        top.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        print(f"skelmtl {name}: needs the missing module {e.name!r} "
              f"({_install_hint(e.name or '')})", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"skelmtl {name}", description=help_text,
                                     epilog=(module.__doc__ or "").strip().splitlines()[0]
                                     if module.__doc__ else None)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.main(args) or 0)
    except SkelmtlError as e:
        print(f"skelmtl {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"skelmtl {name}: interrupted", file=sys.stderr)
        return 130


def _install_hint(missing: str) -> str:
    extras = {"torch": "train", "onnx": "train", "onnxruntime": "edge", "mediapipe": "edge",
              "cv2": "edge", "tensorrt": "jetson", "pycuda": "jetson", "zmq": "publish"}
    root = missing.split(".")[0]
    if root in extras:
        return f"pip install 'skelmtl[{extras[root]}]'"
    return "this part of skelmtl is not installed or not written yet"


if __name__ == "__main__":
    sys.exit(main())
