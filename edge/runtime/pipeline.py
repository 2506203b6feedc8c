"""The public streaming API: landmark frames in, recognised actions and gestures out.

Usage::

    from edge.runtime.pipeline import Pipeline
    from edge.frontend.sources import open_source

    with Pipeline.from_model("model.int8.onnx", task="auto") as pipe:
        for event in pipe.run(open_source("clip.landmarks.npz")):
            print(event.to_json())

    # or frame by frame, from your own landmark source:
    events = pipe.push(frame)          # a LandmarkFrame, or (joints (75, 3), mask (75,), t)

What happens per frame (:meth:`Pipeline.push`): the presence state is updated
(``no_person`` / ``no_hands`` / ``tracking``), the frame enters a ring buffer, and every
``stride`` frames (from the model's metadata) the last ``window`` frames go through
:func:`edge.core.preprocess.preprocess`, the router picks the task (:mod:`edge.runtime.router`), the
backend runs only the graph(s) needed, the routed task's probabilities are smoothed and
turned into ``begin``/``end`` events with hysteresis (:mod:`edge.runtime.stream`). Windows are
skipped while nobody is in view. Per-stage latencies (``landmarks`` when the pipeline
runs MediaPipe itself, ``preprocess``, ``model``, ``route``) are kept in
:attr:`Pipeline.latency`.

Thread safety: a :class:`Pipeline` is **not** thread-safe: call :meth:`push`,
:meth:`run` and :meth:`finish` from one thread (one pipeline per camera). :meth:`run` in
threaded mode (the default for live sources) reads the source in a background thread
into a bounded queue whose newest frames win (the drop count is reported in events and
:meth:`stats`); everything else stays in the calling thread, so it is safe. Backends may
be shared by several pipelines: ONNX Runtime sessions are thread-safe and the TensorRT
and torch backends lock around inference.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends import load_backend
from edge.backends.base import Backend, check_output_widths
from edge.core.clipstore import MAX_ABS_COORD  # the same bound as the stores training reads
from edge.core.errors import Interrupted, SkelmtlError, signal_name
from edge.core.events import Event
from edge.core.metadata import TASK_OUTPUT, MetadataError, ModelMeta, logits_name
from edge.core.preprocess import preprocess
from edge.frontend.policy import FrontEndPolicy, policy_for_task
from edge.runtime.router import RouteDecision, Router
from edge.runtime.stream import (
    FrameError,
    LabelTracker,
    PresenceTracker,
    RateConverter,
    RingBuffer,
    Smoother,
    StreamConfig,
    as_frame,
    batch_inputs,
    flush_frames,
    softmax,
    threaded_reader,
    window_due,
)

STAGES = ("landmarks", "preprocess", "model", "route")
# Files tried, in order, when ``from_model`` is given a folder (the bundled model's layout).
MODEL_FILES = ("model.int8.onnx", "model.onnx", "model.int8.engine", "model.engine")
_ROUTER_OPTIONS = ("hand_task", "body_task", "min_hand_fraction", "motion_ratio", "task_alpha")

logger = logging.getLogger(__name__)


class PipelineError(SkelmtlError, ValueError):
    """Graphs that do not belong together, or options the pipeline does not know."""


# --------------------------------------------------------------------------------------
# Latency counters
# --------------------------------------------------------------------------------------
class StageTimes:
    """Milliseconds of one stage: count, total, last, and the recent ones for percentiles."""

    def __init__(self, keep: int = 2048) -> None:
        self.count = 0
        self.total_ms = 0.0
        self.last_ms = 0.0
        self.recent: deque[float] = deque(maxlen=keep)

    def add(self, ms: float) -> None:
        self.count += 1
        self.total_ms += ms
        self.last_ms = ms
        self.recent.append(ms)

    def to_dict(self) -> dict[str, float | int]:
        r = np.asarray(self.recent, np.float64)
        p50, p95 = (np.percentile(r, (50, 95)).tolist() if len(r) else (0.0, 0.0))
        return {"count": self.count, "mean_ms": self.total_ms / max(1, self.count),
                "p50_ms": float(p50), "p95_ms": float(p95), "last_ms": self.last_ms}


class Latency:
    """Per-stage latency counters (:data:`STAGES`); memory bounded by ``keep`` per stage."""

    def __init__(self, stages: Sequence[str] = STAGES) -> None:
        self.stages = {s: StageTimes() for s in stages}

    def add(self, stage: str, ms: float) -> None:
        self.stages.setdefault(stage, StageTimes()).add(ms)

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        return {k: v.to_dict() for k, v in self.stages.items() if v.count}

    def table(self) -> str:
        """A small text table, one line per stage that ran."""
        lines = [f"{'stage':<11} {'n':>6} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}"]
        for k, d in self.to_dict().items():
            lines.append(f"{k:<11} {d['count']:>6} {d['mean_ms']:>8.2f} {d['p50_ms']:>8.2f} "
                         f"{d['p95_ms']:>8.2f}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowResult:
    """What one window produced.

    Attributes:
        frame, t: index and time of the frame that completed the window.
        t_centre: time of the window's centre frame.
        route: the router's decision (``route.task`` is the routed task).
        outputs: the raw outputs of the graph(s) that ran, ``name -> (K,)`` logits.
        probs: softmax of the routed task's logits ``(K,)``.
        smoothed: the smoothed probabilities ``(K,)`` the hysteresis saw.
        label, confidence: argmax of ``smoothed`` and its value.
        active: the routed task's active label (after hysteresis), or None.
    """

    frame: int
    t: float
    t_centre: float
    route: RouteDecision
    outputs: dict[str, np.ndarray]
    probs: np.ndarray
    smoothed: np.ndarray
    label: str
    confidence: float
    active: str | None

    @property
    def task(self) -> str:
        return self.route.task


@dataclass(frozen=True)
class Step:
    """One frame through :meth:`Pipeline.steps`: what the overlay and the CLI draw.

    Attributes:
        frame: the landmark frame (``None`` for the final step that ends the stream).
        image: the RGB image it came from, when the source gave images.
        events: events decided at this frame.
        result: the latest window result so far (not necessarily from this frame).
        state: the presence state.
        dropped: frames dropped so far.
    """

    frame: Any
    image: np.ndarray | None
    events: list[Event]
    result: WindowResult | None
    state: str | None
    dropped: int = 0
    new_window: bool = False


# --------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------
def resolve_model_paths(model: str | Path | Sequence[str | Path]) -> list[Path]:
    """Model files for a path, a folder or a list (per-task graphs).

    A folder holds either one model (the first of :data:`MODEL_FILES` present: the
    INT8 model is preferred) or per-task graphs named ``model.<task>.onnx``.

    Raises:
        PipelineError: a missing file or a folder without a model.
    """
    if isinstance(model, (str, Path)):
        paths = [Path(model)]
        if paths[0].is_dir():
            folder = paths[0]
            for name in MODEL_FILES:
                if (folder / name).is_file():
                    return [folder / name]
            per_task = sorted(folder.glob("model.*.onnx"))
            if per_task:
                return per_task
            raise PipelineError(f"{folder}: no model file (looked for {', '.join(MODEL_FILES)} "
                                f"and model.<task>.onnx)")
    else:
        paths = [Path(p) for p in model]
    if not paths:
        raise PipelineError("no model file given")
    for p in paths:
        if not p.exists():
            raise PipelineError(f"{p}: no such model file")
    return paths


def check_graphs(graphs: Sequence[Backend]) -> ModelMeta:
    """The shared metadata of one or several (per-task) graphs.

    Raises:
        MetadataError: graphs of different models (tasks, labels, preprocessing, stride,
            task head differ) or two graphs computing the same task.
    """
    if not graphs:
        raise PipelineError("no graph given")
    first = graphs[0].meta
    for task, labels in first.labels.items():
        # A null or empty label would give begin/end events that read_jsonl rejects.
        bad = [x for x in labels if not isinstance(x, str) or not x]
        if bad or len(set(labels)) != len(labels):
            why = f"labels {bad!r} are not names" if bad else "a label appears twice"
            raise MetadataError(f"{graphs[0].path}: task {task!r}: {why} (labels: "
                                f"{list(labels)!r})")
    seen: dict[str, Path] = {}
    for g in graphs:
        m = g.meta
        for attr in ("tasks", "labels", "preprocess", "stride", "has_task_head"):
            if getattr(m, attr) != getattr(first, attr):
                raise MetadataError(f"{g.path} and {graphs[0].path} are not graphs of one "
                                    f"model: their {attr} differ")
        for t in m.graph_tasks:
            if t in seen:
                raise MetadataError(f"{g.path} and {seen[t]} both compute task {t!r}")
            seen[t] = g.path
    return first


class Pipeline:
    """Streaming recognition over landmark frames (see the module docstring).

    Args:
        graphs: one backend, or several per-task backends of one model (graphs of tasks
            the router can never choose are ignored; the caller keeps ownership).
        task: a task of the model, or ``"auto"`` (the router decides per window).
        config: streaming options (:class:`edge.runtime.stream.StreamConfig`).
        router_options: ``hand_task``, ``body_task``, ``min_hand_fraction``,
            ``motion_ratio``, ``task_alpha`` (see :class:`edge.runtime.router.Router`).

    Raises:
        RouterError: a task the model does not have.
        PipelineError, MetadataError: graphs that do not belong together, or no graph
            for a task the router may choose.
    """

    def __init__(self, graphs: Backend | Sequence[Backend], task: str = "auto",
                 config: StreamConfig | None = None,
                 router_options: Mapping[str, Any] | None = None) -> None:
        graphs = [graphs] if isinstance(graphs, Backend) else list(graphs)
        self.meta = check_graphs(graphs)
        self.config = config or StreamConfig()
        self.router = Router(self.meta, task, **dict(router_options or {}))
        self.task = task
        needed = self.router.tasks_needed
        self._graph_for: dict[str, Backend] = {}
        self.graphs: list[Backend] = []
        for g in graphs:
            if any(t in needed for t in g.meta.graph_tasks):
                self.graphs.append(g)
                for t in g.meta.graph_tasks:
                    self._graph_for[t] = g
        missing = [t for t in needed if t not in self._graph_for]
        if missing:
            raise PipelineError(f"no graph computes task(s) {missing}; given graphs for "
                                f"{sorted(t for g in graphs for t in g.meta.graph_tasks)}")
        known = {lab for labels in self.meta.labels.values() for lab in labels}
        unknown = [lab for lab in self.config.ignore_labels if lab not in known]
        if unknown:
            # A typo here would silently ignore nothing.
            raise PipelineError(f"{graphs[0].path}: ignore_labels {unknown} are not labels of "
                                f"this model; it has {sorted(known)}")
        self.window = self.meta.window
        self.stride = self.config.stride or self.meta.stride
        self.buffer = RingBuffer(self.window, self.meta.preprocess.dims)
        self.rate = RateConverter(self.meta.preprocess)  # frames at the model's rate
        self.latency = Latency()
        c = self.config
        self._trackers = {t: LabelTracker(t, self.meta.labels[t], c.enter, c.exit,
                                          c.min_duration, c.ignore_labels) for t in needed}
        self._smoothers = {t: Smoother(c.smoothing, c.alpha, c.avg_windows) for t in needed}
        self.presence = PresenceTracker(c.state_frames)
        self.frames = 0
        self.windows = 0
        self.skipped_windows = 0
        self.dropped = 0
        self._last_drop_t: float | None = None
        self._reported_dropped = 0
        self._routed: str | None = None
        self.last_result: WindowResult | None = None
        self.finished = False
        self.owns_graphs = False  # from_model opened them: close() closes them
        self.invalid_joints = 0  # present joints dropped: non-finite or beyond MAX_ABS_COORD
        self.invalid_times = 0  # frames whose time was not a finite number
        self._last_t: float | None = None
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._reader_stop: threading.Event | None = None
        self._checked: set[int] = set()  # graphs whose output widths were checked

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: str | Path | Sequence[str | Path], task: str = "auto",
                   backend: str = "auto", **options: Any) -> Pipeline:
        """Open a model file (or folder, or per-task files) and build a pipeline.

        Args:
            model: see :func:`resolve_model_paths`.
            task: a task name of the model, or ``"auto"``.
            backend: ``auto`` (by suffix), ``onnxruntime``, ``tensorrt``, ``torch``.
            **options: :class:`edge.runtime.stream.StreamConfig` fields (``enter``, ``alpha``, ...),
                router options (``hand_task``, ``motion_ratio``, ...), ``config=`` a whole
                StreamConfig; everything else goes to the backend (``providers``,
                ``intra_op_threads``, ``cuda``, ...).

        Raises:
            BackendError, MetadataError, RouterError, PipelineError: naming the file and
                the problem.
        """
        config = options.pop("config", None)
        stream_keys = {f.name for f in fields(StreamConfig)}
        stream_opts = {k: options.pop(k) for k in list(options) if k in stream_keys}
        router_opts = {k: options.pop(k) for k in list(options) if k in _ROUTER_OPTIONS}
        if config is not None and stream_opts:
            raise PipelineError(f"give either config= or stream options, not both "
                                f"({sorted(stream_opts)})")
        config = config or StreamConfig(**stream_opts)
        paths = resolve_model_paths(model)
        graphs: list[Backend] = []
        try:
            for p in paths:
                graphs.append(load_backend(p, backend, **options))
            pipe = cls(graphs, task, config, router_opts)
        except BaseException:
            for g in graphs:
                g.close()
            raise
        for g in graphs:
            if g not in pipe.graphs:
                g.close()  # a fixed task never runs the other tasks' graphs: free them
        pipe.owns_graphs = True
        return pipe

    # -- streaming ------------------------------------------------------------------------
    def push(self, frame: Any, *, dropped: int | None = None) -> list[Event]:
        """Add one frame; returns the events it caused (often none).

        Args:
            frame: a ``LandmarkFrame`` (any object with ``t``, ``joints`` ``(75, C)``,
                ``mask`` ``(75,)``), or a tuple ``(joints, mask, t)``; ``t`` in seconds.
                NaN joints count as missing.
            dropped: running count of frames dropped before they reached the pipeline
                (the threaded reader sets it).

        Raises:
            FrameError: a frame of the wrong shape, or with fewer coordinates than the
                model uses.
            BackendError: inference failed.
        """
        if self.finished:
            raise PipelineError("this pipeline's stream was finished; call reset() first")
        joints, mask, t = as_frame(frame)
        if joints.shape[1] < self.meta.preprocess.dims:
            raise FrameError(f"the model uses {self.meta.preprocess.dims}D joints, the frame "
                             f"has {joints.shape[1]} coordinates")
        joints, mask, t = self._sanitize(joints, mask, t)
        index = self.frames
        self.frames += 1
        if dropped is not None:
            self.dropped = dropped
        events = self._drop_event(t, index)
        before = self.presence.state
        events += self.presence.update(mask, t, index, self.dropped)
        if self.presence.state == "no_person" and before != "no_person":
            events += self._close_all("no_person", t, index)
        for joints_r, mask_r, t_r in self.rate.push(joints, mask, t):
            self.buffer.push(joints_r, mask_r, t_r)
            if window_due(self.buffer.total, self.window, self.stride):
                if self.presence.state == "no_person":
                    self.skipped_windows += 1
                else:
                    events += self._run_window(t, index)
        return events

    def _sanitize(self, joints: np.ndarray, mask: np.ndarray, t: float
                  ) -> tuple[np.ndarray, np.ndarray, float]:
        """Joints that are no landmark become missing; a time that is no number is replaced.

        A joint with a non-finite coordinate or one beyond :data:`MAX_ABS_COORD` is masked
        (and zeroed, as the clip store does): one joint at 3e38 would otherwise dominate the
        window's scale and give a confident event. Such present joints are counted in
        :attr:`invalid_joints`. A NaN or infinite ``t`` takes the last good time (0 at the
        start), counted in :attr:`invalid_times`, so that events keep a number for ``t``.
        """
        ok = np.isfinite(joints).all(axis=1) & (np.abs(joints) <= MAX_ABS_COORD).all(axis=1)
        if not ok.all():
            self.invalid_joints += int((mask & ~ok).sum())
            mask = mask & ok
            joints = np.where(ok[:, None], joints, np.float32(0.0))
        if not math.isfinite(t):
            self.invalid_times += 1
            t = self._last_t if self._last_t is not None else 0.0
        self._last_t = t
        return joints, mask, t

    def stop(self, reason: str = "stopped") -> None:
        """Ask :meth:`steps` / :meth:`run` to end the stream after the current frame.

        Safe from a signal handler or another thread: it only sets a flag. The stream then
        ends as a finished one does (open labels closed with ``end_of_stream``, then a
        ``stream`` event with state ``ended`` and this ``reason``). See
        :func:`stop_on_signals` for SIGTERM and SIGINT.
        """
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
        reader = self._reader_stop
        if reader is not None:
            reader.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _drop_event(self, t: float, index: int, force: bool = False) -> list[Event]:
        if self.dropped <= self._reported_dropped:
            return []
        if not force and self._last_drop_t is not None \
                and t - self._last_drop_t < self.config.drop_report_s:
            return []
        new = self.dropped - self._reported_dropped
        self._reported_dropped, self._last_drop_t = self.dropped, t
        return [Event("drop", t, index, dropped=self.dropped,
                      reason=f"inference fell behind: {new} frame(s) dropped (newest kept)")]

    def _close_all(self, reason: str, t: float, index: int) -> list[Event]:
        events: list[Event] = []
        for task, tr in self._trackers.items():
            events += tr.close(reason, t, index, self.dropped)
            self._smoothers[task].reset()
        self.router.reset()
        self._routed = None
        return events

    def _infer(self, task: str, x: np.ndarray) -> dict[str, np.ndarray]:
        graph = self._graph_for[task]
        outs = graph.infer(x)
        if id(graph) not in self._checked:
            # Widths a backend could not see at load (a TensorRT engine's dynamic ones, a
            # third-party backend's) are checked at the first window: a clear error
            # instead of a wrong label.
            check_output_widths(graph.path, graph.meta,
                                {k: v.shape[-1] for k, v in outs.items() if v.ndim == 2})
            self._checked.add(id(graph))
        return outs

    def _run_window(self, t: float, index: int, n: int | None = None) -> list[Event]:
        t0 = time.perf_counter()
        n = n or self.window
        frames, mask, ts = self.buffer.last(n)
        x = preprocess(frames, mask, self.meta.preprocess)[None]
        t1 = time.perf_counter()
        decision = self.router.before_inference(frames, mask)
        if decision is None:  # the task head decides: run a graph that has it first
            outs = self._infer(self.router.first_graph_task(), x)
            t_model = time.perf_counter()
            decision = self.router.from_task_head(outs[TASK_OUTPUT][0])
            t_route = time.perf_counter()
            if logits_name(decision.task) not in outs:
                outs = {**outs, **self._infer(decision.task, x)}
            t2 = time.perf_counter()
            model_ms = (t_model - t1 + t2 - t_route) * 1e3
            route_ms = (t_route - t_model) * 1e3
        else:
            outs = self._infer(decision.task, x)
            t2 = time.perf_counter()
            model_ms, route_ms = (t2 - t1) * 1e3, 0.0
        task = decision.task
        events: list[Event] = []
        if self._routed is not None and task != self._routed:
            events += self._trackers[self._routed].close("routed_away", t, index, self.dropped)
            self._smoothers[self._routed].reset()
        self._routed = task
        probs = softmax(outs[logits_name(task)][0])
        smoothed = self._smoothers[task](probs)
        t_centre = float(ts[n // 2])
        tracker = self._trackers[task]
        events += tracker.update(smoothed, t_centre, t, index, self.dropped)
        t3 = time.perf_counter()
        self.latency.add("preprocess", (t1 - t0) * 1e3)
        self.latency.add("model", model_ms)
        self.latency.add("route", route_ms + (t3 - t2) * 1e3)
        top = int(np.argmax(smoothed))
        self.windows += 1
        self.last_result = WindowResult(
            frame=index, t=t, t_centre=t_centre, route=decision,
            outputs={k: v[0] for k, v in outs.items()}, probs=probs, smoothed=smoothed,
            label=self.meta.labels[task][top], confidence=float(smoothed[top]),
            active=tracker.active_label)
        return events

    def finish(self, state: str = "ended", reason: str | None = None) -> list[Event]:
        """End the stream: close active labels (``end_of_stream``) and say so.

        A stream that ended before its first window (at least half a window long) first
        gets one window over all its frames (``config.flush``), so a short recording still
        gets a prediction.

        Args:
            state: ``ended`` (the source ended), ``lost`` (it stopped early) or ``failed``.
            reason: the source's words about why.
        """
        t = float(self.buffer.last(1)[2][0]) if len(self.buffer) else 0.0
        index = max(0, self.frames - 1)
        events = self._drop_event(t, index, force=True)  # drops not reported yet
        if (self.config.flush and self.windows == 0 and self.skipped_windows == 0
                and len(self.buffer) >= flush_frames(self.window)
                and self.presence.state != "no_person"):
            events += self._run_window(t, index, len(self.buffer))
        events += self._close_all("end_of_stream", t, index)
        events.append(Event("stream", t, index, state=state, dropped=self.dropped,
                            reason=reason))
        self.finished = True
        return events

    def reset(self) -> None:
        """Forget the stream (buffer, smoothing, states, counters); keep the model."""
        self.buffer.clear()
        self.rate.reset()
        for task in self._trackers:
            self._trackers[task].close("end_of_stream", 0.0, 0)
            self._smoothers[task].reset()
        self.router.reset()
        self.presence = PresenceTracker(self.config.state_frames)
        self.frames = self.windows = self.skipped_windows = self.dropped = 0
        self._reported_dropped, self._last_drop_t, self._routed = 0, None, None
        self.last_result = None
        self.finished = False
        self.invalid_joints = self.invalid_times = 0
        self._last_t = None
        self._stop = threading.Event()
        self._stop_reason = None

    # -- sources --------------------------------------------------------------------------
    def steps(self, source: Iterable[Any], *, threaded: bool | None = None,
              landmarker: Any = None, queue_size: int | None = None) -> Iterator[Step]:
        """Run a source frame by frame, yielding a :class:`Step` per frame and a final one.

        Args:
            source: an :mod:`edge.frontend.sources` source or any iterable of landmark frames,
                ``(joints, mask, t)`` tuples, or video frames (objects with ``image``,
                ``t``, ``index``: landmarks are extracted with MediaPipe).
            threaded: read the source in a background thread with a bounded queue (newest
                frames win). Default: only for live sources (``source.live``); a file is
                read completely so that no frame is dropped.
            landmarker: a landmark front end (:class:`edge.frontend.landmarks.FrontEnd`) for video
                frames; otherwise a MediaPipe one routed by :meth:`front_end_policy` is
                created on the first video frame, and closed at the end.
            queue_size: queue length in threaded mode (default ``config.queue_size``).

        The stream always ends with a step whose events contain a ``stream`` event:
        ``ended``, ``lost`` (the source stopped early; the reason says why) or ``failed``
        (reading the source raised an error: the message is the reason). Errors of the
        frames, the model or the landmark front end are raised, not turned into events.
        """
        if threaded is None:
            threaded = bool(getattr(source, "live", False))
        own_lm = landmarker is None
        lm = landmarker
        stop = None
        if threaded:
            # Pipeline.stop() sets this too, which ends a wait for a frame that is late.
            stop = self._reader_stop = threading.Event()
            if self._stop.is_set():
                stop.set()
            items, queue, stop = threaded_reader(source, queue_size or self.config.queue_size,
                                                 stop=stop)
        else:
            items, queue = iter(source), None
        failure: str | None = None
        try:
            while not self._stop.is_set():
                try:
                    item = next(items)
                except StopIteration:
                    break
                except (SkelmtlError, OSError) as e:  # reading the source failed mid-stream
                    failure = str(e) or type(e).__name__
                    break
                image = None
                if not (hasattr(item, "joints") or isinstance(item, tuple)) and hasattr(item, "image"):
                    if lm is None:
                        from edge.frontend.landmarks import open_front_end

                        lm = open_front_end(mode="video", policy=self.front_end_policy())
                    image = item.image
                    t0 = time.perf_counter()
                    item = lm.process(item.image, item.t, getattr(item, "index", -1))
                    self.latency.add("landmarks", (time.perf_counter() - t0) * 1e3)
                n_windows = self.windows
                events = self.push(item, dropped=queue.dropped if queue is not None else None)
                yield Step(item, image, events, self.last_result, self.presence.state,
                           self.dropped, self.windows != n_windows)
        finally:
            if stop is not None:
                stop.set()
            self._reader_stop = None
            if own_lm and lm is not None:
                lm.close()
        reason = getattr(source, "end_reason", None)
        if failure is not None:
            state, reason = "failed", failure
        elif self._stop_reason is not None:
            state, reason = "ended", self._stop_reason
        elif getattr(source, "ended_early", False):
            state = "lost"
        else:
            state = "ended"
        n_windows = self.windows
        events = self.finish(state, reason)
        yield Step(None, None, events, self.last_result, self.presence.state, self.dropped,
                   self.windows != n_windows)

    def run(self, source: Iterable[Any], **kwargs: Any) -> Iterator[Event]:
        """Events of a whole source (see :meth:`steps` for the arguments)."""
        for step in self.steps(source, **kwargs):
            yield from step.events

    def front_end_policy(self, full: bool = False) -> FrontEndPolicy:
        """The landmark stages this pipeline's task needs
        (:func:`edge.frontend.policy.policy_for_task`: ``action`` -> no hands, ``gesture``
        -> the pose only to place the hands, ``auto`` -> the hands when in play); ``full``:
        both stages on every frame."""
        needed = self.router.tasks_needed
        task = "full" if full else (needed[0] if len(needed) == 1 else self.task)
        return policy_for_task(task, hand_task=self.router.hand_task,
                               body_task=self.router.body_task)

    # -- batch ----------------------------------------------------------------------------
    def infer_clip(self, frames: np.ndarray, mask: np.ndarray, fps: float | None = None
                   ) -> dict[str, np.ndarray]:
        """All outputs for every streaming window of a clip, in one batch per graph.

        Args:
            frames: ``(T, 75, C)``; mask: ``(T, 75)``; fps: the clip's rate (a model with
                a rate resamples it; None: the model's rate already).

        Returns:
            ``output name -> (N, K)`` for the N windows of :func:`edge.runtime.stream.window_bounds`
            (with the end-of-stream window of a short clip when ``config.flush``; every
            graph runs, whatever the router would choose).
        """
        x = batch_inputs(frames, mask, self.meta.preprocess, self.stride, self.config.flush,
                         fps)
        out: dict[str, np.ndarray] = {}
        if len(x) == 0:
            return out
        for g in self.graphs:
            out.update(g.infer(x))
        return out

    # -- status ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters and per-stage latencies (for the demo, ``skelmtl run`` and the benchmark)."""
        return {"frames": self.frames, "windows": self.windows,
                "skipped_windows": self.skipped_windows, "dropped": self.dropped,
                "invalid_joints": self.invalid_joints, "invalid_times": self.invalid_times,
                "task": self.task, "graphs": [str(g.path) for g in self.graphs],
                "backend": self.graphs[0].name, "precision": self.graphs[0].precision,
                "latency_ms": self.latency.to_dict()}

    def close(self) -> None:
        """Close the backends :meth:`from_model` opened (backends passed in stay open)."""
        if self.owns_graphs:
            for g in self.graphs:
                g.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def stop_on_signals(pipe: Pipeline, signals: Sequence[int] | None = None
                    ) -> Iterator[dict[str, int | None]]:
    """Within the block, SIGTERM, SIGINT and SIGHUP stop ``pipe`` cleanly, not at once.

    The first signal calls :meth:`Pipeline.stop` (reason ``"stopped by SIGTERM"``), so the
    stream ends with its ``end`` and ``stream`` events and the caller finishes its files; a
    second one raises :class:`edge.core.errors.Interrupted` (a KeyboardInterrupt) for a hard
    stop. Yields a dict whose ``"signal"`` is the number of the signal received (None when
    none). Only in the main thread (Python delivers signals there); elsewhere it does
    nothing.

    Usage::

        with Pipeline.from_model(m) as pipe, stop_on_signals(pipe) as got:
            for event in pipe.run(open_source(src)):
                publish(event)
        sys.exit(128 + got["signal"] if got["signal"] else 0)
    """
    got: dict[str, int | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    sigs = list(signals) if signals is not None else [
        getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]

    def handler(signum: int, frame: Any) -> None:
        if got["signal"] is not None:
            raise Interrupted(signum)  # a KeyboardInterrupt carrying the signal's number
        got["signal"] = signum
        logger.warning("%s: ending the stream", signal_name(signum))
        pipe.stop(f"stopped by {signal_name(signum)}")

    previous = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield got
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ["MAX_ABS_COORD", "MODEL_FILES", "STAGES", "Latency", "Pipeline", "PipelineError",
           "Step", "WindowResult", "check_graphs", "resolve_model_paths", "stop_on_signals"]
