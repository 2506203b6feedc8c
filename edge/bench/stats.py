"""Latency statistics, report entries and interleaved timing: pure numpy, no files.

* :func:`summarize` -- p50 / p90 / p99 / mean / std / min / max of latency samples (ms);
* :func:`throughput` -- items per second from a batch size and latencies;
* :func:`ratio` -- a ratio that is ``None`` (not ``inf`` or ``nan``) when a side is missing;
* :func:`round_robin`, :func:`interleaved_timing`, :func:`interleaved_groups` -- the order
  in which rows' repetitions run, so that a slow spell on a shared machine hits all alike;
* :class:`Entry`, :func:`make_entry`, :func:`round_entry`, :func:`find_entry`, :func:`p50`
  -- one row of the report; :class:`Recorder` collects them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from edge.bench.probe import _rss_mb

STAGES = ("video_decode", "landmarks_pose", "landmarks_hands", "landmarks", "preprocess",
          "model", "routing", "end_to_end", "end_to_end_replay")
PERCENTILES = (50, 90, 99)
# Ratios that the docs and the issue care about; the rest are informative.
TARGET_FRONT_END_SHARE = 0.1


@dataclass(frozen=True)
class Stats:
    """Summary of latency samples, all in milliseconds.

    Percentiles use numpy's default linear interpolation between closest ranks; ``std``
    is the sample standard deviation (``ddof=1``; 0 for a single sample).
    """

    n: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(samples_ms: Iterable[float]) -> Stats:
    """Summarise latency samples.

    Args:
        samples_ms: ``(n,)`` latencies in milliseconds, warm-up already removed.

    Raises:
        ValueError: no samples, or a non-finite or negative one.
    """
    a = np.asarray(list(samples_ms) if not isinstance(samples_ms, np.ndarray) else samples_ms,
                   dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("no samples to summarise")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("latency samples must be finite and >= 0")
    p50, p90, p99 = (float(v) for v in np.percentile(a, PERCENTILES))
    return Stats(n=int(a.size), mean_ms=float(a.mean()),
                 std_ms=float(a.std(ddof=1)) if a.size > 1 else 0.0,
                 min_ms=float(a.min()), p50_ms=p50, p90_ms=p90, p99_ms=p99,
                 max_ms=float(a.max()))


def throughput(batch: int, samples_ms: Iterable[float]) -> float:
    """Items per second when each call handles ``batch`` items: ``batch * n / total time``.

    That is ``batch * 1000 / mean_ms``: the sustained rate of back-to-back calls, which
    the mean (not the median) governs.

    Raises:
        ValueError: ``batch < 1``, or no samples, or a zero total time.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    a = np.asarray(list(samples_ms) if not isinstance(samples_ms, np.ndarray) else samples_ms,
                   dtype=np.float64)
    if a.size == 0 or a.sum() <= 0:
        raise ValueError("throughput needs samples with a positive total time")
    return float(batch * a.size * 1000.0 / a.sum())


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``, or ``None`` when either is missing, not finite, or ``den`` is 0."""
    if num is None or den is None:
        return None
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return None
    return float(num) / float(den)


def round_robin(names: Sequence[str], reps: int) -> Iterator[tuple[int, str]]:
    """The interleaved order of repetitions: ``(rep, name)``.

    Every repetition runs each name once; the starting name rotates by one each
    repetition so no backend always runs first (after a context switch) or last. A slow
    spell on a shared machine then hits all backends alike and their ratios hold.
    """
    k = len(names)
    for r in range(reps):
        for i in range(k):
            yield r, names[(r + i) % k]


@dataclass(frozen=True)
class Entry:
    """One row of the report: a stage's latencies, or why it was not measured.

    Attributes:
        stage: one of :data:`STAGES`.
        label: a unique human-readable name, e.g. ``"model onnxruntime int8 b32"``.
        backend, precision: the model's backend and precision, or None.
        batch: windows (or frames) per call; unit: ``"frame"`` or ``"window"``.
        window: frames per window, or None.
        status: ``"ok"``, ``"skipped"`` or ``"failed"``.
        reason: why it was skipped or failed, or a caveat on an ``ok`` row.
        stats: the summary (``ok`` rows), else None.
        throughput_per_s: units per second (``ok`` rows), else None.
        samples_ms: ``(n,)`` the raw samples after warm-up, rounded to 5 decimals.
        rounds_p50_ms: each round's median (rows timed in several rounds), else None.
    """

    stage: str
    label: str
    backend: str | None
    precision: str | None
    batch: int
    unit: str
    window: int | None
    status: str
    reason: str | None
    stats: Stats | None
    throughput_per_s: float | None
    samples_ms: tuple[float, ...]
    rounds_p50_ms: tuple[float, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``bench.json``)."""
        d: dict[str, Any] = {
            "stage": self.stage, "label": self.label, "backend": self.backend,
            "precision": self.precision, "batch": self.batch, "unit": self.unit,
            "window": self.window, "status": self.status, "reason": self.reason,
            "stats": self.stats.to_dict() if self.stats else None,
            "throughput_per_s": self.throughput_per_s, "samples_ms": list(self.samples_ms)}
        if self.rounds_p50_ms is not None:
            d["rounds_p50_ms"] = list(self.rounds_p50_ms)
        return d


