"""The skelmtl engine file: a metadata header in front of a serialized TensorRT engine.

A TensorRT engine alone says nothing about the model (labels, preprocessing) and is valid
only for the GPU and TensorRT version that built it. ``skelmtl build-engine`` therefore
writes one file that carries both, and the runtime reads the header back without
importing TensorRT, so a mismatch is reported before deserialising anything.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic  b"SKMTLTRT"
    8       4     header format version (uint32, currently 1)
    12      4     header length H in bytes (uint32)
    16      H     header: UTF-8 JSON object (see EngineHeader)
    16+H    ...   the serialized engine, exactly ``engine_size`` bytes

The header records the SHA-256 and size of the engine bytes, so a truncated or edited
file is refused with a message instead of crashing TensorRT's deserialiser.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.core.atomic import atomic_write
from edge.core.errors import SkelmtlError
from edge.core.metadata import PRECISIONS, ModelMeta

MAGIC = b"SKMTLTRT"
HEADER_FORMAT = 1
_PREFIX = struct.Struct("<8sII")
MAX_HEADER_BYTES = 16 << 20  # a header is a few kB; anything larger is a corrupt file


class EngineHeaderError(SkelmtlError, ValueError):
    """An engine file that is not ours, is corrupt, or was built for another platform."""


@dataclass(frozen=True)
class EngineHeader:
    """What an engine file says about itself.

    Attributes:
        meta: the model's metadata; ``meta.precision`` is the precision actually built.
        precision: ``fp32``, ``fp16`` or ``int8``, as built (equals ``meta.precision``).
        tensorrt: the TensorRT version that built the engine, e.g. ``"10.3.0"``.
        gpu: the GPU it was built on (name, compute capability), or ``"unknown"``.
        engine_size: bytes of the serialized engine that follow the header.
        engine_sha256: hex SHA-256 of those bytes.
        build: how it was built: batch profile (``min_batch``, ``opt_batch``,
            ``max_batch``), ``workspace_mb``, ``strongly_typed``, builder flags,
            ``float_islands``, ``prepared`` (what build-engine changed in the ONNX for
            this TensorRT), ``precision_check`` (``passed``, ``overridden: ...`` or
            ``unverified: ...``), the ``skelmtl`` version, the source ONNX hash, the
            calibration it used, the UTC time. The engine cache compares the batch
            profile, workspace and source hash with its recipe before reusing an engine.
    """

    meta: ModelMeta
    precision: str
    tensorrt: str
    gpu: str = "unknown"
    engine_size: int = 0
    engine_sha256: str = ""
    build: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineHeaderError(f"engine precision {self.precision!r} not in {PRECISIONS}")
        if self.meta.precision != self.precision:
            raise EngineHeaderError(f"engine header says {self.precision} but its model "
                                    f"metadata says {self.meta.precision}")

    @property
    def batch_range(self) -> tuple[int, int, int]:
        """``(min, opt, max)`` batch of the optimisation profile (1, 1, 1 when unknown)."""
        b = self.build
        return int(b.get("min_batch", 1)), int(b.get("opt_batch", 1)), int(b.get("max_batch", 1))

    def to_dict(self) -> dict[str, Any]:
        return {"format": HEADER_FORMAT, "meta": self.meta.to_dict(),
                "precision": self.precision, "tensorrt": self.tensorrt, "gpu": self.gpu,
                "engine_size": self.engine_size, "engine_sha256": self.engine_sha256,
                "build": dict(self.build)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "engine") -> EngineHeader:
        """Rebuild a header; refuses foreign metadata (layout, preprocessing version)."""
        try:
            meta = ModelMeta.from_dict(dict(d["meta"]), source=source)
            return cls(meta=meta, precision=str(d["precision"]), tensorrt=str(d["tensorrt"]),
                       gpu=str(d.get("gpu", "unknown")),
                       engine_size=int(d["engine_size"]),
                       engine_sha256=str(d["engine_sha256"]),
                       build=dict(d.get("build", {})))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, SkelmtlError):
                raise
            raise EngineHeaderError(f"{source}: malformed engine header ({e!r})") from None


def encode_engine(header: EngineHeader, engine: bytes) -> bytes:
    """The file's bytes: prefix, JSON header (size and hash filled in), engine."""
    engine = bytes(engine)
    if not engine:
        raise EngineHeaderError("refusing to write an engine file with an empty engine")
    d = header.to_dict()
    d["engine_size"] = len(engine)
    d["engine_sha256"] = hashlib.sha256(engine).hexdigest()
    blob = json.dumps(d, sort_keys=True).encode("utf-8")
    return _PREFIX.pack(MAGIC, HEADER_FORMAT, len(blob)) + blob + engine


