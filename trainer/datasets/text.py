"""Parsing of whitespace-separated numeric text files with errors naming file and line."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from trainer.datasets.base import DatasetError


def read_rows(path: Path, ncols: int | tuple[int, ...]) -> np.ndarray:
    """All non-blank lines of ``path`` as a float64 ``(rows, ncols)`` array.

    Raises:
        DatasetError: naming the file and the first line with a wrong column count, a
            value that is not a number, or NaN/inf.
    """
    allowed = (ncols,) if isinstance(ncols, int) else ncols
    # Fast path (numpy's C parser); on any problem, the slow path below finds the line.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "empty input file": reported by the caller
            a = np.loadtxt(path, dtype=np.float64, ndmin=2)
        if a.size == 0:
            return np.zeros((0, allowed[0]), dtype=np.float64)
        if a.shape[1] in allowed and np.isfinite(a).all():
            return a
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: unreadable ({e})") from None
    rows: list[list[float]] = []
    width = None
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in allowed or (width is not None and len(parts) != width):
            want = width or " or ".join(map(str, allowed))
            raise DatasetError(f"{path}: line {n}: {len(parts)} values, expected {want} "
                               "(truncated or not this format?)")
        width = len(parts)
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise DatasetError(f"{path}: line {n}: not a number in {line.strip()[:60]!r}") from None
        if not np.isfinite(vals).all():
            raise DatasetError(f"{path}: line {n}: NaN or infinite value")
        rows.append(vals)
    if not rows:
        return np.zeros((0, allowed[0]), dtype=np.float64)
    return np.asarray(rows, dtype=np.float64)  # pragma: no cover - fast path had it
