"""The legacy TensorRT calibration cache: its text format, read and written.

``skelmtl calibrate`` writes one (``model.int8.calib``) for implicit-quantization builds on
TensorRT 8.x/10.x; ``skelmtl build-engine --calib-cache`` reads it back, refusing a cache
written for another TensorRT version (TensorRT itself ignores it silently).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from calibration.trt.versions import TensorRTError, TrtProfile, version_number

CACHE_ALGORITHM = "EntropyCalibration2"


def encode_calibration_cache(scales: Mapping[str, float], trt_version: str,
                             algorithm: str = CACHE_ALGORITHM) -> bytes:
    """TensorRT's calibration cache text: ``TRT-<version>-<algorithm>`` then
    ``tensor: <big-endian IEEE-754 float32 scale in hex>`` per line.

    The scale is the INT8 step, ``amax / 127``. TensorRT refuses a cache whose header
    names another version or algorithm, so write it for the TensorRT that will read it.
    """
    lines = [f"TRT-{version_number(trt_version)}-{algorithm}"]
    for name in sorted(scales):
        s = float(scales[name])
        if not s > 0.0 or s != s:
            continue
        if ":" in name or "\n" in name:
            raise TensorRTError(f"tensor name {name!r} cannot be written to a calibration cache")
        lines.append(f"{name}: {struct.pack('>f', s).hex()}")
    return ("\n".join(lines) + "\n").encode("ascii")


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed calibration cache: version integer, algorithm, tensor -> scale."""

    version: int
    algorithm: str
    scales: dict[str, float]


def decode_calibration_cache(data: bytes, source: str = "calibration cache") -> CalibrationCache:
    """Inverse of :func:`encode_calibration_cache`.

    Raises:
        TensorRTError: not a TensorRT calibration cache.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise TensorRTError(f"{source}: not a TensorRT calibration cache (binary data)") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    m = re.match(r"^TRT-(\d+)-(\w+)$", lines[0].strip()) if lines else None
    if not m:
        raise TensorRTError(f"{source}: not a TensorRT calibration cache (first line "
                            f"{lines[0][:40] if lines else ''!r})")
    scales = {}
    for ln in lines[1:]:
        name, sep, hexval = ln.rpartition(":")
        try:
            scales[name.strip()] = struct.unpack(">f", bytes.fromhex(hexval.strip()))[0]
        except ValueError:
            raise TensorRTError(f"{source}: malformed line {ln!r}") from None
        if not sep:
            raise TensorRTError(f"{source}: malformed line {ln!r}")
    return CalibrationCache(int(m.group(1)), m.group(2), scales)


def check_calibration_cache(path: Path, profile: TrtProfile) -> bytes:
    """Read a cache for this TensorRT, refusing one written for another version/algorithm.

    Raises:
        TensorRTError: naming both versions and how to rewrite the cache.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TensorRTError(f"{path}: cannot read the calibration cache ({e.strerror})") from None
    cache = decode_calibration_cache(data, str(path))
    want = version_number(profile.version_str)
    if cache.version != want:
        raise TensorRTError(
            f"{path}: calibration cache written for TensorRT version {cache.version}, this is "
            f"{profile.version_str} ({want}), which ignores it; rewrite it with 'skelmtl "
            f"calibrate ... --trt-cache-version {profile.version_str}'")
    if cache.algorithm != CACHE_ALGORITHM:
        raise TensorRTError(f"{path}: calibration cache is for {cache.algorithm}; the builder "
                            f"uses {CACHE_ALGORITHM}")
    return data


__all__ = [
    "CACHE_ALGORITHM", "encode_calibration_cache", "CalibrationCache",
    "decode_calibration_cache", "check_calibration_cache",
]
