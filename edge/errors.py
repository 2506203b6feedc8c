"""The package's error base class: the CLI prints these as one line, without a traceback."""

from __future__ import annotations


class SkelmtlError(Exception):
    """A problem with the user's input or artefacts; the message names the file and cause."""
