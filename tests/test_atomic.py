"""edge.core.atomic: artefacts appear whole or not at all, readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.core.atomic import atomic_open, atomic_path, atomic_write


def test_write_replaces_whole_and_is_world_readable(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "model.onnx"
    atomic_write(p, b"one")
    atomic_write(p, "two")
    assert p.read_bytes() == b"two"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert [f.name for f in p.parent.iterdir()] == ["model.onnx"]  # no temporary left


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "report.json"
    atomic_write(p, "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(p, "w") as f:
            f.write("half of the new")
            raise RuntimeError("disk full")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_text("new")
            raise KeyboardInterrupt
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.json"]


def test_append_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="writes whole files"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    from edge.core.atomic import sha256_file

    data = bytes(range(256)) * 9000  # > 1 MiB: more than one chunk
    p = tmp_path / "m.bin"
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
