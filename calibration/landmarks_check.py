"""Check the ONNX landmark front end against MediaPipe's Tasks API on real frames.

Usage: skelmtl convert-landmarks --check [--image PATH ...]   (see docs/landmarks.md)

Errors are measured per part (pose, the subject's left hand, right hand) as the mean
distance in pixels between the two front ends' joints, over the joints both report. The
bar (:func:`meets_bar`):

* **pose**: at most half of the Tasks API's disagreement *with itself* when the same
  image is JPEG re-encoded at quality 95 (an invisible change; its shift is the
  resolution to which MediaPipe's own output is defined). A converted path that stays
  within half of that cannot be told from MediaPipe by any consumer of its output.
* **hands**: at most 10 % of the hand's palm length (wrist to middle-finger base, in
  the reference), a quarter to a third of the distance between neighbouring finger joints, so
  no joint moves towards its neighbour's place; the Tasks API's JPEG shift is no
  yardstick here because our hand ROI comes from the body, not its palm detector.

Frames: scikit-image's astronaut and cameraman, matplotlib's Grace Hopper, frames 0, 40
and 80 of the carphone clip (:func:`edge.assets.sample_video`), and Debian opencv-doc's
messi5, basketball1 and basketball2 when that package is installed (or
``SKELMTL_OPENCV_SAMPLES`` names its ``examples/data`` folder).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable  # typing's Callable: an alias below is evaluated, on 3.8 too

import numpy as np

from edge.core.layout import LEFT_HAND0, N_HAND, N_POSE, RIGHT_HAND0
from edge.frontend.landmarks import LandmarkFrame

LOG = logging.getLogger(__name__)

PARTS: dict[str, slice] = {"pose": slice(0, N_POSE),
                           "left": slice(LEFT_HAND0, LEFT_HAND0 + N_HAND),
                           "right": slice(RIGHT_HAND0, RIGHT_HAND0 + N_HAND)}
POSE_BAR_OF_JPEG = 0.5
HAND_BAR_OF_PALM = 0.10
OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
CARPHONE_FRAMES = (0, 40, 80)


def part_errors(got: LandmarkFrame, ref: LandmarkFrame) -> dict[str, float]:
    """Mean pixel distance per part over the joints both frames have (NaN: none shared).

    Pixels of ``ref.image_size`` (both frames are of the same image).
    """
    px = np.asarray(ref.image_size, np.float64)
    out = {}
    for part, sl in PARTS.items():
        m = got.mask[sl] & ref.mask[sl]
        d = (got.joints[sl][m, :2].astype(np.float64) - ref.joints[sl][m, :2]) * px
        out[part] = float(np.linalg.norm(d, axis=1).mean()) if m.any() else float("nan")
    return out


def palm_length(frame: LandmarkFrame, part: str) -> float:
    """Pixels from the wrist to the middle finger's base (joint 9) of a hand part."""
    start = PARTS[part].start
    a, b = frame.joints[start, :2], frame.joints[start + 9, :2]
    return float(np.linalg.norm((a - b) * np.asarray(frame.image_size, np.float64)))


@dataclass(frozen=True)
class FrameCheck:
    """One frame's comparison.

    Attributes:
        name: the frame's name.
        errors: part -> mean pixel error of the ONNX path vs the Tasks API (NaN: the
            part is not found by both).
        jpeg: part -> the Tasks API's own error after a JPEG-95 re-encode.
        palm: part -> the reference hand's palm length in pixels (hands only).
        found: part -> (found by the ONNX path, found by the Tasks API).
    """

    name: str
    errors: dict[str, float]
    jpeg: dict[str, float]
    palm: dict[str, float]
    found: dict[str, tuple[bool, bool]]


def bar(check: FrameCheck, part: str) -> float:
    """The pixel bar of one part of one frame (module doc); NaN when not compared."""
    if part == "pose":
        return POSE_BAR_OF_JPEG * check.jpeg.get("pose", float("nan"))
    return HAND_BAR_OF_PALM * check.palm.get(part, float("nan"))


def meets_bar(check: FrameCheck) -> bool:
    """Every part compared on this frame is within its bar."""
    return all(not np.isfinite(e) or e <= bar(check, p) for p, e in check.errors.items())


