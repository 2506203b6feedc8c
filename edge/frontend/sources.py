"""Frame sources: video files, cameras, image folders, GStreamer/RTSP streams, replays.

:func:`open_source` turns a spec string into a :class:`Source`:

=======================================  ==============================================
spec                                     source
=======================================  ==============================================
``"0"``, ``2``, ``/dev/video0``          :class:`CaptureSource` on a camera (live)
``"... ! appsink"`` (contains ``!``)     GStreamer pipeline via OpenCV (live)
``rtsp://``, ``rtmp://``, ``http(s)://`` network stream via OpenCV's FFmpeg (live)
``clip.landmarks.npz``                   :class:`ReplaySource` (landmarks, no MediaPipe)
a folder of ``*.landmarks.npz``          :class:`ReplaySource` over all of them, in order
a folder of images                       :class:`ImageFolderSource`
any other file                           :class:`CaptureSource` on a video file
=======================================  ==============================================

Iterating a source yields :class:`VideoFrame` (RGB images), or
:class:`edge.frontend.landmarks.LandmarkFrame` for a replay (``source.landmarks`` is True).
Every source says which coordinate frame its landmarks come in (``source.coords``, one
of :data:`edge.frontend.landmarks.COORDS`): ``image`` for images (MediaPipe normalises to them),
the recording's own for a replay, so the overlay never guesses it from the values.

A clip store (a folder with the store's ``meta.json``) is training data, not a source:
``open_source`` says so and what to use instead.

Bad input does not crash the loop: a video that stops before its declared length, or a
camera or stream that stops delivering frames, simply ends the iteration and sets
``source.ended_early`` and ``source.end_reason`` (a sentence naming the source and what
happened); pass ``strict=True`` to get :class:`SourceLost` raised instead. A file that
cannot be opened or decodes no frame at all raises :class:`SourceError`. Unreadable
images in a folder are skipped and counted (``source.skipped``, ``source.skipped_files``).

Timing for the benchmark: ``source.last_decode_ms`` (read + colour conversion of the last
frame) and ``source.decode_ms_total``.

Usage: python -c "from edge.frontend.sources import open_source; print(len(list(open_source('v.mp4'))))"
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.recording import SUFFIX as RECORDING_SUFFIX
from edge.core.recording import load_recording
from edge.frontend.landmarks import COORDS_IMAGE, LandmarkFrame, from_recording, recording_coords

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg",
                              ".mpeg", ".wmv", ".flv", ".3gp", ".ts"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://",
                  "srt://")


class SourceError(SkelmtlError, OSError):
    """A source that cannot be opened or read at all; the message names it."""


class SourceLost(SourceError):
    """A source that stopped early (raised only with ``strict=True``)."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: frame number in the source, from 0.
        t: capture time in seconds (file: index / fps; live: seconds since the first frame).
        image: ``(H, W, 3)`` uint8 RGB.
    """

    index: int
    t: float
    image: np.ndarray


class Source:
    """Base class: an iterable of frames with status and timing.

    Attributes:
        name: what the user asked for, for messages.
        kind: ``"video"``, ``"camera"``, ``"stream"``, ``"images"`` or ``"replay"``.
        fps: nominal frame rate (0 when unknown).
        live: frames come from a device or network (timestamps are wall-clock).
        landmarks: iteration yields LandmarkFrame instead of VideoFrame.
        frames_read: frames yielded so far.
        ended_early: the source stopped before its natural end.
        end_reason: why iteration stopped (None while running).
        skipped: frames or files that could not be decoded and were skipped.
        last_decode_ms / decode_ms_total: decoding time of the last frame / all frames.
        coords: the coordinate frame of this source's landmarks
            (:data:`edge.frontend.landmarks.COORDS`); ``image`` for sources of images.
    """

    kind = "source"
    live = False
    landmarks = False
    coords = COORDS_IMAGE

    def __init__(self, name: str, fps: float = 0.0) -> None:
        self.name = name
        self.fps = float(fps)
        self.frames_read = 0
        self.ended_early = False
        self.end_reason: str | None = None
        self.skipped = 0
        self.skipped_files: list[str] = []
        self.last_decode_ms = 0.0
        self.decode_ms_total = 0.0

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file (idempotent)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, kind={self.kind!r}, fps={self.fps:g})"


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """OpenCV's BGR / gray / BGRA to RGB uint8."""
    import cv2

    if img.dtype != np.uint8:
        # 16-bit PNG/TIFF: keep the top 8 bits.
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class CaptureSource(Source):
    """Frames from an OpenCV ``VideoCapture`` (file, camera or stream).

    Any object with ``read() -> (ok, bgr)``, ``get(prop)``, ``isOpened()`` and
    ``release()`` works, which is how the tests simulate a camera that disappears.

    Args:
        capture: the opened capture.
        name: for messages (the path, ``"camera 0"``, the URL).
        kind: ``"video"``, ``"camera"`` or ``"stream"``.
        live: wall-clock timestamps; tolerate ``max_failures`` failed reads in a row.
        fps: override the frame rate the capture reports.
        max_failures: consecutive failed reads accepted from a live source before it is
            declared lost (a file ends at its first failed read).
        strict: raise :class:`SourceLost` instead of ending quietly.
        clock: seconds, monotonic (tests inject one).
    """

    def __init__(self, capture: Any, name: str, *, kind: str = "video", live: bool = False,
                 fps: float | None = None, max_failures: int = 5, strict: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import cv2

        reported = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        super().__init__(name, fps if fps else (reported if 0 < reported < 1000 else 0.0))
        self.capture = capture
        self.kind = kind
        self.live = live
        self.max_failures = max_failures
        self.strict = strict
        self.clock = clock
        count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        self.declared_frames = int(count) if not live and count > 0 else 0
        w = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.frame_size = (w, h)

    def _read(self) -> np.ndarray | None:
        try:
            ok, img = self.capture.read()
        except Exception:  # cv2.error from a broken stream: treat as a failed read
            return None
        if not ok or img is None or img.size == 0:
            return None
        return img

    def __iter__(self) -> Iterator[VideoFrame]:
        import cv2

        t_first: float | None = None
        failures = 0
        index = 0
        while True:
            t0 = time.perf_counter()
            img = self._read()
            if img is None:
                failures += 1
                if self.live and failures <= self.max_failures:
                    continue
                self._finish()
                return
            failures = 0
            rgb = _to_rgb(img)
            self.last_decode_ms = (time.perf_counter() - t0) * 1e3
            self.decode_ms_total += self.last_decode_ms
            if self.live:
                now = self.clock()
                t_first = now if t_first is None else t_first
                t = now - t_first
            elif self.fps > 0:
                t = index / self.fps
            else:
                t = float(self.capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
            self.frames_read += 1
            yield VideoFrame(index=index, t=t, image=rgb)
            index += 1

    def _finish(self) -> None:
        n = self.frames_read
        if self.live:
            self.ended_early = True
            self.end_reason = (f"{self.name} stopped delivering frames after {n} frames "
                               "(disconnected or stream ended)" if n else
                               f"{self.name} opened but delivered no frame")
        elif n == 0:
            self.end_reason = f"{self.name}: no decodable frame (corrupt or truncated video?)"
            self.close()
            raise SourceError(self.end_reason)
        elif self.declared_frames and n < self.declared_frames - 1:
            # Containers often declare one frame more than decodes; a larger gap is damage.
            self.ended_early = True
            self.end_reason = (f"{self.name}: video ended after {n} of {self.declared_frames} "
                               "declared frames (truncated or corrupt)")
        else:
            self.end_reason = f"{self.name}: end of video after {n} frames"
        self.close()
        if self.ended_early and self.strict:
            raise SourceLost(self.end_reason)

    def close(self) -> None:
        if self.capture is not None:
            try:
                self.capture.release()
            except Exception:  # releasing a dead device
                pass


class ImageFolderSource(Source):
    """The images of a folder in natural order (``img2`` before ``img10``).

    Unreadable images are skipped and counted. ``t`` is ``index / fps`` with a nominal
    ``fps`` (30 by default), so windows over an image sequence have a time scale.
    """

    kind = "images"

    def __init__(self, folder: str | os.PathLike[str], fps: float = 30.0) -> None:
        folder = Path(folder)
        super().__init__(str(folder), fps)
        self.folder = folder
        self.files = sorted((p for p in folder.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                            key=_natural_key)
        if not self.files:
            raise SourceError(f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")

    def __iter__(self) -> Iterator[VideoFrame]:
        import cv2

        index = 0
        for path in self.files:
            t0 = time.perf_counter()
            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if img is None or img.size == 0:
                self.skipped += 1
                self.skipped_files.append(path.name)
                continue
            rgb = _to_rgb(img)
            self.last_decode_ms = (time.perf_counter() - t0) * 1e3
            self.decode_ms_total += self.last_decode_ms
            self.frames_read += 1
            yield VideoFrame(index=index, t=index / self.fps, image=rgb)
            index += 1
        skipped = (f"; skipped {self.skipped} unreadable: {', '.join(self.skipped_files[:5])}"
                   + (" ..." if self.skipped > 5 else "")) if self.skipped else ""
        self.end_reason = f"{self.folder}: {self.frames_read} images{skipped}"
        if self.frames_read == 0:
            raise SourceError(f"{self.folder}: none of the {len(self.files)} images could be "
                              "read")


class ReplaySource(Source):
    """Recorded ``*.landmarks.npz`` files, one after another (no MediaPipe needed).

    Timestamps of later files are shifted so that ``t`` keeps increasing.
    """

    kind = "replay"
    landmarks = True

    def __init__(self, paths: Sequence[str | os.PathLike[str]], fps: float = 0.0) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise SourceError("replay: no landmark recordings given")
        for p in self.paths:
            if not p.is_file():
                raise SourceError(f"{p}: no such recording")
        name = str(self.paths[0]) if len(self.paths) == 1 else f"{len(self.paths)} recordings"
        super().__init__(name, fps)
        self.current: Path | None = None
        # The first recording's frame until one is read; each frame carries its own.
        self.coords = recording_coords(load_recording(self.paths[0]), str(self.paths[0]))

    def __iter__(self) -> Iterator[LandmarkFrame]:
        offset = 0.0
        index = 0
        for path in self.paths:
            t0 = time.perf_counter()
            rec = load_recording(path)
            self.current = path
            self.coords = recording_coords(rec, str(path))
            self.decode_ms_total += (time.perf_counter() - t0) * 1e3
            if not self.fps and rec.meta.get("fps"):
                self.fps = float(rec.meta["fps"])
            if len(rec) == 0:
                continue
            start = float(rec.timestamps_ms[0]) / 1000.0
            shift = offset - start if index else 0.0
            last = 0.0
            for f in from_recording(rec, shift):
                last = f.t
                self.frames_read += 1
                yield LandmarkFrame(t=f.t, joints=f.joints, mask=f.mask,
                                    image_size=f.image_size, index=index, coords=f.coords)
                index += 1
            step = 1.0 / self.fps if self.fps else 1.0 / 30.0
            offset = last + step
        self.end_reason = f"{self.name}: replayed {self.frames_read} frames"


def _is_clip_store(path: Path) -> bool:
    """Whether ``path`` looks like a clip store (its ``meta.json`` and ``frames.npy``)."""
    return (path / "meta.json").is_file() and (path / "frames.npy").is_file()


def _natural_key(p: Path) -> list[Any]:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def gstreamer_available() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (pip wheels cannot)."""
    import cv2

    info = cv2.getBuildInformation()
    m = re.search(r"GStreamer:\s*(\S+)", info)
    return bool(m and m.group(1).upper() not in ("NO", "OFF"))


def open_source(spec: str | int | os.PathLike[str], *, fps: float | None = None,
                strict: bool = False, capture_factory: Callable[..., Any] | None = None
                ) -> Source:
    """Open a source from a spec (see the module doc for the forms).

    Args:
        spec: camera index, path, URL or GStreamer pipeline.
        fps: override the frame rate (image folders: nominal rate, default 30).
        strict: raise :class:`SourceLost` when a source stops early.
        capture_factory: replaces ``cv2.VideoCapture`` (tests).

    Raises:
        SourceError: naming the spec: missing file, undecodable video, camera that does
            not open, GStreamer not compiled into OpenCV.
    """
    import cv2

    factory = capture_factory or cv2.VideoCapture
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        return _open_capture(factory, (index,), f"camera {index}", "camera", fps, strict)
    text = os.fspath(spec)
    if text.startswith("/dev/video"):
        return _open_capture(factory, (text,), f"camera {text}", "camera", fps, strict)
    if "!" in text:
        if capture_factory is None and not gstreamer_available():
            raise SourceError("this OpenCV build has no GStreamer support (pip wheels do not); "
                              "use the system OpenCV (e.g. JetPack's python3-opencv) for "
                              f"pipelines: {text[:80]}")
        return _open_capture(factory, (text, cv2.CAP_GSTREAMER), "GStreamer pipeline",
                             "stream", fps, strict)
    if text.lower().startswith(STREAM_SCHEMES):
        return _open_capture(factory, (text, cv2.CAP_FFMPEG), _redact(text), "stream", fps,
                             strict)
    path = Path(text).expanduser()
    if text.endswith(RECORDING_SUFFIX):
        return ReplaySource([path], fps or 0.0)
    if path.is_dir() and _is_clip_store(path):
        raise SourceError(f"{path}: a clip store (training data), not a source; score a model "
                          f"on it with 'skelmtl eval MODEL --data {path}', or stream "
                          "landmark recordings (*.landmarks.npz, from 'skelmtl extract "
                          "--save-landmarks'), a video, images or a camera")
    if path.is_dir():
        recs = sorted(path.glob(f"*{RECORDING_SUFFIX}"), key=_natural_key)
        if recs:
            return ReplaySource(recs, fps or 0.0)
        return ImageFolderSource(path, fps or 30.0)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise SourceError(f"{path}: a single image; put it in a folder to use it as a source")
    return _open_capture(factory, (str(path), cv2.CAP_FFMPEG), str(path), "video", fps, strict)


def _open_capture(factory: Callable[..., Any], args: tuple[Any, ...], name: str, kind: str,
                  fps: float | None, strict: bool) -> CaptureSource:
    try:
        cap = factory(*args)
    except Exception as e:  # OpenCV raises cv2.error for some bad specs
        raise SourceError(f"{name}: cannot open ({e})") from None
    if cap is None or not cap.isOpened():
        hint = {"video": "corrupt, truncated, or an unsupported codec",
                "camera": "no such device, in use, or no permission",
                "stream": "unreachable, wrong URL or pipeline"}[kind]
        raise SourceError(f"{name}: cannot open ({hint})")
    return CaptureSource(cap, name, kind=kind, live=kind != "video", fps=fps, strict=strict)


def _redact(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)
