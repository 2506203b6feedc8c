"""How one command runs as a process: its arguments, logging, signals and exit status.

The ``skelmtl`` command line (:mod:`skelmtl.cli`) picks a command module by name and hands
it to :func:`run_command`; ``python -m <command module>`` does the same through
:func:`run_main`. A command module provides ``add_arguments(parser)`` and
``main(args) -> int``.

Exit status: 0 on success; 2 for bad input (a :class:`edge.core.errors.SkelmtlError`, or a file
that cannot be read or written), printed as one line without a traceback; 130 after
SIGINT (Ctrl-C) and 143 after SIGTERM (``docker stop``, systemd), ``128 + signal`` as
shells do; 141 when the reader of the output went away (``skelmtl ... | head``), quietly.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType, ModuleType

from edge.core.errors import Interrupted, SkelmtlError, signal_name

# Signals that stop a command the way Ctrl-C does (SIGINT keeps Python's own handler).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE

# -q/-v on the command line: verbosity -> (root logger level, handler level). The root
# level decides which library messages are made; the handler level what reaches stderr.
# A command that shows its progress sets its own logger to INFO (train, accuracy), which
# the default shows and -q hides.
_LEVELS = {-2: (logging.ERROR, logging.ERROR), -1: (logging.WARNING, logging.WARNING),
           0: (logging.WARNING, logging.INFO), 1: (logging.INFO, logging.INFO),
           2: (logging.DEBUG, logging.DEBUG)}


def configure_logging(command: str, verbosity: int = 0,
                      root: logging.Logger | None = None) -> bool:
    """Send log records to stderr as ``skelmtl COMMAND: message``, at ``verbosity``.

    Args:
        command: the command's name, the prefix of every line.
        verbosity: the number of ``-v`` minus the number of ``-q``; -2 shows errors only,
            -1 warnings, 0 (the default) warnings and the progress of the commands that
            report it, 1 every INFO record, 2 and more DEBUG.
        root: the logger to configure (the root logger; a test passes its own).

    Returns:
        False, changing nothing, when the logger has handlers already (a program that
        embeds the command, or pytest, configured logging itself).
    """
    root = logging.getLogger() if root is None else root
    if root.handlers:
        return False
    root_level, shown = _LEVELS[max(-2, min(2, verbosity))]
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"skelmtl {command}: %(message)s"))
    handler.setLevel(shown)
    root.addHandler(handler)
    root.setLevel(root_level)
    return True


def run_command(name: str, module: ModuleType, argv: Sequence[str], *,
                help_text: str | None = None, verbosity: int = 0) -> int:
    """Parse ``argv`` with the module's arguments and run its ``main``; the exit status.

    Errors become one line on stderr (``skelmtl NAME: error: ...``) and an exit status as
    the module docstring says; nothing here catches a bug's traceback.
    """
    doc = (module.__doc__ or "").strip()
    parser = argparse.ArgumentParser(prog=f"skelmtl {name}", description=help_text,
                                     epilog=doc.splitlines()[0] if doc else None)
    module.add_arguments(parser)
    args = parser.parse_args(list(argv))
    configure_logging(name, verbosity)
    try:
        return int(module.main(args) or 0)
    except SkelmtlError as e:
        print(f"skelmtl {name}: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"skelmtl {name}: interrupted ({signal_name(signum)})", file=sys.stderr)
        return 128 + int(signum)
    except BrokenPipeError:
        return broken_pipe()
    except OSError as e:
        if e.errno == errno.EPIPE:
            return broken_pipe()
        print(f"skelmtl {name}: error: {one_line(os_error_message(e))}", file=sys.stderr)
        return 2
    finally:
        _flush_stdout()


def run_main(name: str, module: ModuleType, argv: Sequence[str] | None = None) -> int:
    """What ``python -m <command module>`` runs: :func:`run_command` under the stop handlers."""
    args = sys.argv[1:] if argv is None else argv
    return under_stop_handlers(f"skelmtl {name}", lambda: run_command(name, module, args))


def under_stop_handlers(prog: str, body: Callable[[], int]) -> int:
    """``body()`` with SIGTERM/SIGHUP raising :class:`edge.core.errors.Interrupted`.

    A stop that ``body`` does not handle itself (one during the imports, before a command
    runs: torch takes seconds) is ``PROG: interrupted (SIGNAL)`` and ``128 + signal``.
    """
    previous = install_stop_handlers()
    try:
        return body()
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"{prog}: interrupted ({signal_name(signum)})", file=sys.stderr)
        return 128 + int(signum)
    finally:
        restore_handlers(previous)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install_stop_handlers() -> dict[int, object]:
    """Make SIGTERM/SIGHUP raise :class:`edge.core.errors.Interrupted`; returns the old handlers.

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


def one_line(msg: str) -> str:
    return " ".join(msg.split()) if "\n" in msg else msg


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        broken_pipe()
    except (OSError, ValueError):
        pass


def broken_pipe() -> int:
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


def install_hint(missing: str) -> str:
    """What to install for a missing module: the extra that carries it."""
    extras = {"torch": "train", "onnx": "train", "onnxruntime": "edge", "mediapipe": "edge",
              "cv2": "edge", "tensorrt": "jetson", "pycuda": "jetson", "zmq": "publish"}
    root = missing.split(".")[0]
    if root in extras:
        return f"pip install 'skelmtl[{extras[root]}]'"
    return "this part of skelmtl is not installed or not written yet"