def make_entry(stage: str, label: str, samples_ms: Sequence[float] | np.ndarray | None, *,
               batch: int = 1, unit: str = "window", backend: str | None = None,
               precision: str | None = None, window: int | None = None,
               reason: str | None = None, per_call_items: int | None = None,
               failed: bool = False) -> Entry:
    """One report entry: ``ok`` with statistics when there are samples, else ``skipped``
    (what it needs is not installed or not there), or ``failed`` with ``failed`` (it is
    there and broke: a TensorRT engine that does not build or load on the board).

    ``per_call_items`` (default ``batch``) is how many units one call handles, for the
    throughput. ``reason`` on an ``ok`` entry is a caveat (e.g. random weights).
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {STAGES}")
    base: dict[str, Any] = {"stage": stage, "label": label, "backend": backend,
                            "precision": precision, "batch": int(batch), "unit": unit,
                            "window": window}
    if samples_ms is None or len(samples_ms) == 0:
        return Entry(**base, status="failed" if failed else "skipped",
                     reason=reason or "no samples", stats=None, throughput_per_s=None,
                     samples_ms=())
    a = np.asarray(samples_ms, dtype=np.float64)
    return Entry(**base, status="ok", reason=reason, stats=summarize(a),
                 throughput_per_s=(throughput(per_call_items or batch, a) if a.sum() > 0
                                   else None),  # a stage a routed front end never ran
                 samples_ms=tuple(round(float(v), 5) for v in a))


def round_entry(stage: str, label: str, per_round: Sequence[Sequence[float]],
                **kw: Any) -> Entry:
    """:func:`make_entry` from the samples of every round, plus ``rounds_p50_ms`` (each
    round's median) when there were several rounds."""
    entry = make_entry(stage, label, [v for t in per_round for v in t], **kw)
    if entry.ok and len(per_round) > 1:
        entry = replace(entry, rounds_p50_ms=tuple(round(float(np.median(t)), 5)
                                                   for t in per_round))
    return entry


def find_entry(entries: Sequence[Entry], stage: str, *, backend: str | None = None,
               precision: str | None = None, batch: int | None = None,
               window: int | None = None, label: str | None = None) -> Entry | None:
    """The first ``ok`` entry matching every given field (``None`` = any)."""
    for e in entries:
        if e.stage != stage or not e.ok:
            continue
        if backend is not None and e.backend != backend:
            continue
        if precision is not None and e.precision != precision:
            continue
        if batch is not None and e.batch != batch:
            continue
        if window is not None and e.window != window:
            continue
        if label is not None and e.label != label:
            continue
        return e
    return None


def p50(entry: Entry | None) -> float | None:
    """The entry's median latency in ms, or ``None`` for a missing/skipped entry."""
    if entry is None or not entry.ok or entry.stats is None:
        return None
    return float(entry.stats.p50_ms)


def mean(entry: Entry | None) -> float | None:
    """The entry's mean latency in ms (the cost per frame of a stage that does not run on
    every frame), or ``None``."""
    if entry is None or not entry.ok or entry.stats is None:
        return None
    return float(entry.stats.mean_ms)


@dataclass(frozen=True)
class Problem:
    """A row that was skipped or failed: its label and why."""

    stage: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "reason": self.reason}


