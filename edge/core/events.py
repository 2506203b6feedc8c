"""What the streaming runtime says: :class:`Event` and its versioned JSON-lines schema.

Every event is one JSON object per line; every line carries ``"schema": "skelmtl.event/1"``
(:data:`EVENT_SCHEMA`). The fields (all present in every line, ``null`` where they do not
apply) are documented in ``docs/runtime.md`` and checked by :func:`validate_event_dict`.

Kinds (:data:`KINDS`):

``begin``   a label was recognised (smoothed probability above ``enter`` for at least
            ``min_duration``): ``task``, ``label``, ``confidence``, ``start``.
``end``     that label stopped (below ``exit``, another label took over, the router moved
            to another task, the person left, or the stream ended): ``start``, ``end``,
            ``confidence`` (the peak smoothed probability while active), ``reason``.
``state``   what the camera sees changed: ``state`` is ``no_person``, ``no_hands`` or
            ``tracking`` (a person with at least one hand, or hands alone).
``drop``    inference fell behind and frames were dropped (newest frames win); ``dropped``
            is the running total, ``reason`` says where.
``stream``  the last event of a stream: the source ended (``state`` = ``ended``),
            stopped early (``lost``: a camera that disappeared, a truncated video) or
            failed (``failed``); ``reason`` names the cause.

Times are seconds on the source's clock (a recording's timestamps, a camera's capture
time); ``t`` is the time of the frame at which the event was decided, so ``t >= end``.
Changing a field's meaning or removing one bumps the schema version; adding a field does
not (readers ignore unknown fields).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.core.errors import SkelmtlError

EVENT_SCHEMA = "skelmtl.event/1"
KINDS = ("begin", "end", "state", "drop", "stream")
STATES = ("no_person", "no_hands", "tracking")
STREAM_STATES = ("ended", "lost", "failed")
# Why an active label ended (``end`` events).
END_REASONS = ("below_exit", "replaced", "routed_away", "no_person", "end_of_stream")


class EventError(SkelmtlError, ValueError):
    """A JSON line that does not follow the event schema; the message names the field."""


@dataclass(frozen=True)
class Event:
    """One thing the runtime recognised or noticed.

    Attributes:
        kind: one of :data:`KINDS`.
        t: source time (s) of the frame at which the event was decided.
        frame: index of that frame among the frames the pipeline processed (0-based).
        task: the task of a ``begin``/``end`` event (``action``, ``gesture``, ...).
        label: the recognised label of a ``begin``/``end`` event.
        confidence: smoothed probability in [0, 1]: at the ``begin``, or the peak while
            active for an ``end``.
        start: estimated start (s): centre time of the first window above ``enter``.
        end: estimated end (s): centre time of the last window above ``exit``.
        state: for ``state`` events one of :data:`STATES`; for ``stream`` events one of
            :data:`STREAM_STATES`.
        dropped: frames dropped so far because inference fell behind.
        reason: why (``end``: one of :data:`END_REASONS`; ``stream``/``drop``: free text).
    """

    kind: str
    t: float
    frame: int
    task: str | None = None
    label: str | None = None
    confidence: float | None = None
    start: float | None = None
    end: float | None = None
    state: str | None = None
    dropped: int = 0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines object: ``schema`` first, then every field."""
        d: dict[str, Any] = {"schema": EVENT_SCHEMA}
        for k, v in asdict(self).items():
            d[k] = _round(v) if isinstance(v, float) else v
        return d

    def to_json(self) -> str:
        """One compact JSON line (no newline)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        """Parse and validate one JSON-lines object (unknown extra fields are ignored)."""
        validate_event_dict(d)
        names = cls.__dataclass_fields__
        return cls(**{k: d[k] for k in names if k in d})

    def __str__(self) -> str:
        if self.kind in ("begin", "end"):
            span = f"{_fmt(self.start)}..{_fmt(self.end) if self.kind == 'end' else ''}"
            extra = f" ({self.reason})" if self.kind == "end" and self.reason else ""
            return (f"{self.t:8.2f}s {self.kind:<5} {self.task}: {self.label} "
                    f"p={self.confidence:.2f} [{span}]{extra}")
        what = self.state or ""
        if self.kind == "drop":
            what = f"dropped={self.dropped}"
        return f"{self.t:8.2f}s {self.kind:<5} {what}" + (f" ({self.reason})" if self.reason else "")


def _round(v: float) -> float | None:
    # Six decimals keep microseconds and probabilities readable; NaN is never written.
    return round(v, 6) if math.isfinite(v) else None


def _fmt(v: float | None) -> str:
    return "?" if v is None else f"{v:.2f}"


_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "t": (int, float), "frame": (int,), "task": (str,), "label": (str,),
    "confidence": (int, float), "start": (int, float), "end": (int, float), "state": (str,),
    "dropped": (int,), "reason": (str,),
}
_REQUIRED = {
    "begin": ("task", "label", "confidence", "start"),
    "end": ("task", "label", "confidence", "start", "end", "reason"),
    "state": ("state",),
    "drop": (),
    "stream": ("state",),
}


def validate_event_dict(d: Mapping[str, Any]) -> None:
    """Check one decoded JSON line against the schema.

    Raises:
        EventError: wrong or missing ``schema``, a missing field, a wrong type, an unknown
            kind or state, or a confidence outside [0, 1].
    """
    if not isinstance(d, Mapping):
        raise EventError(f"an event is a JSON object, got {type(d).__name__}")
    if d.get("schema") != EVENT_SCHEMA:
        raise EventError(f"schema {d.get('schema')!r}, this package reads {EVENT_SCHEMA!r}")
    missing = [k for k in _TYPES if k not in d]
    if missing:
        raise EventError(f"missing fields {missing}")
    for k, types in _TYPES.items():
        v = d[k]
        if v is None and k not in ("kind", "t", "frame", "dropped"):
            continue
        if not isinstance(v, types) or isinstance(v, bool):
            raise EventError(f"field {k!r} = {v!r} is not {'/'.join(t.__name__ for t in types)}")
        if isinstance(v, float) and not math.isfinite(v):  # json reads NaN and Infinity
            raise EventError(f"field {k!r} = {v!r} is not a finite number")
    kind = d["kind"]
    if kind not in KINDS:
        raise EventError(f"unknown kind {kind!r}; known {KINDS}")
    absent = [k for k in _REQUIRED[kind] if d[k] is None]
    if absent:
        raise EventError(f"{kind} event without {absent}")
    if kind == "state" and d["state"] not in STATES:
        raise EventError(f"unknown state {d['state']!r}; known {STATES}")
    if kind == "stream" and d["state"] not in STREAM_STATES:
        raise EventError(f"unknown stream state {d['state']!r}; known {STREAM_STATES}")
    if kind == "end" and d["reason"] not in END_REASONS:
        raise EventError(f"unknown end reason {d['reason']!r}; known {END_REASONS}")
    c = d["confidence"]
    if c is not None and not 0.0 <= c <= 1.0:
        raise EventError(f"confidence {c} outside [0, 1]")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Events from a JSON-lines file written by ``skelmtl run --jsonl``.

    Raises:
        EventError: naming the file and line of the first line that does not parse.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise EventError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                yield Event.from_dict(json.loads(line))
            except UnicodeDecodeError:
                raise EventError(f"{path}:{n}: not UTF-8 text") from None
            except (ValueError, RecursionError, EventError, TypeError) as e:
                raise EventError(f"{path}:{n}: {e}") from None


__all__ = ["END_REASONS", "EVENT_SCHEMA", "KINDS", "STATES", "STREAM_STATES", "Event",
           "EventError", "read_jsonl", "validate_event_dict"]
