"""The runtime's own recorded landmark files (``*.landmarks.npz``): write and read.

A recording is a pickle-free ``.npz`` with:

    frames         (T, 75, 3) float32  mp75 coordinates (MediaPipe image convention)
    mask           (T, 75) bool        presence
    timestamps_ms  (T,) float64        capture time of each frame
    meta           0-d str             JSON: {"format": 1, "layout": "mp75", "source": ...,
                                        "label": ..., "task": ..., "fps": ...}

``skelmtl run --source file.landmarks.npz`` replays one without MediaPipe, and the
dataset readers turn folders of them into a clip store.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.atomic import atomic_open
from edge.core.errors import SkelmtlError
from edge.core.layout import MP75, NUM_JOINTS
from edge.core.npyfile import REAL_KINDS, check_array_sizes, require_kinds

RECORDING_FORMAT = 1
SUFFIX = ".landmarks.npz"


def recording_stem(name: str) -> str:
    """``name`` without :data:`SUFFIX` (``str.removesuffix`` is Python 3.9+)."""
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name


class RecordingError(SkelmtlError, ValueError):
    """A landmark recording that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Recording:
    """Frames captured by the landmark front end.

    Attributes:
        frames: ``(T, 75, 3)`` float32.
        mask: ``(T, 75)`` bool.
        timestamps_ms: ``(T,)`` float64, non-decreasing.
        meta: JSON-able provenance: source, fps, optional label and task.
    """

    frames: np.ndarray
    mask: np.ndarray
    timestamps_ms: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def save_recording(path: str | os.PathLike[str], rec: Recording) -> Path:
    """Write ``rec`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    meta = {"format": RECORDING_FORMAT, "layout": MP75.name, **rec.meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, frames=np.asarray(rec.frames, np.float32),
                            mask=np.asarray(rec.mask, bool),
                            timestamps_ms=np.asarray(rec.timestamps_ms, np.float64),
                            meta=np.asarray(json.dumps(meta)))
    return path


def load_recording(path: str | os.PathLike[str]) -> Recording:
    """Read a recording, checking its format, layout, dtypes and shapes.

    The arrays' headers are read first: a header that promises more bytes than the file
    holds (numpy would allocate that much before reading) and text, complex or object
    arrays (``astype`` would turn text into numbers) are refused before anything is loaded.

    Raises:
        RecordingError: naming ``path`` and the problem.
    """
    path = Path(path)
    headers = check_array_sizes(path, RecordingError)
    require_kinds(path, headers, {"frames": REAL_KINDS, "mask": REAL_KINDS,
                                  "timestamps_ms": REAL_KINDS}, RecordingError)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"frames", "mask", "timestamps_ms", "meta"} - set(z.files)
            if missing:
                raise RecordingError(f"{path}: not a landmark recording (missing {sorted(missing)})")
            frames, mask, ts = z["frames"], z["mask"], z["timestamps_ms"]
            meta = json.loads(str(z["meta"]))
    except RecordingError:
        raise
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RecordingError(f"{path}: unreadable or truncated ({e})") from None
    if meta.get("format") != RECORDING_FORMAT or meta.get("layout") != MP75.name:
        raise RecordingError(f"{path}: format {meta.get('format')} / layout "
                             f"{meta.get('layout')!r}; expected {RECORDING_FORMAT} / 'mp75'")
    t = frames.shape[0] if frames.ndim == 3 else -1
    if frames.shape[1:] != (NUM_JOINTS, 3) or mask.shape != (t, NUM_JOINTS) or ts.shape != (t,):
        raise RecordingError(f"{path}: shapes frames {frames.shape}, mask {mask.shape}, "
                             f"timestamps {ts.shape} do not fit (T, 75, 3) / (T, 75) / (T,)")
    return Recording(frames=frames.astype(np.float32), mask=mask.astype(bool),
                     timestamps_ms=ts.astype(np.float64), meta=meta)
