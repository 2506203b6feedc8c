"""Checks on ``.npy`` and ``.npz`` files made before numpy loads them (numpy only).

``np.load`` allocates whatever an array's header claims before it reads a byte of data,
and converts text ("0.5") to numbers or drops imaginary parts on a later ``astype`` with
at most a warning. A crafted or damaged file could therefore take the machine's memory,
or turn into plausible coordinates. The runtime's recordings (:mod:`edge.core.recording`) and
the dataset readers (``trainer/datasets``) read the headers here first; ``edge`` holds the
code because it may not import ``trainer``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge.core.errors import SkelmtlError

REAL_KINDS = "biuf"  # numpy dtype kinds of real numbers: bool, int, uint, float
# The most a deflate stream can expand (1032:1, zlib's technical notes); a zip entry that
# claims more than this over its compressed size is not a deflate stream numpy wrote.
_DEFLATE_MAX_RATIO = 1032


@dataclass(frozen=True)
class NpyHeader:
    """What one array's header says, and how many data bytes follow it.

    Attributes:
        shape: the claimed shape.
        dtype: the claimed dtype.
        data_bytes: the bytes after the header (its file's or its zip entry's size).
    """

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    data_bytes: int

    @property
    def claimed_bytes(self) -> int:
        """Bytes of data the header promises (exact, in Python integers: no overflow)."""
        n = 1
        for d in self.shape:
            n *= int(d)
        return n * self.dtype.itemsize


def _read_header(fh: IO[bytes], size: int) -> NpyHeader:
    version = np.lib.format.read_magic(fh)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read(fh)
    return NpyHeader(tuple(int(d) for d in shape), np.dtype(dtype), size - fh.tell())


def read_headers(path: Path) -> dict[str, NpyHeader]:
    """The headers of an ``.npz`` file's arrays (by name) or of an ``.npy`` file (key "").

    Raises:
        OSError, ValueError, EOFError, zipfile.BadZipFile: unreadable; the caller's loader
            names the problem.
        ValueError: a zip entry that claims more bytes than its compressed data can hold
            (a second way to promise terabytes).
    """
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            return {"": _read_header(fh, path.stat().st_size)}
    out: dict[str, NpyHeader] = {}
    total = path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            ratio = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: _DEFLATE_MAX_RATIO}.get(
                info.compress_type)
            if info.compress_size > total or (
                    ratio is not None and info.file_size > ratio * info.compress_size + 64):
                raise _EntryTooLarge(f"{name} claims {info.file_size} bytes from "
                                     f"{info.compress_size} stored bytes")
            with zf.open(info) as fh:
                out[name] = _read_header(fh, info.file_size)
    return out


class _EntryTooLarge(ValueError):
    pass


def check_array_sizes(path: Path, error: type[Exception] = SkelmtlError) -> dict[str, NpyHeader]:
    """Each array's header in an ``.npy`` or ``.npz`` file must match the bytes it has.

    Anything unreadable is left to the loader, which names the problem.

    Args:
        path: the file.
        error: the exception class to raise (each room its own ``SkelmtlError``).

    Returns:
        The headers read (empty when the file could not be read).

    Raises:
        error: naming the file (and the array) whose header promises more than it holds.
    """
    try:
        headers = read_headers(path)
    except _EntryTooLarge as e:
        raise error(f"{path}: {e} (truncated or corrupt)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return {}
    for name, h in headers.items():
        if h.dtype.hasobject:  # no fixed size; np.load(allow_pickle=False) refuses it
            continue
        if h.data_bytes != h.claimed_bytes:
            what = f"{name} " if name else ""
            raise error(f"{path}: {what}holds {h.data_bytes} bytes of data, its header "
                        f"promises {h.claimed_bytes} ({h.dtype} {h.shape}; truncated or "
                        f"corrupt)")
    return headers


def require_kinds(path: Path | str, headers: Mapping[str, NpyHeader],
                  kinds: Mapping[str, str], error: type[Exception] = SkelmtlError) -> None:
    """The named arrays must have dtypes of the given kinds (default: real numbers).

    Args:
        path: the file, for the message.
        headers: from :func:`check_array_sizes`; names not there are not checked.
        kinds: array name -> allowed ``dtype.kind`` letters (:data:`REAL_KINDS`).
        error: the exception class to raise.

    Raises:
        error: ``"<path>: <name> must hold real numbers, got dtype <dtype>"``.
    """
    for name, allowed in kinds.items():
        h = headers.get(name)
        if h is not None and h.dtype.kind not in allowed:
            raise error(f"{path}: {name} must hold real numbers, got dtype {h.dtype}")
