"""Streaming building blocks: ring buffer, window schedule, smoothing, hysteresis, states.

The :class:`edge.runtime.pipeline.Pipeline` wires these together; each one is small, causal (it
only ever looks at the past) and testable alone.

Window schedule (shared by streaming and batch, so both give the same model inputs):
with window length ``W`` and stride ``S`` from the model's metadata, window ``k`` covers
frames ``[k*S, k*S + W)`` of the stream, and it is run when frame ``k*S + W - 1`` arrives.
:func:`window_bounds` lists them and :func:`batch_inputs` builds the same inputs in one
batch through the one :func:`edge.core.preprocess.preprocess`.

Frame rate: a model with a rate (``meta.preprocess.fps``) counts its window and stride in
frames at that rate, whatever the source delivers: :class:`RateConverter` turns the
stream into frames at ``t0 + k / fps`` (``t0``: the first frame's time) by the same
interpolation as :func:`edge.core.preprocess.resample_rate`, before the ring buffer; for a model
without a rate it passes every frame through unchanged.

A stream shorter than one window (at least :func:`flush_frames` frames) gets one window
over all its frames when it ends (``StreamConfig.flush``), built as training builds a
short clip (:func:`edge.core.preprocess.preprocess`: stretched to the window without a rate,
centred between masked frames with one).

Smoothing and events: per task, the probabilities of successive windows are smoothed
causally (:class:`Smoother`: exponential moving average or a moving mean over the last
windows), and :class:`LabelTracker` turns them into ``begin``/``end`` events with
hysteresis: a label begins when its smoothed probability is the highest and at least
``enter`` for ``min_duration`` seconds, and ends when it falls below ``exit`` (``exit <
enter``, so a probability hovering around one threshold does not flicker) or when another
label begins.

Presence: :class:`PresenceTracker` reports ``no_person`` / ``no_hands`` / ``tracking``
when the mask says so for ``state_frames`` consecutive frames.

Threaded mode: :class:`LatestQueue` is the bounded queue between the thread that reads
the source and the thread that runs inference; when it is full the *oldest* frame is
dropped (the newest frames win) and counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.events import Event
from edge.core.layout import N_POSE, NUM_JOINTS
from edge.core.preprocess import PreprocessConfig, interpolate, preprocess, resample_rate

SMOOTHING = ("ema", "mean", "none")


class StreamConfigError(SkelmtlError, ValueError):
    """Streaming options that do not make sense together."""


@dataclass(frozen=True)
class StreamConfig:
    """Options of the streaming runtime (the window and stride come from the model).

    Attributes:
        smoothing: ``ema`` (exponential moving average), ``mean`` (moving mean over
            ``avg_windows`` windows) or ``none``.
        alpha: EMA weight of the newest window, in (0, 1]; 1 means no smoothing.
        avg_windows: windows averaged by ``mean``.
        enter: smoothed probability at which a label begins.
        exit: smoothed probability below which an active label ends (``exit <= enter``).
        min_duration: seconds a label must stay above ``enter`` before it begins.
        state_frames: consecutive frames a presence state must last before it is reported.
        ignore_labels: labels that never produce events (e.g. a background class); they
            still end the label they replace.
        stride: frames between windows; ``None`` takes the model's ``meta.stride``.
        queue_size: frames buffered between the reader and inference in threaded mode.
        drop_report_s: at most one ``drop`` event per this many seconds of source time.
        flush: a stream that ends before its first window (shorter than ``window``
            frames, at least :func:`flush_frames` of them) gets one window over all its
            frames when it finishes, preprocessed as training preprocesses a short clip.
    """

    smoothing: str = "ema"
    alpha: float = 0.5
    avg_windows: int = 3
    enter: float = 0.6
    exit: float = 0.4
    min_duration: float = 0.0
    state_frames: int = 3
    ignore_labels: tuple[str, ...] = ()
    stride: int | None = None
    queue_size: int = 8
    drop_report_s: float = 1.0
    flush: bool = True

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHING:
            raise StreamConfigError(f"smoothing {self.smoothing!r} not in {SMOOTHING}")
        if not 0.0 < self.alpha <= 1.0:
            raise StreamConfigError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.avg_windows < 1:
            raise StreamConfigError(f"avg_windows must be >= 1, got {self.avg_windows}")
        if not 0.0 <= self.exit <= self.enter <= 1.0:
            raise StreamConfigError(f"need 0 <= exit <= enter <= 1, got exit={self.exit}, "
                                    f"enter={self.enter}")
        if not self.min_duration >= 0 or math.isinf(self.min_duration):  # NaN fails too
            raise StreamConfigError(f"min_duration must be a finite number >= 0, got "
                                    f"{self.min_duration}")
        if not self.drop_report_s >= 0:
            raise StreamConfigError(f"drop_report_s must be >= 0, got {self.drop_report_s}")
        if self.state_frames < 1:
            raise StreamConfigError(f"state_frames must be >= 1, got {self.state_frames}")
        if self.stride is not None and self.stride < 1:
            raise StreamConfigError(f"stride must be >= 1, got {self.stride}")
        if self.queue_size < 1:
            raise StreamConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        object.__setattr__(self, "ignore_labels", tuple(self.ignore_labels))


# --------------------------------------------------------------------------------------
# Frames and the ring buffer
# --------------------------------------------------------------------------------------
class FrameError(SkelmtlError, ValueError):
    """A frame that does not fit the layout (wrong shape, too few coordinates)."""


def as_frame(item: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """``(joints (75, C), mask (75,), t)`` from a frame-like object.

    Accepts any object with ``joints``, ``mask`` and ``t`` attributes (the landmark front
    end's ``LandmarkFrame``), or a tuple ``(joints, mask, t)``.

    Raises:
        FrameError: neither form, or shapes that do not fit 75 joints.
    """
    if hasattr(item, "joints") and hasattr(item, "mask") and hasattr(item, "t"):
        joints, mask, t = item.joints, item.mask, item.t
    elif isinstance(item, tuple) and len(item) == 3:
        joints, mask, t = item
    else:
        raise FrameError(f"a frame is an object with t/joints/mask or a tuple (joints, mask, "
                         f"t); got {type(item).__name__}")
    joints, mask = _numeric(joints, "joints"), _numeric(mask, "mask")
    joints = joints.astype(np.float32, copy=False)
    mask = mask.astype(bool, copy=False)
    if joints.ndim != 2 or joints.shape[0] != NUM_JOINTS:
        raise FrameError(f"frame joints must be ({NUM_JOINTS}, C), got {joints.shape}")
    if mask.shape != (NUM_JOINTS,):
        raise FrameError(f"frame mask must be ({NUM_JOINTS},), got {mask.shape}")
    if isinstance(t, (str, bytes, complex)) or isinstance(t, np.generic) and \
            np.asarray(t).dtype.kind not in "biuf":
        raise FrameError(f"frame time t must be a real number, got {type(t).__name__} {t!r}")
    try:
        return joints, mask, float(t)
    except (TypeError, ValueError):
        raise FrameError(f"frame time t must be a real number, got {type(t).__name__} "
                         f"{t!r}") from None


def _numeric(value: Any, what: str) -> np.ndarray:
    """``value`` as a real-valued array; FrameError for text, complex or object arrays.

    numpy would turn ``"0.5"`` strings into numbers and drop imaginary parts with only a
    warning: both would hide a bug in the caller's landmark source.
    """
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise FrameError(f"frame {what} is not an array ({e})") from None
    if a.dtype.kind not in "biuf":
        raise FrameError(f"frame {what} must be real numbers, got dtype {a.dtype}")
    return a


class RingBuffer:
    """The last ``capacity`` frames, in preallocated arrays (memory stays flat forever).

    Shapes: frames ``(capacity, 75, C)`` float32, mask ``(capacity, 75)`` bool, times
    ``(capacity,)`` float64.
    """

    def __init__(self, capacity: int, channels: int, num_joints: int = NUM_JOINTS) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.channels = channels
        self._x = np.zeros((capacity, num_joints, channels), np.float32)
        self._m = np.zeros((capacity, num_joints), bool)
        self._t = np.zeros(capacity, np.float64)
        self.total = 0  # frames ever pushed

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    def push(self, joints: np.ndarray, mask: np.ndarray, t: float) -> None:
        """Append one frame; joints beyond ``channels`` coordinates are not kept.

        Non-finite joints are stored masked and zero, so no NaN ever reaches a window.
        """
        i = self.total % self.capacity
        x = joints[:, : self.channels]
        ok = np.isfinite(x).all(axis=1)
        ok &= mask
        self._x[i] = x
        self._x[i][~ok] = 0.0
        self._m[i] = ok
        self._t[i] = t
        self.total += 1

    def last(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the last ``n`` frames, oldest first: ``(n, V, C)``, ``(n, V)``, ``(n,)``."""
        if not 0 < n <= len(self):
            raise ValueError(f"asked for {n} frames, the buffer holds {len(self)}")
        idx = (np.arange(self.total - n, self.total)) % self.capacity
        return self._x[idx], self._m[idx], self._t[idx]

    def clear(self) -> None:
        self.total = 0


class RateConverter:
    """The stream at the model's frame rate (``cfg.fps``), frame by frame.

    Sample ``k`` is taken at ``t0 + k / fps`` (``t0``: the first frame's time) once a
    frame at or after that time has arrived, with :func:`edge.core.preprocess.interpolate`
    between the two frames around it: the numbers :func:`edge.core.preprocess.resample_rate`
    gives for the whole clip. A model without a rate gets every frame unchanged. A frame
    whose time is not after the previous one's cannot be placed in time: it is skipped
    and counted in :attr:`skipped`. A gap longer than one window (a stalled camera) is not
    filled with made-up motion: the grid starts again at the frame after it
    (:attr:`restarts`).

    Frames: ``joints (75, C)`` float32 (only the first ``cfg.dims`` coordinates are kept
    when resampling), ``mask (75,)`` bool; non-finite joints count as missing.
    """

    def __init__(self, cfg: PreprocessConfig) -> None:
        self.fps = cfg.fps
        self.dims = cfg.dims
        self.max_gap = cfg.window / cfg.fps if cfg.fps else math.inf
        self.skipped = self.restarts = 0
        self.reset()

    def reset(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray, float] | None = None
        self._t0 = 0.0
        self._k = 0

    def push(self, joints: np.ndarray, mask: np.ndarray, t: float
             ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """The frames at the model's rate that this source frame completes (0, 1 or more)."""
        if self.fps is None:
            return [(joints, mask, t)]
        x = np.asarray(joints, np.float32)[:, : self.dims]
        m = np.asarray(mask, bool) & np.isfinite(x).all(-1)
        x = np.where(m[:, None], x, 0.0).astype(np.float32)
        prev = self._prev
        if prev is not None and not t > prev[2]:
            self.skipped += 1
            return []
        if prev is not None and t - prev[2] > self.max_gap:
            self.restarts += 1
            prev, self._k = None, 0
        if prev is None:
            self._t0 = t
        out = []
        while True:
            g = self._t0 + self._k / self.fps
            if g > t:
                break
            if prev is None or g == t:
                y, ym = x, m
            else:
                y, ym = interpolate(prev[0], prev[1], x, m,
                                    np.float64((g - prev[2]) / (t - prev[2])))
            out.append((y, ym, g))
            self._k += 1
        self._prev = (x, m, t)
        return out


def window_due(frames_seen: int, window: int, stride: int) -> bool:
    """True when the frame just pushed (the ``frames_seen``-th) completes a window."""
    return frames_seen >= window and (frames_seen - window) % stride == 0


def flush_frames(window: int) -> int:
    """Fewest frames a stream shorter than one window needs for its end-of-stream window.

    Two: any segment with motion in it, however short, gets its window (short actions at
    low frame rates used to be dropped when they were under half a window).
    """
    return 2


def window_bounds(n_frames: int, window: int, stride: int, flush: bool = False
                  ) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of every window the stream runs over ``n_frames`` frames.

    With ``flush``, a stream shorter than one window (but at least
    :func:`flush_frames` long) gets one window over all its frames, as
    :meth:`edge.runtime.pipeline.Pipeline.finish` runs it.
    """
    bounds = [(s, s + window) for s in range(0, n_frames - window + 1, stride)]
    if flush and not bounds and n_frames >= flush_frames(window):
        bounds = [(0, n_frames)]
    return bounds


def batch_inputs(frames: np.ndarray, mask: np.ndarray, cfg: PreprocessConfig,
                 stride: int, flush: bool = False, fps: float | None = None) -> np.ndarray:
    """Every streaming window of a clip at once, through the one preprocessing function.

    Args:
        frames: ``(T, 75, C)``; mask: ``(T, 75)``; cfg: the model's preprocessing; stride:
            frames between windows (at the model's rate); flush: as :func:`window_bounds`;
            fps: the clip's rate, for a model with a rate (None: the model's rate already).

    Returns:
        ``(N, C', W, 75)`` float32, N = ``len(window_bounds(T', W, stride, flush))``, T'
        the clip's frames at the model's rate (``T`` for a model without one).
    """
    frames = np.asarray(frames, np.float32)[..., : cfg.dims]
    mask = np.asarray(mask, bool) & np.isfinite(frames).all(-1)
    frames = np.where(mask[..., None], frames, 0.0).astype(np.float32)
    if cfg.fps is not None and fps is not None and fps != cfg.fps and len(frames):
        # What RateConverter feeds the ring buffer when the frames come at 1 / fps.
        frames, mask = resample_rate(frames, mask, np.arange(len(frames)) / fps, cfg.fps)
    bounds = window_bounds(len(frames), cfg.window, stride, flush)
    out = np.zeros((len(bounds), cfg.channels, cfg.window, NUM_JOINTS), np.float32)
    for i, (a, b) in enumerate(bounds):
        out[i] = preprocess(frames[a:b], mask[a:b], cfg)
    return out


# --------------------------------------------------------------------------------------
# Smoothing and hysteresis
# --------------------------------------------------------------------------------------
def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float64 for stable sums."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


class Smoother:
    """Causal smoothing of successive probability vectors ``(K,)``.

    ``ema``: ``s = alpha * p + (1 - alpha) * s_prev`` (the first window initialises ``s``);
    ``mean``: mean of the last ``size`` windows; ``none``: ``p`` itself.
    """

    def __init__(self, kind: str = "ema", alpha: float = 0.5, size: int = 3) -> None:
        if kind not in SMOOTHING:
            raise StreamConfigError(f"smoothing {kind!r} not in {SMOOTHING}")
        self.kind, self.alpha, self.size = kind, alpha, size
        self._s: np.ndarray | None = None
        self._hist: deque[np.ndarray] = deque(maxlen=size)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, np.float64)
        if self.kind == "none":
            return p
        if self.kind == "mean":
            self._hist.append(p)
            return np.asarray(np.mean(self._hist, axis=0))
        self._s = p.copy() if self._s is None else self.alpha * p + (1 - self.alpha) * self._s
        return self._s.copy()

    def reset(self) -> None:
        self._s = None
        self._hist.clear()


class LabelTracker:
    """Hysteresis over one task's smoothed probabilities -> ``begin``/``end`` events."""

    def __init__(self, task: str, labels: Sequence[str], enter: float, exit: float,
                 min_duration: float = 0.0, ignore: Iterable[str] = ()) -> None:
        self.task, self.labels = task, tuple(labels)
        self.enter, self.exit, self.min_duration = enter, exit, min_duration
        self.ignored = {i for i, name in enumerate(self.labels) if name in set(ignore)}
        self.active: int | None = None
        self._start = self._last = self._peak = 0.0
        self._cand: int | None = None
        self._cand_since = self._cand_start = 0.0

    @property
    def active_label(self) -> str | None:
        return None if self.active is None else self.labels[self.active]

    def update(self, p: np.ndarray, t_centre: float, t: float, frame: int,
               dropped: int = 0) -> list[Event]:
        """Feed one window's smoothed probabilities ``(K,)``.

        Args:
            p: smoothed probabilities of this task's labels.
            t_centre: source time of the window's centre frame (event start/end estimates).
            t, frame: time and index of the frame being processed (when it was decided).
            dropped: running count of dropped frames, copied into events.
        """
        if len(p) != len(self.labels):
            raise ValueError(f"{self.task}: {len(p)} probabilities for {len(self.labels)} labels")
        events: list[Event] = []
        if self.active is not None:
            if p[self.active] < self.exit:
                events += self.close("below_exit", t, frame, dropped)
            else:
                self._last = t_centre
                self._peak = max(self._peak, float(p[self.active]))
        top = int(np.argmax(p))
        if p[top] >= self.enter and top != self.active:
            if self._cand != top:
                self._cand, self._cand_since, self._cand_start = top, t_centre, t_centre
            if t_centre - self._cand_since >= self.min_duration:
                if self.active is not None:
                    events += self.close("replaced", t, frame, dropped)
                self.active, self._cand = top, None
                self._start, self._last, self._peak = self._cand_start, t_centre, float(p[top])
                if top not in self.ignored:
                    events.append(Event("begin", t, frame, task=self.task,
                                        label=self.labels[top], confidence=float(p[top]),
                                        start=self._start, dropped=dropped))
        else:
            self._cand = None
        return events

    def close(self, reason: str, t: float, frame: int, dropped: int = 0) -> list[Event]:
        """End the active label (if any) for ``reason``; returns its ``end`` event."""
        events: list[Event] = []
        if self.active is not None and self.active not in self.ignored:
            events.append(Event("end", t, frame, task=self.task,
                                label=self.labels[self.active], confidence=self._peak,
                                start=self._start, end=self._last, dropped=dropped,
                                reason=reason))
        self.active, self._cand = None, None
        return events


def presence_state(mask: np.ndarray) -> str:
    """``no_person`` (nothing), ``no_hands`` (a body without hands) or ``tracking``."""
    body = bool(mask[:N_POSE].any())
    hands = bool(mask[N_POSE:].any())
    if not body and not hands:
        return "no_person"
    return "tracking" if hands else "no_hands"


class PresenceTracker:
    """Debounced presence state; emits a ``state`` event when it changes.

    The first frame's state is reported at once; later changes once they have lasted
    ``state_frames`` consecutive frames (hands are missed in single frames often).
    """

    def __init__(self, state_frames: int = 3) -> None:
        self.state_frames = state_frames
        self.state: str | None = None
        self._pending: str | None = None
        self._count = 0

    def update(self, mask: np.ndarray, t: float, frame: int, dropped: int = 0) -> list[Event]:
        s = presence_state(mask)
        if self.state is None or (s == self.state):
            self._pending, self._count = None, 0
            if self.state is None:
                self.state = s
                return [Event("state", t, frame, state=s, dropped=dropped)]
            return []
        if s != self._pending:
            self._pending, self._count = s, 0
        self._count += 1
        if self._count >= self.state_frames:
            self.state, self._pending, self._count = s, None, 0
            return [Event("state", t, frame, state=s, dropped=dropped)]
        return []


# --------------------------------------------------------------------------------------
# Threaded mode
# --------------------------------------------------------------------------------------
T = TypeVar("T")


class Closed(Exception):
    """Raised by :meth:`LatestQueue.get` once the queue is closed and empty."""


class LatestQueue(Generic[T]):
    """Bounded thread-safe FIFO where the newest items win.

    ``put`` never blocks: when the queue holds ``maxsize`` items the oldest is discarded
    and :attr:`dropped` grows. ``close(error)`` ends the stream; ``get`` then drains what
    is left and raises :class:`Closed` (or re-raises ``error`` in the consumer's thread).
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.dropped = 0
        self._q: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: T) -> bool:
        """Add ``item``; returns False when an older item had to be dropped for it."""
        with self._cond:
            if self._closed:
                raise Closed("put on a closed queue")
            dropped = len(self._q) >= self.maxsize
            if dropped:
                self._q.popleft()
                self.dropped += 1
            self._q.append(item)
            self._cond.notify()
            return not dropped

    def get(self, timeout: float | None = None) -> T:
        """The oldest item; blocks until one arrives or the queue is closed.

        Raises:
            Closed: closed and drained. The producer's error, if it closed with one.
            TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._q and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no frame within the timeout")
                self._cond.wait(left)
            if self._q:
                return self._q.popleft()
            if self._error is not None:
                raise self._error
            raise Closed("queue closed")

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._q)