def write_engine(path: str | os.PathLike[str], header: EngineHeader, engine: bytes) -> Path:
    """Write header + engine to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    data = encode_engine(header, engine)
    return atomic_write(path, data, fsync=True)


def _read_prefix(f: Any, source: str) -> tuple[dict[str, Any], int]:
    head = f.read(_PREFIX.size)
    if len(head) < _PREFIX.size or head[:8] != MAGIC:
        raise EngineHeaderError(
            f"{source}: not a skelmtl engine file (no {MAGIC.decode()} header); a bare "
            "TensorRT plan carries no model metadata: rebuild it with 'skelmtl build-engine'")
    _, version, n = _PREFIX.unpack(head)
    if version != HEADER_FORMAT:
        raise EngineHeaderError(f"{source}: engine header format {version}, this package "
                                f"reads {HEADER_FORMAT}; rebuild the engine")
    if n > MAX_HEADER_BYTES:
        raise EngineHeaderError(f"{source}: engine header claims {n} bytes: corrupt file")
    blob = f.read(n)
    if len(blob) != n:
        raise EngineHeaderError(f"{source}: truncated engine header ({len(blob)} of {n} bytes)")
    try:
        d = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EngineHeaderError(f"{source}: engine header is not JSON ({e})") from None
    if not isinstance(d, dict):
        raise EngineHeaderError(f"{source}: engine header is not a JSON object")
    return d, _PREFIX.size + n


def read_engine_header(path: str | os.PathLike[str]) -> EngineHeader:
    """Read only the header (cheap: the engine bytes are not loaded).

    Raises:
        EngineHeaderError: missing file, foreign file, corrupt header, metadata that does
            not match this package.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d, _ = _read_prefix(f, str(path))
    except FileNotFoundError:
        raise EngineHeaderError(f"{path}: no such engine file") from None
    except IsADirectoryError:
        raise EngineHeaderError(f"{path}: is a directory, not an engine file") from None
    return EngineHeader.from_dict(d, source=str(path))


