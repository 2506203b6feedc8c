"""The ``skelmtl`` command line.

Usage: skelmtl data info STORE

Exit status: 0 on success; 2 for bad input (a :class:`edge.errors.SkelmtlError`, or a file
that cannot be read or written), printed as one line without a traceback; 130 after
SIGINT (Ctrl-C) and 143 after SIGTERM (``docker stop``, systemd), ``128 + signal`` as
shells do; 141 when the reader of the output went away (``skelmtl ... | head``), quietly.

Subcommands are listed in :data:`COMMANDS` as ``name -> (module, help)``; the module is
imported only when its subcommand runs, so ``skelmtl --help`` never imports torch,
onnxruntime or mediapipe. Each module provides ``add_arguments(parser)`` and
``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from edge import __version__
from edge.errors import Interrupted, SkelmtlError, signal_name

# Signals that stop a command the way Ctrl-C does (SIGINT keeps Python's own handler).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("trainer.datasets.cli", "convert published datasets to a clip store; summarise one"),
    "extract": ("edge.extract", "videos -> landmarks -> clip store (MediaPipe)"),
    "train": ("trainer.train", "train a model from a YAML config"),
    "eval": ("trainer.evaluate", "score a model (checkpoint, FP32/INT8 ONNX, TensorRT engine) on a clip store"),
    "experiment": ("trainer.experiment", "run the MTL-vs-STL experiment (resumable)"),
    "accuracy": ("trainer.accuracy", "the accuracy table: our models vs the peer (resumable)"),
    "export": ("trainer.export", "checkpoint -> ONNX with metadata"),
    "calibrate": ("calibration.quantize", "ONNX -> INT8 Q/DQ ONNX from real clips"),
    "convert-landmarks": ("calibration.convert_landmarks", "MediaPipe .tflite -> ONNX front end (once); --check compares with MediaPipe"),
    "build-engine": ("calibration.engine", "Q/DQ ONNX -> TensorRT engine (on the Jetson)"),
    "selfcheck": ("calibration.selfcheck", "prove the TensorRT path on this device: engine, layer precisions, agreement with ONNX Runtime"),
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
    # First thing: a stop during the imports (torch takes seconds) is a stop too.
    previous = install_stop_handlers()
    try:
        return _main(argv)
    except KeyboardInterrupt as e:  # before a command ran
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"skelmtl: interrupted ({signal_name(signum)})", file=sys.stderr)
        return 128 + int(signum)
    finally:
        restore_handlers(previous)


def _main(argv: list[str]) -> int:
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
    if not logging.getLogger().handlers:
        # New code logs through the logging module; a command shows its warnings.
        logging.basicConfig(level=logging.WARNING, format=f"skelmtl {name}: %(message)s")
    try:
        return int(module.main(args) or 0)
    except SkelmtlError as e:
        print(f"skelmtl {name}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"skelmtl {name}: interrupted ({signal_name(signum)})", file=sys.stderr)
        return 128 + int(signum)
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as e:
        if e.errno == errno.EPIPE:
            return _broken_pipe()
        print(f"skelmtl {name}: error: {_one_line(os_error_message(e))}", file=sys.stderr)
        return 2
    finally:
        _flush_stdout()


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install_stop_handlers() -> dict[int, object]:
    """Make SIGTERM/SIGHUP raise :class:`edge.errors.Interrupted`; returns the old handlers.

    Without a handler, SIGTERM kills Python at once (no ``finally``, no end events, temp
    files left), and as PID 1 in a container it is ignored altogether.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, object] = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, _raise_interrupted)
    return previous


def restore_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def os_error_message(e: OSError) -> str:
    """``FILE: reason`` for an OSError (a full disk, a read-only or missing folder, ...)."""
    why = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
           errno.EROFS: "read-only file system"}.get(e.errno or 0) or e.strerror or str(e)
    name = e.filename if e.filename is not None else ""
    return f"{os.fsdecode(name)}: {why}" if name != "" else why


def _one_line(msg: str) -> str:
    return " ".join(msg.split()) if "\n" in msg else msg


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _broken_pipe()
    except (OSError, ValueError):
        pass


def _broken_pipe() -> int:
    """The reader of stdout went away (``| head``): stop quietly, as command-line tools do.

    Python would print a traceback when it flushes stdout at exit; pointing stdout at
    /dev/null first avoids it (the recipe of the ``signal`` module's documentation).
    """
    stdout_to_devnull()
    return EXIT_BROKEN_PIPE


def stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that the exit-time flush into a closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _install_hint(missing: str) -> str:
    extras = {"torch": "train", "onnx": "train", "onnxruntime": "edge", "mediapipe": "edge",
              "cv2": "edge", "tensorrt": "jetson", "pycuda": "jetson", "zmq": "publish"}
    root = missing.split(".")[0]
    if root in extras:
        return f"pip install 'skelmtl[{extras[root]}]'"
    return "this part of skelmtl is not installed or not written yet"


if __name__ == "__main__":
    sys.exit(main())