def threaded_reader(source: Iterable[T], maxsize: int, stop: threading.Event | None = None,
                    poll_s: float = 0.1) -> tuple[Iterator[T], LatestQueue[T],
                                                  threading.Event]:
    """Read ``source`` in a daemon thread into a :class:`LatestQueue`.

    Args:
        source: the frames.
        maxsize: queue length (newest frames win).
        stop: an event that ends both the reader and ``items`` when set (a new one when
            None); ``items`` notices it within ``poll_s`` even while no frame arrives (a
            camera that stalls must not delay a stop).
        poll_s: how often a waiting ``items`` looks at ``stop``.

    Returns:
        ``(items, queue, stop)``: iterate ``items`` in the consumer thread (it ends when the
        source ends and re-raises the source's error), read ``queue.dropped`` for the drop
        count, set ``stop`` to make the reader stop early.
    """
    q: LatestQueue[T] = LatestQueue(maxsize)
    stop = stop if stop is not None else threading.Event()

    def read() -> None:
        try:
            for item in source:
                if stop.is_set():
                    break
                q.put(item)
        except BaseException as e:  # handed to the consumer thread, raised there
            q.close(e)
            return
        q.close()

    thread = threading.Thread(target=read, name="skelmtl-reader", daemon=True)
    thread.start()

    def items() -> Iterator[T]:
        try:
            while not stop.is_set():
                try:
                    item = q.get(timeout=poll_s)
                except TimeoutError:
                    continue
                except Closed:
                    return
                yield item
        finally:
            stop.set()

    return items(), q, stop


__all__ = ["SMOOTHING", "Closed", "FrameError", "LabelTracker", "LatestQueue",
           "PresenceTracker", "RateConverter", "RingBuffer", "Smoother", "StreamConfig", "StreamConfigError",
           "as_frame", "batch_inputs", "flush_frames", "presence_state", "softmax", "threaded_reader",
           "window_bounds", "window_due"]
