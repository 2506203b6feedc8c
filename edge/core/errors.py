"""The package's error base class: the CLI prints these as one line, without a traceback."""

from __future__ import annotations

import signal


class SkelmtlError(Exception):
    """A problem with the user's input or artefacts; the message names the file and cause."""


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) raised where Ctrl-C would raise KeyboardInterrupt.

    A subclass of :class:`KeyboardInterrupt`, so that every ``except KeyboardInterrupt``
    cleanup (extract's "run again with --resume", train's last checkpoint) runs the same
    for ``docker stop`` and systemd as for Ctrl-C. The ``skelmtl`` command exits with
    ``128 + signum`` (143 for SIGTERM, 130 for SIGINT), the shells' convention.

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for 15, and so on (the number as text for an unknown signal)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
