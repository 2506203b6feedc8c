"""The frame loop of a run: a source through an opened :class:`Pipeline`, to sinks.

Usage::

    from edge.frontend.sources import open_source
    from edge.runtime.loop import run_stream
    from edge.runtime.pipeline import Pipeline

    with Pipeline.from_model("model.int8.onnx") as pipe, open_source("clip.landmarks.npz") as src:
        summary = run_stream(pipe, src, sinks=[print])
    print(summary.state, summary.events)

``skelmtl run`` and both parts of ``skelmtl demo`` run this one loop; what differs between
them is what they hand it (event sinks, step callbacks, an overlay, a heartbeat) and what
they print of the :class:`RunSummary`. Also here: what a run checks before it starts (its
output files against each other and against its inputs) and :class:`FirstFrames`, a
source cut after a number of frames.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable  # typing's: the aliases below are evaluated, on 3.8 too

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.events import Event
from edge.runtime.overlay import OverlayWriter
from edge.runtime.pipeline import Pipeline, Step
from edge.runtime.publish import PipeClosed

logger = logging.getLogger(__name__)

EventSink = Callable[[Event], None]
"""Takes every event of a run; raises :class:`edge.runtime.publish.PipeClosed` when the
reader behind it went away (``skelmtl run ... | head``)."""
StepCallback = Callable[[Step], None]
"""Sees every :class:`edge.runtime.pipeline.Step`, before its events go to the sinks."""


@dataclass(frozen=True)
class RunSummary:
    """What one run of a source through a pipeline produced.

    Attributes:
        frames: steps that carried a frame (the final step, which ends the stream, has none).
        events: events handed to the sinks, all kinds.
        state: the state of the final ``stream`` event: ``ended``, ``lost`` (the source
            stopped early) or ``failed`` (reading it raised an error mid-stream).
        reason: that event's reason (None for a plain end).
        output_closed: a sink raised ``PipeClosed``; the pipeline was asked to stop there.
        overlay: the overlay video written, or None (no overlay, or no frame to draw).
        overlay_frames: frames in it.
        stats: :meth:`Pipeline.stats` at the end (counters, backend, per-stage latencies).
    """

    frames: int
    events: int
    state: str
    reason: str | None
    output_closed: bool
    overlay: Path | None
    overlay_frames: int
    stats: Mapping[str, Any]


def run_stream(pipe: Pipeline, source: Iterable[Any], *,
               sinks: Sequence[EventSink] = (),
               on_step: Sequence[StepCallback] = (),
               overlay: OverlayWriter | None = None,
               landmarker: Any = None,
               threaded: bool | None = None,
               on_output_closed: Callable[[], None] | None = None,
               stop_reason: str = "standard output closed") -> RunSummary:
    """Run ``source`` through ``pipe`` to its end; events to ``sinks``, steps to ``on_step``.

    Per step, in this order: each ``on_step`` callback, ``overlay.write(step)``, then each
    event to each sink in order. A sink that raises ``PipeClosed`` marks the output closed:
    ``on_output_closed()`` is called at once (before the next sink sees the event), and the
    pipeline is stopped with ``stop_reason`` unless a stop was already asked for (a signal),
    so that the stream still ends with its ``end`` and ``stream`` events. Sinks are called
    after that too (a file behind a closed standard output still gets the end of the
    stream); a sink that writes to the closed reader checks for itself.

    Args:
        pipe: an opened pipeline; it is neither reset nor closed here.
        source: frames for :meth:`Pipeline.steps` (a source, recordings, tuples); the
            caller opens and closes it.
        sinks: event sinks (:data:`EventSink`).
        on_step: step callbacks (:data:`StepCallback`), e.g. :meth:`Heartbeat.step`.
        overlay: written per step, aborted when the run raises, else closed at the end.
        landmarker: the landmark front end for a source of pictures (closed by the caller).
        threaded: read the source in a background thread (None: live sources only).
        on_output_closed: called once, when the output first closes.
        stop_reason: the reason of the stop a closed output asks for.

    Returns:
        The :class:`RunSummary`.

    Raises:
        Whatever the pipeline, a sink or a callback raises, the overlay aborted first.
    """
    frames = events = 0
    state, reason, closed = "ended", None, False
    try:
        for step in pipe.steps(source, threaded=threaded, landmarker=landmarker):
            frames += step.frame is not None
            for callback in on_step:
                callback(step)
            if overlay is not None:
                overlay.write(step)
            for ev in step.events:
                events += 1
                for sink in sinks:
                    try:
                        sink(ev)
                    except PipeClosed:
                        if not closed:
                            closed = True
                            if on_output_closed is not None:
                                on_output_closed()
                if closed and not pipe.stop_requested:
                    pipe.stop(stop_reason)
                if ev.kind == "stream":
                    state, reason = ev.state or "ended", ev.reason
    except BaseException:
        if overlay is not None:
            overlay.abort()
        raise
    written = overlay.close() if overlay is not None else None
    return RunSummary(frames=frames, events=events, state=state, reason=reason,
                      output_closed=closed, overlay=written,
                      overlay_frames=overlay.frames if overlay is not None else 0,
                      stats=pipe.stats())


class FirstFrames:
    """The first ``n`` items of a source, keeping what the pipeline reads of it.

    :meth:`Pipeline.steps` reads ``live``, ``ended_early`` and ``end_reason``: a cut source
    ends with ``reason``, a source shorter than ``n`` with its own.

    Args:
        source: any iterable of frames (a :mod:`edge.frontend.sources` source).
        n: how many items, at least 1.
        reason: the ``end_reason`` when the cut happens (default ``stopped after N frames``).
    """

    def __init__(self, source: Iterable[Any], n: int, reason: str | None = None) -> None:
        self.source, self.n = source, n
        self.reason = reason or f"stopped after {n} frames"
        self.live = getattr(source, "live", False)
        self.ended_early = False
        self.end_reason: str | None = None

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(self.source):
            yield item
            if i + 1 >= self.n:
                self.end_reason = self.reason
                return
        self.ended_early = getattr(self.source, "ended_early", False)
        self.end_reason = getattr(self.source, "end_reason", None)


class Heartbeat:
    """Touches a file while frames flow, for a container health check (docker/healthcheck.sh).

    The file's modification time says when the last frame went through; it is touched at
    most once per ``every`` seconds so that a 30 fps loop does not do 30 syscalls a second.

    Args:
        path: the file (created with its parent folder); ``None`` disables the heartbeat.
        every: minimum seconds between two touches.
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, path: str | os.PathLike[str] | None, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path) if path else None
        self.every = every
        self.clock = clock
        self.last = -float("inf")
        self.touches = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def beat(self) -> None:
        if self.path is None:
            return
        now = self.clock()
        if now - self.last >= self.every:
            self.path.touch()
            self.last = now
            self.touches += 1

    def step(self, step: Step) -> None:
        """:meth:`beat`, as a :data:`StepCallback` of :func:`run_stream`."""
        self.beat()


