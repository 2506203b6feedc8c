"""Atomic file output (write beside the destination, then rename into place), checksums.

A reader never sees a half-written artefact, and an interrupted write (a crash, Ctrl-C, a
full disk) leaves the previous file untouched. A temporary file left by a writer that was
killed outright (SIGKILL, power loss) is named with its pid and removed by the next write
of the same file. Every stage that writes an artefact
(checkpoints, ONNX models, engines, reports, recordings) goes through here.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_SUFFIX = re.compile(r"(\.[A-Za-z0-9]+)")  # what temp_beside accepts after ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False,
                mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    For writers that want a file name (``torch.save``, ``np.savez``). The parent folder
    is created. ``mode`` replaces mkstemp's 0600: artefacts are meant to be shared.

    Raises:
        Whatever the body raises; the temporary file is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        yield tmp
        commit_temp(tmp, path, fsync=fsync, mode=mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_beside(path: Path, *, suffix: str = "") -> Path:
    """Create an empty temporary file beside ``path``, named with this process's pid.

    For writers whose file stays open across calls (the overlay video); the others use
    :func:`atomic_path`. Temporary files a killed writer of ``path`` left are removed
    first. ``suffix`` (``.mp4``: a dot and letters or digits) ends the name after
    ``.tmp``, for libraries that choose a format by the file name (OpenCV's video writer).

    Raises:
        IsADirectoryError: ``path`` is a folder.
        OSError: the folder cannot be written.
    """
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if suffix and not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"temporary file suffix {suffix!r}: a dot and letters or digits")
    _remove_stale(path)
    # The writer's pid in the name: the next writer removes what a killed one left.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-",
                                suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def commit_temp(tmp: Path, path: Path, *, fsync: bool = False, mode: int = 0o644) -> None:
    """Move a finished temporary file of :func:`temp_beside` into place at ``path``."""
    if fsync:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _remove_stale(path: Path) -> None:
    """Delete ``.<name>.<pid>-*.tmp`` files (or ``.tmp<suffix>``, :func:`temp_beside`)
    beside ``path`` whose writer is not running."""
    # mkstemp's random part is lower-case letters, digits and "_".
    ours = re.compile(re.escape(f".{path.name}.") + r"(\d+)-[a-z0-9_]+\.tmp"
                      + _SUFFIX.pattern + "?")
    try:
        siblings = [(p, m) for p in path.parent.iterdir() if (m := ours.fullmatch(p.name))]
    except OSError:
        return
    for p, m in siblings:
        if pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                p.unlink()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` lives on this host (a dead writer's leftovers may go)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, fsync: bool = False,
                **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that only appears at ``path`` once the block succeeds."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes whole files; mode {mode!r} is not 'w'/'wb'")
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *,
                 fsync: bool = False) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns ``path``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(raw)
    return Path(path)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (model files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