class Recorder:
    """Collects entries, skip reasons and memory after each stage."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.stages: list[Entry] = []
        self.sweep: list[Entry] = []
        self.skipped: list[Problem] = []
        self.failed: list[Problem] = []
        self.rss_after: dict[str, float] = {}
        self.log = log

    def add(self, entry: Entry, *, sweep: bool = False) -> None:
        (self.sweep if sweep else self.stages).append(entry)
        if entry.status == "skipped":
            self.skipped.append(Problem(entry.label, str(entry.reason)))
            self.log(f"bench: skipped {entry.label}: {entry.reason}")
        elif entry.status == "failed":
            self.failed.append(Problem(entry.label, str(entry.reason)))
            self.log(f"bench: FAILED {entry.label}: {entry.reason}")
        elif entry.stats is not None:
            self.log(f"bench: {entry.label}: p50 {entry.stats.p50_ms:.3f} ms "
                     f"(n={entry.stats.n})")

    def skip(self, stage: str, label: str, reason: str, **kw: Any) -> None:
        self.add(make_entry(stage, label, None, reason=reason, **kw))

    def memory(self, stage: str) -> None:
        self.rss_after[stage] = round(_rss_mb(), 1)


def interleaved_timing(calls: dict[str, Callable[[], Any]], warmup: int,
                       iters: int) -> dict[str, list[float]]:
    """Warm each call up, then time ``iters`` repetitions of each, round-robin.

    Returns ``name -> latencies (ms)``. Callers run each call once beforehand, so that a
    call that cannot run is recorded as skipped instead of failing mid-timing.
    """
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for _, name in round_robin(names, iters):
        t0 = time.perf_counter_ns()
        calls[name]()
        times[name].append((time.perf_counter_ns() - t0) / 1e6)
    return times


def interleaved_groups(calls: dict[str, Callable[[], Any]], group_of: Callable[[str], Any],
                       warmup: int, iters: int, rounds: int = 1) -> dict[str, list[list[float]]]:
    """:func:`interleaved_timing` for each group of calls in turn (``group_of(name)``),
    in ``rounds`` passes over the groups that share the ``iters`` calls between them.

    Calls are only interleaved with calls of their own group: see the comment where the
    model rows are grouped. Interleaving cancels drift that is slow next to one turn of
    the rotation; it cannot cancel a change that outlasts a whole row, and a batch-1 row
    takes a fraction of a second. On the 2-core VM the speed changes for seconds at a
    time, and INT8 more than FP32 (0.55 one second, 0.68 the next at batch 1), so one
    pass measures one moment; several passes, spread over the model stage, measure the
    machine. Each pass warms its calls up again (the other groups ran in between).

    Returns:
        ``name -> one list of latencies (ms) per round``.
    """
    groups = list(dict.fromkeys(group_of(n) for n in calls))
    rounds = max(1, min(int(rounds), int(iters)))
    times: dict[str, list[list[float]]] = {n: [] for n in calls}
    for r in range(rounds):
        share = iters // rounds + (1 if r < iters % rounds else 0)
        for g in groups:
            part = interleaved_timing({n: c for n, c in calls.items() if group_of(n) == g},
                                      warmup, share)
            for n, t in part.items():
                times[n].append(t)
    return times