@dataclass
class PresenceCount:
    """A :data:`StepCallback` that counts frames, and those with a person and with hands.

    A person is any of the 33 pose joints present, hands any of the 42 hand joints
    (``mp75``: pose 0-32, hands 33-74).
    """

    frames: int = 0
    with_person: int = 0
    with_hands: int = 0

    def __call__(self, step: Step) -> None:
        if step.frame is None:
            return
        mask = np.asarray(step.frame.mask)
        self.frames += 1
        self.with_person += bool(mask[:33].any())
        self.with_hands += bool(mask[33:].any())


# -- before a run: its files -----------------------------------------------------------------
def check_output(path: Path | None, flag: str) -> None:
    """Refuse an output file that cannot be written, before the run rather than after it.

    Args:
        path: the file (None: nothing to check); flag: the option that named it.

    Raises:
        SkelmtlError: the path is a folder, its folder does not exist or is not writable.
    """
    if path is None:
        return
    if path.is_dir():
        raise SkelmtlError(f"{path}: is a folder; {flag} takes a file name")
    parent = path.parent
    if not parent.is_dir():
        raise SkelmtlError(f"{path}: folder {parent} does not exist ({flag})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SkelmtlError(f"{path}: folder {parent} is not writable ({flag})")
    if path.exists() and not os.access(path, os.W_OK):
        raise SkelmtlError(f"{path}: file is not writable ({flag})")


def check_distinct(outputs: Sequence[tuple[Path, str]],
                   inputs: Sequence[tuple[Path, str]]) -> None:
    """No output may be an input, or another output.

    ``--jsonl`` truncates its file at the start and ``--overlay`` replaces its file at the
    end: either would destroy a recording or video given as ``--source``, or a recording
    or image inside a ``--source`` folder (an existing file directly in an input folder:
    what a folder source reads).

    Args:
        outputs, inputs: ``(path, option)`` pairs.

    Raises:
        SkelmtlError: naming both options and the path.
    """
    def same(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve() or (a.exists() and b.exists()
                                                  and os.path.samefile(a, b))
        except OSError:
            return False

    def inside(a: Path, folder: Path) -> bool:
        try:
            return folder.is_dir() and a.is_file() and same(a.parent, folder)
        except OSError:
            return False

    for i, (out, flag) in enumerate(outputs):
        for inp, what in inputs:
            if same(out, inp):
                raise SkelmtlError(f"{out}: {flag} would overwrite the {what} input")
            if inside(out, inp):
                raise SkelmtlError(f"{out}: {flag} would overwrite a file of the {what} "
                                   f"folder {inp}")
        for other, flag2 in outputs[i + 1:]:
            if same(out, other):
                raise SkelmtlError(f"{out}: given to both {flag} and {flag2}")


def model_files(models: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files a model argument reads: each file, or a model folder's files.

    A folder's files rather than the folder, so that an output beside a bundled model
    (``events.jsonl`` in the model's folder) is not taken for one of its inputs.
    """
    files: list[Path] = []
    for m in map(Path, models):
        files += [f for f in m.iterdir() if f.is_file()] if m.is_dir() else [m]
    return files


__all__ = ["EventSink", "FirstFrames", "Heartbeat", "PresenceCount", "RunSummary",
           "StepCallback", "check_distinct", "check_output", "model_files", "run_stream"]