def jpeg95(image: np.ndarray) -> np.ndarray:
    """``image`` (RGB) after a JPEG round trip at quality 95."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("JPEG encoding failed")
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if back is None:
        raise ValueError("JPEG decoding failed")
    return np.ascontiguousarray(back[:, :, ::-1])


def real_frames(extra: Iterable[str | os.PathLike[str]] = ()) -> dict[str, np.ndarray]:
    """The real RGB frames of the module doc that this machine has, plus ``extra`` files."""
    import cv2

    frames: dict[str, np.ndarray] = {}
    try:
        import skimage.data

        frames["astronaut"] = skimage.data.astronaut()
        frames["camera"] = np.repeat(np.asarray(skimage.data.camera())[:, :, None], 3, 2)
    except ImportError:
        LOG.info("scikit-image not installed: astronaut and camera skipped")
    paths: list[tuple[str, Path]] = []
    import matplotlib

    paths.append(("grace_hopper", Path(matplotlib.get_data_path()) / "sample_data"
                  / "grace_hopper.jpg"))
    samples = Path(os.environ.get("SKELMTL_OPENCV_SAMPLES", OPENCV_SAMPLES))
    for name in ("messi5.jpg", "basketball1.png", "basketball2.png"):
        paths.append((Path(name).stem, samples / name))
    paths += [(Path(p).stem, Path(p)) for p in extra]
    for name, path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if img is not None:
            frames[name] = np.ascontiguousarray(img[:, :, ::-1])
    from edge.assets import sample_video

    video = sample_video()
    if video is not None:
        clip = read_video(video)
        for i in CARPHONE_FRAMES:
            if i < len(clip):
                frames[f"carphone{i:03d}"] = clip[i]
    return frames


def read_video(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """All frames of a video file as RGB arrays."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    try:
        while True:
            ok, f = cap.read()
            if not ok:
                break
            out.append(np.ascontiguousarray(f[:, :, ::-1]))
    finally:
        cap.release()
    return out


Process = Callable[[np.ndarray], LandmarkFrame]


def check_frames(frames: dict[str, np.ndarray], onnx: Process, tasks: Process
                 ) -> list[FrameCheck]:
    """Compare ``onnx`` against ``tasks`` (both in image mode) on each frame."""
    out = []
    for name, img in frames.items():
        ref = tasks(img)
        got = onnx(img)
        again = tasks(jpeg95(img))
        out.append(FrameCheck(
            name, part_errors(got, ref), part_errors(again, ref),
            {p: palm_length(ref, p) for p in ("left", "right") if ref.mask[PARTS[p]].any()},
            {p: (bool(got.mask[sl].any()), bool(ref.mask[sl].any()))
             for p, sl in PARTS.items()}))
    return out


def time_stages(landmarkers: dict[str, Any], clip: list[np.ndarray]
                ) -> dict[str, tuple[dict[str, float], list[LandmarkFrame]]]:
    """Per front end: median ms per frame of each ``last_timings`` stage over a clip in
    video mode, and its frames. The front ends take turns frame by frame, so that a
    machine whose speed wanders slows them alike; the first frame (loading, warm-up) is
    not counted."""
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in landmarkers}
    frames: dict[str, list[LandmarkFrame]] = {n: [] for n in landmarkers}
    for i, img in enumerate(clip):
        for name, lm in landmarkers.items():
            t0 = time.perf_counter()
            frames[name].append(lm.process(img, t=i / 30.0, index=i))
            wall = (time.perf_counter() - t0) * 1e3
            if i > 0:
                rows[name].append({**lm.last_timings, "wall_ms": wall})
    return {n: ({k: float(np.median([r[k] for r in rows[n]])) for k in rows[n][0]}
                if rows[n] else {}, frames[n]) for n in landmarkers}


def clip_errors(got: list[LandmarkFrame], ref: list[LandmarkFrame]) -> dict[str, float]:
    """Per part: mean over the frames where both found it of :func:`part_errors`."""
    per = [part_errors(a, b) for a, b in zip(got, ref)]
    return {p: float(np.nanmean(v)) if np.isfinite(v := [e[p] for e in per]).any()
            else float("nan") for p in PARTS}


def format_checks(checks: list[FrameCheck]) -> str:
    """A Markdown table: per frame and part, error / bar in px, hands found."""
    lines = ["| frame | pose px (bar) | left hand px (bar) | right hand px (bar) | "
             "hands found onnx / tasks |", "|---|---|---|---|---|"]

    def cell(c: FrameCheck, p: str) -> str:
        e = c.errors[p]
        return "-" if not np.isfinite(e) else f"{e:.2f} ({bar(c, p):.2f})"

    for c in checks:
        hands = (f"{sum(c.found[p][0] for p in ('left', 'right'))} / "
                 f"{sum(c.found[p][1] for p in ('left', 'right'))}")
        lines.append(f"| {c.name} | {cell(c, 'pose')} | {cell(c, 'left')} | "
                     f"{cell(c, 'right')} | {hands} |")
    return "\n".join(lines)