def read_engine(path: str | os.PathLike[str], *, verify: bool = True) -> tuple[EngineHeader, bytes]:
    """Read header and engine bytes.

    Args:
        path: the engine file.
        verify: check the engine's size and SHA-256 against the header.

    Raises:
        EngineHeaderError: as :func:`read_engine_header`, plus a truncated or altered engine.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d, _ = _read_prefix(f, str(path))
            engine = f.read()
    except FileNotFoundError:
        raise EngineHeaderError(f"{path}: no such engine file") from None
    header = EngineHeader.from_dict(d, source=str(path))
    if verify:
        if len(engine) != header.engine_size:
            raise EngineHeaderError(f"{path}: engine is {len(engine)} bytes, the header says "
                                    f"{header.engine_size} (truncated or appended file)")
        if hashlib.sha256(engine).hexdigest() != header.engine_sha256:
            raise EngineHeaderError(f"{path}: engine bytes do not match the header's SHA-256 "
                                    "(corrupt file)")
    return header, engine


def tensorrt_version_parts(v: str) -> tuple[int, ...]:
    """Every numeric component of a TensorRT version, padded to four: ``"8.5.2.2"`` ->
    ``(8, 5, 2, 2)``, ``"10.3.0"`` -> ``(10, 3, 0, 0)``.

    The one place TensorRT version strings are split into numbers: the runtime compares
    engines with it, and :func:`calibration.trt.versions.parse_version` reads the
    ``(major, minor, patch)`` of a profile from it."""
    parts = []
    for p in str(v).split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (4 - len(parts)))


def check_engine_platform(header: EngineHeader, *, tensorrt: str, gpu: str | None = None,
                          source: str = "engine") -> None:
    """Refuse an engine built by another TensorRT version or on another GPU.

    TensorRT engines are tied to the exact TensorRT release including its build number
    (NVIDIA's developer guide: "Serialized engines are not portable across platforms or
    TensorRT versions"; ``8.5.2.2`` and ``8.5.2.3`` are different versions to the
    deserialiser) and to the GPU model; loading one elsewhere fails deep inside TensorRT
    or, worse, works with wrong tactics. Every numeric component is compared (missing
    ones count as 0). The GPU check compares the part before ``|`` (the CUDA device
    description) and is skipped when either side is unknown.

    Raises:
        EngineHeaderError: naming both versions or both GPUs and how to fix it.
    """
    if tensorrt_version_parts(header.tensorrt) != tensorrt_version_parts(tensorrt):
        raise EngineHeaderError(
            f"{source}: built by TensorRT {header.tensorrt}, this is TensorRT {tensorrt}; "
            "engines only load in the TensorRT version that built them: rebuild it here "
            "with 'skelmtl build-engine'")
    if gpu is None:
        return
    have = header.gpu.split("|")[0].strip()
    want = gpu.split("|")[0].strip()
    if "unknown" in (have.lower(), want.lower()) or not have or not want:
        return
    if not _same_gpu(have, want):
        raise EngineHeaderError(
            f"{source}: built on GPU {have!r}, this GPU is {want!r}; engines are specific "
            "to the GPU model: rebuild it here with 'skelmtl build-engine'")


_GPU_RE = re.compile(r"^(?P<name>.*?)\s+sm_(?P<cc>\d+)(?:\s+(?P<sms>\d+)SM)?$")


def _same_gpu(a: str, b: str) -> bool:
    """Same GPU model: name and compute capability, and the SM count where both sides
    have it (``nvidia-smi`` reports none; pycuda does), so that two detection sources
    never make a good engine look foreign."""
    ma, mb = _GPU_RE.match(a), _GPU_RE.match(b)
    if not ma or not mb:
        return a == b
    if (ma["name"], ma["cc"]) != (mb["name"], mb["cc"]):
        return False
    return not (ma["sms"] and mb["sms"]) or ma["sms"] == mb["sms"]


def check_engine_trust(path: str | os.PathLike[str], *, uid: int | None = None) -> None:
    """Refuse an engine file that someone other than this user could have written.

    An engine file is executable code: TensorRT's "Security Considerations" page
    (docs.nvidia.com/deeplearning/tensorrt/latest/reference/security.html, "Engine
    Deserialization and the Trust Boundary") says deserializing an engine from an
    untrusted source is equivalent to running untrusted native code, and the SHA-256 in the
    header detects corruption, not tampering (whoever writes the file writes the hash).
    So the file must be owned by this user (or root) and not writable by group or others,
    and its folder must not let others replace it (owned by this user or root, not
    world-writable and not writable by a group other than this user's own, unless sticky
    like ``/tmp``). POSIX only; elsewhere a no-op.

    Raises:
        EngineHeaderError: naming the file, the owner or mode, and how to fix it.
    """
    if os.name != "posix":
        return
    import stat

    path = Path(path)
    me = os.getuid() if uid is None else uid
    trusted = {me, 0}
    try:
        st = path.stat()
        dst = path.resolve().parent.stat()
    except FileNotFoundError:
        raise EngineHeaderError(f"{path}: no such engine file") from None
    except OSError as e:
        raise EngineHeaderError(f"{path}: cannot stat the engine file: {e.strerror}") from None
    if st.st_uid not in trusted:
        raise EngineHeaderError(
            f"{path}: engine file is owned by uid {st.st_uid}, not by this user (uid {me}); "
            "an engine is native code: refusing to load it (rebuild it here with 'skelmtl "
            "build-engine', or chown it after checking where it came from)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise EngineHeaderError(
            f"{path}: engine file is writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); an engine is native code: refusing to load "
            "it (chmod go-w it after checking where it came from, or rebuild it)")
    if dst.st_uid not in trusted:
        raise EngineHeaderError(
            f"{path}: the folder holding the engine is owned by uid {dst.st_uid}, who could "
            "replace the engine; refusing to load it (keep engines in a folder of this user)")
    # A folder writable by our own primary group is the norm under user private groups
    # (Ubuntu's umask 002 makes 0775 folders whose group holds only this user); a folder
    # writable by any other group, or by everyone without the sticky bit, is not.
    loose = stat.S_IWOTH | (stat.S_IWGRP if dst.st_gid != os.getgid() else 0)
    if dst.st_mode & loose and not dst.st_mode & stat.S_ISVTX:
        raise EngineHeaderError(
            f"{path}: the folder holding the engine is writable by group or others (mode "
            f"{stat.S_IMODE(dst.st_mode):04o}), who could replace the engine; refusing to "
            "load it (chmod go-w the folder)")


__all__ = ["MAGIC", "HEADER_FORMAT", "EngineHeader", "EngineHeaderError", "encode_engine",
           "write_engine", "read_engine", "read_engine_header", "check_engine_platform",
           "check_engine_trust", "tensorrt_version_parts"]
