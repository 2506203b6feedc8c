"""Overlay video: the skeleton, the routed task, the label and its confidence per frame.

Usage: skelmtl run --model M --source clip.mp4 --overlay out.mp4

A picture a person can check: for each frame the mp75 skeleton (body white, the
subject's left hand blue, right hand orange) is drawn on the source image (enlarged to
480 pixels high when smaller), or on a grey canvas when the source is a landmark replay;
a panel shows the presence state, the routed task (and why it was chosen), the smoothed
top-3 labels of the last window with bars, the active label after hysteresis, and the
drop count.

Joints are drawn where they are, in the coordinate frame the frame says it has
(``LandmarkFrame.coords``), never guessed from the values: normalised image coordinates
scale by the picture (joints MediaPipe places below the picture stay below it), pixels
scale from the analysed image's size, and metres are projected through a nominal camera
at the origin (:func:`to_pixels`).

Frames are RGB internally (as the sources give them); the writer converts to BGR for
OpenCV and writes the file atomically: a temporary file named with the writer's pid
(:func:`edge.core.atomic.temp_beside`), renamed on close; the next writer of the same file
removes what a killed one (``kill -9``) left.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.atomic import commit_temp, temp_beside
from edge.core.errors import SkelmtlError
from edge.core.layout import MP75, N_HAND, N_POSE
from edge.frontend.landmarks import COORDS_IMAGE, COORDS_PIXELS, check_coords

DEFAULT_SIZE = (640, 480)
MIN_HEIGHT = 480  # smaller source images are enlarged to this height
_BODY = (235, 235, 235)
_LEFT = (70, 140, 255)
_RIGHT = (255, 150, 40)
_ACTIVE = (60, 220, 90)
_DIM = (170, 170, 170)
_PANEL_W = 300
# Metric joints are drawn through a pinhole camera at the origin looking along +z with
# this horizontal field of view (the Kinect v1/v2 depth cameras see 57-70 degrees);
# without depth, orthographically with this many metres across the picture's height.
METRES_FOV_DEG = 60.0
METRES_VIEW_HEIGHT = 2.5


class OverlayError(SkelmtlError, OSError):
    """The overlay video cannot be written; the message names the file."""


def _colour(i: int, j: int) -> tuple[int, int, int]:
    k = max(i, j)
    if k < N_POSE:
        return _BODY
    return _LEFT if k < N_POSE + N_HAND else _RIGHT


def to_pixels(joints: np.ndarray, mask: np.ndarray, size: tuple[int, int],
              coords: str = COORDS_IMAGE, image_size: tuple[int, int] = (0, 0)
              ) -> np.ndarray:
    """``(75, 2)`` pixel positions of ``(75, C)`` joints on a picture of ``size`` (w, h).

    Args:
        joints: the joints, in the coordinate frame ``coords``.
        mask: ``(75,)`` presence.
        size: the picture drawn on, (width, height) in pixels.
        coords: ``image`` (normalised to the image: scaled by ``size``, joints outside
            [0, 1] land outside the picture), ``pixels`` (of ``image_size``, rescaled to
            ``size``; taken as they are when ``image_size`` is unknown) or ``metres``
            (camera frame, x right, y down, z away: projected through a pinhole camera of
            :data:`METRES_FOV_DEG` at the origin; without depth, orthographic with
            :data:`METRES_VIEW_HEIGHT` metres across the height, the origin in the centre).
        image_size: the analysed image's (width, height) for ``pixels``.

    Raises:
        edge.frontend.landmarks.LandmarkerError: an unknown coordinate frame.
    """
    coords = check_coords(coords, "overlay")
    w, h = size
    j = np.asarray(joints, np.float64)
    xy = j[:, :2]
    if coords == COORDS_IMAGE:
        return xy * (w, h)
    if coords == COORDS_PIXELS:
        iw, ih = image_size
        return xy * (w / iw, h / ih) if iw > 0 and ih > 0 else xy.copy()
    # What remains is COORDS_METRES (check_coords refused anything else).
    m = np.asarray(mask, bool) & np.isfinite(j).all(axis=1)
    z = j[:, 2] if j.shape[1] >= 3 else np.zeros(len(j))
    if m.any() and (z[m] > 0.1).all():
        f = (w / 2) / np.tan(np.radians(METRES_FOV_DEG) / 2)
        zz = np.where(z > 0.1, z, 1.0)
        return xy * f / zz[:, None] + (w / 2, h / 2)
    return xy * (h / METRES_VIEW_HEIGHT) + (w / 2, h / 2)


def draw_skeleton(image: np.ndarray, joints: np.ndarray, mask: np.ndarray,
                  coords: str = COORDS_IMAGE, image_size: tuple[int, int] = (0, 0)
                  ) -> np.ndarray:
    """Draw the mp75 skeleton on an ``(H, W, 3)`` uint8 RGB image (in place; returned).

    ``coords`` and ``image_size`` say where the joints are (see :func:`to_pixels`); parts
    outside the picture are clipped by the drawing, not moved into it.
    """
    import cv2

    h, w = image.shape[:2]
    px = to_pixels(joints, mask, (w, h), coords, image_size)
    # Far-off joints (a bad detection) would overflow OpenCV's int coordinates.
    m = (np.asarray(mask, bool) & np.isfinite(px).all(axis=1)
         & (np.abs(px) < 1e6).all(axis=1))
    thick = max(1, round(min(w, h) / 240))
    for i, j in MP75.edges:
        if m[i] and m[j]:
            cv2.line(image, tuple(int(v) for v in px[i]), tuple(int(v) for v in px[j]),
                     _colour(i, j), thick, cv2.LINE_AA)
    for k in np.flatnonzero(m).tolist():
        cv2.circle(image, tuple(int(v) for v in px[k]), thick + 1, _colour(k, k), -1,
                   cv2.LINE_AA)
    return image


def _text(img: np.ndarray, s: str, org: tuple[int, int], colour: tuple[int, int, int],
          scale: float = 0.5) -> None:
    import cv2

    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_panel(image: np.ndarray, step: Any, labels: dict[str, tuple[str, ...]]) -> np.ndarray:
    """Draw the status panel for a :class:`edge.runtime.pipeline.Step` (in place; returned)."""
    import cv2

    y = 22
    state = step.state or "-"
    _text(image, f"t={step.frame.t:.2f}s  {state}" if step.frame is not None else state,
          (10, y), _DIM)
    y += 22
    res = step.result
    if res is None:
        _text(image, "waiting for the first window", (10, y), _DIM)
        return image
    why = res.route.reason
    _text(image, f"task: {res.task} ({why})", (10, y), (255, 255, 255))
    y += 22
    if res.active:
        _text(image, f"{res.active}  {res.confidence:.2f}", (10, y), _ACTIVE, 0.8)
    else:
        _text(image, "-", (10, y), _DIM, 0.8)
    y += 10
    names = labels[res.task]
    top = np.argsort(-res.smoothed)[:3]
    for k in top:
        y += 20
        p = float(res.smoothed[k])
        cv2.rectangle(image, (10, y - 12), (10 + int(140 * p), y + 2),
                      _ACTIVE if names[k] == res.active else _DIM, -1)
        _text(image, f"{names[k][:18]} {p:.2f}", (156, y), (255, 255, 255), 0.45)
    if step.dropped:
        y += 22
        _text(image, f"dropped {step.dropped}", (10, y), (255, 80, 80), 0.45)
    return image


def render(step: Any, labels: dict[str, tuple[str, ...]],
           size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """The overlay frame (RGB) of a step: its image (or a grey canvas), skeleton, panel."""
    if step.image is not None:
        img = np.ascontiguousarray(step.image, dtype=np.uint8).copy()
        if img.shape[0] < MIN_HEIGHT:  # small videos: enlarge so the panel stays readable
            import cv2

            scale = MIN_HEIGHT / img.shape[0]
            img = np.asarray(cv2.resize(img, (round(img.shape[1] * scale), MIN_HEIGHT),
                                        interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
    else:
        frame_size = tuple(getattr(step.frame, "image_size", (0, 0)) or (0, 0))
        w, h = frame_size if frame_size[0] > 0 and frame_size[1] > 0 else size
        img = np.full((int(h), int(w), 3), 48, np.uint8)
    if step.frame is not None:
        frame = step.frame
        size = tuple(getattr(frame, "image_size", (0, 0)) or (0, 0))
        draw_skeleton(img, np.asarray(frame.joints), np.asarray(frame.mask),
                      getattr(frame, "coords", COORDS_IMAGE), (int(size[0]), int(size[1])))
    return draw_panel(img, step, labels)


class OverlayWriter:
    """Writes overlay frames to a video file (mp4v codec), atomically on :meth:`close`.

    The frame size is fixed by the first frame; later frames are resized to it.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0,
                 labels: dict[str, tuple[str, ...]] | None = None) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise OverlayError(f"{self.path}: folder {self.path.parent} does not exist")
        self.fps = fps if fps and fps > 0 else 30.0
        self.labels = labels or {}
        self._tmp: Path | None = None  # created with the first frame
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write_image(self, rgb: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            h, w = rgb.shape[:2]
            self._size = (w, h)
            try:
                # OpenCV picks the container by the name's suffix, so the temporary keeps
                # it (.mp4 for a name without one, as before).
                self._tmp = temp_beside(self.path, suffix=self.path.suffix or ".mp4")
            except OSError as e:
                raise OverlayError(f"{self.path}: cannot write here ({e.strerror or e})"
                                   ) from None
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter.fourcc(*"mp4v"),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                self.abort()
                raise OverlayError(f"{self.path}: OpenCV cannot write this video (codec "
                                   "mp4v); use a .mp4 or .avi name")
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            rgb = cv2.resize(rgb, self._size)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def write(self, step: Any) -> None:
        """Render and write one :class:`edge.runtime.pipeline.Step` (steps without a frame are skipped)."""
        if step.frame is None:
            return
        self.write_image(render(step, self.labels))

    def close(self) -> Path | None:
        """Finish the file and move it into place; None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        assert self._tmp is not None
        commit_temp(self._tmp, self.path)
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Drop a partial file (on errors)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
