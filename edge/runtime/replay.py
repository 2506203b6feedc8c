"""Labelled landmark clips replayed through a :class:`Pipeline` and scored against their truth.

Usage::

    from edge.assets import bundled_clips, bundled_model
    from edge.runtime.pipeline import Pipeline
    from edge.runtime.replay import replay_each

    with Pipeline.from_model(bundled_model()) as pipe:
        result = replay_each(pipe, bundled_clips())
    print(f"{result.right}/{len(result.scored)} clips right")

A clip is a landmark recording (:mod:`edge.core.recording`) whose metadata carries its
true ``label`` and ``task``: the bundled demo clips, or those :func:`export_clips` writes
from a clip store. Each clip is scored by the label with the highest mean probability over
the windows that fell in it, and the labels that began in it (:class:`ClipScore`).
Replayed each as its own stream (:func:`replay_each`) or back to back as one
(:func:`replay_continuous`), both through :func:`edge.runtime.loop.run_stream`.
``skelmtl demo`` prints what these return.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable  # typing's: OnEvent is evaluated, on 3.8 too

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.events import Event
from edge.runtime.loop import run_stream
from edge.runtime.pipeline import Pipeline, Step, WindowResult


@dataclass(frozen=True)
class Segment:
    """Where one clip lies in a replayed stream.

    Attributes:
        name: the recording's file name without ``.landmarks.npz``.
        start, end: its first frame's time and its last frame's time plus one frame
            (seconds; a frame at time ``t`` is in it when ``start <= t < end``).
        label, task: its truth from the recording's metadata (None where unknown).
    """

    name: str
    start: float
    end: float
    label: str | None
    task: str | None


@dataclass(frozen=True)
class ClipScore:
    """One clip against its truth.

    Attributes:
        segment: the clip and its truth.
        scores: ``(task, label) -> sum of the raw probabilities`` over the clip's windows
            (each window adds its routed task's ``(K,)`` probabilities).
        windows: windows counted for the clip.
        began: labels that began in it, in order.
    """

    segment: Segment
    scores: Mapping[tuple[str, str], float]
    windows: int
    began: tuple[str, ...]

    @property
    def predicted(self) -> tuple[str, str] | None:
        """The (task, label) with the highest mean raw probability over the windows."""
        return max(self.scores, key=self.scores.__getitem__) if self.scores else None

    @property
    def right(self) -> bool:
        """The predicted label is the truth (and its task, where the clip names one)."""
        p, s = self.predicted, self.segment
        return p is not None and p[1] == s.label and s.task in (None, p[0])


@dataclass(frozen=True)
class ReplayResult:
    """The clips of one replay, scored.

    Attributes:
        clips: one :class:`ClipScore` per clip with frames, in replay order.
    """

    clips: tuple[ClipScore, ...]

    @property
    def scored(self) -> tuple[ClipScore, ...]:
        """The clips that have a true label: every one counts, with or without a window."""
        return tuple(c for c in self.clips if c.segment.label is not None)

    @property
    def right(self) -> int:
        """Scored clips predicted right."""
        return sum(c.right for c in self.scored)

    @property
    def missed(self) -> int:
        """Scored clips the runtime gave no window (counted wrong)."""
        return sum(c.windows == 0 for c in self.scored)


OnEvent = Callable[[Event, "Segment | None"], None]
"""Called with every event and the clip it falls in (None: between or outside clips)."""


def event_agrees(ev: Event, seg: Segment | None) -> bool:
    """The event's label (and task, where the clip names one) is the clip's truth."""
    return seg is not None and seg.label == ev.label and seg.task in (None, ev.task)


def concatenate(clips: Sequence[Path]) -> tuple[list[Segment], Iterator[tuple[Any, ...]]]:
    """The clips as one stream of ``(joints (75, 3), mask (75,), t)`` frames, and their
    segments; each clip starts one frame (of its own rate) after the previous one ended,
    and clips without frames are left out.

    Raises:
        SkelmtlError: a clip cannot be read (:func:`edge.core.recording.load_recording`).
    """
    from edge.core.recording import load_recording, recording_stem

    recs = [load_recording(p) for p in clips]
    segments: list[Segment] = []
    plan = []
    offset = 0.0
    for path, rec in zip(clips, recs):
        if len(rec) == 0:
            continue
        fps = float(rec.meta.get("fps") or 30.0)
        t = (rec.timestamps_ms - rec.timestamps_ms[0]) / 1000.0 + offset
        segments.append(Segment(recording_stem(Path(path).name), float(t[0]),
                                float(t[-1]) + 1.0 / fps, rec.meta.get("label"),
                                rec.meta.get("task")))
        plan.append((rec, t))
        offset = float(t[-1]) + 1.0 / fps

    def frames() -> Iterator[tuple[Any, ...]]:
        for rec, t in plan:
            for i in range(len(rec)):
                yield rec.frames[i], rec.mask[i], float(t[i])

    return segments, frames()


def segment_at(segments: Sequence[Segment], t: float | None) -> Segment | None:
    """The segment that holds time ``t`` (None for None, or between segments)."""
    if t is None:
        return None
    for s in segments:
        if s.start <= t < s.end:
            return s
    return None


@dataclass
class _Tally:
    """A clip's score while its windows arrive (frozen into a :class:`ClipScore`)."""

    segment: Segment
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    windows: int = 0
    began: list[str] = field(default_factory=list)

    def add(self, labels: Mapping[str, Sequence[str]], res: WindowResult) -> None:
        self.windows += 1
        for name, p in zip(labels[res.task], res.probs):
            self.scores[(res.task, name)] = self.scores.get((res.task, name), 0.0) + float(p)

    def frozen(self) -> ClipScore:
        return ClipScore(self.segment, dict(self.scores), self.windows, tuple(self.began))


def replay_each(pipe: Pipeline, clips: Sequence[Path], *, on_clip: Callable[[Segment], None]
                | None = None, on_event: OnEvent | None = None) -> ReplayResult:
    """Each clip as its own stream: the pipeline is reset before each one.

    Args:
        pipe: an opened pipeline (left reset to the last clip's end).
        clips: landmark recordings; those without frames are skipped.
        on_clip: called with each clip's segment before it plays.
        on_event: called with every event and its clip.
    """
    rows = []
    for path in clips:
        segments, frames = concatenate([path])
        if not segments:
            continue
        tally = _Tally(segments[0])
        pipe.reset()
        if on_clip is not None:
            on_clip(tally.segment)

        def step(s: Step, tally: _Tally = tally) -> None:
            if s.new_window and s.result is not None:
                tally.add(pipe.meta.labels, s.result)
            for ev in s.events:
                if ev.kind == "begin":
                    tally.began.append(ev.label or "")
                if on_event is not None:
                    on_event(ev, tally.segment)

        run_stream(pipe, frames, on_step=[step])
        rows.append(tally.frozen())
    return ReplayResult(tuple(rows))


def replay_continuous(pipe: Pipeline, clips: Sequence[Path], *,
                      on_event: OnEvent | None = None) -> ReplayResult:
    """All clips back to back as one stream (:func:`concatenate`).

    A window counts for the clip its centre frame is in (windows near a boundary also see
    the neighbouring clip); a ``begin`` for the clip its start is in; any other event for
    the clip of the middle of its span (its start when it has no end).

    Args:
        pipe: an opened pipeline, at the start of a stream.
        clips: landmark recordings.
        on_event: called with every event and its clip (or None).
    """
    segments, frames = concatenate(clips)
    tallies = {s.name: _Tally(s) for s in segments}

    def step(s: Step) -> None:
        res = s.result
        if s.new_window and res is not None:
            seg = segment_at(segments, res.t_centre)
            if seg is not None:
                tallies[seg.name].add(pipe.meta.labels, res)
        for ev in s.events:
            at = ev.start if ev.kind == "begin" or ev.end is None else \
                (ev.start + ev.end) / 2 if ev.start is not None else None
            seg = segment_at(segments, at)
            if ev.kind == "begin" and seg is not None:
                tallies[seg.name].began.append(ev.label or "")
            if on_event is not None:
                on_event(ev, seg)

    run_stream(pipe, frames, on_step=[step])
    return ReplayResult(tuple(t.frozen() for t in tallies.values()))


def export_clips(store: Path, out: Path, *, split: str = "test", per_label: int = 2,
                 dataset: str | None = None) -> list[Path]:
    """Write ``per_label`` clips per (task, label) of ``split`` as ``*.landmarks.npz``.

    Clips are taken in store order, interleaved across labels (so that a replay
    alternates classes), and named ``NN_<label>.landmarks.npz``; each recording's
    metadata carries ``label``, ``task``, ``fps``, ``dataset``, ``clip_id`` and ``split``.

    Raises:
        SkelmtlError: the store has no clip of that split (and dataset).
    """
    from edge.core.clipstore import ClipStore
    from edge.core.recording import Recording, save_recording

    st = ClipStore(store)
    picked: dict[tuple[str, str], list[int]] = {}
    for i in st.indices(split=split).tolist():
        clip = st[i]
        if dataset is not None and clip.dataset != dataset:
            continue
        group = picked.setdefault((clip.task, clip.label), [])
        if len(group) < per_label:
            group.append(i)
    if not picked:
        raise SkelmtlError(f"{store}: no clip in split {split!r}"
                           + (f" of dataset {dataset!r}" if dataset else ""))
    order = [g[k] for k in range(per_label) for g in picked.values() if k < len(g)]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, i in enumerate(order):
        c = st[i]
        fps = c.fps or 30.0
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in c.label)
        frames = np.zeros((len(c), c.frames.shape[1], 3), np.float32)
        frames[..., : c.dims] = c.frames[..., :3]
        rec = Recording(frames=frames, mask=np.asarray(c.mask, bool),
                        timestamps_ms=np.arange(len(c)) * 1000.0 / fps,
                        meta={"label": c.label, "task": c.task, "fps": fps,
                              "dataset": c.dataset, "clip_id": c.clip_id, "split": c.split,
                              "source": c.source})
        written.append(save_recording(out / f"{n:02d}_{safe}.landmarks.npz", rec))
    return written


__all__ = ["ClipScore", "OnEvent", "ReplayResult", "Segment", "concatenate", "event_agrees",
           "export_clips", "replay_continuous", "replay_each", "segment_at"]
