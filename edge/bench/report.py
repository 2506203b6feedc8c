"""The benchmark's report: typed (:class:`BenchReport`), validated, written.

:class:`BenchReport` is what :func:`edge.bench.run_bench` returns; ``to_dict()`` is its
JSON form, which :func:`validate_report` checks, :func:`write_report` writes
(``bench.json`` via :func:`report_json`: each array of samples on one line, ``bench.md``,
``bench.png``) and :mod:`edge.bench.render` renders. Reports read back from a file are
the JSON form.

Report layout (``schema`` 1), every key required unless marked optional::

    schema      1
    tool        "skelmtl bench"
    version     package version
    created     ISO-8601 UTC time
    command     the command line, as run
    config      the options (iterations, warm-up, sweeps, backends asked for)
    device      cpu_model, cores, affinity_cores, platform, python, libraries{name: ver|None},
                gpu (list or None), cuda, tensorrt, jetson (dict or None)
    model       path, name, tasks, window, stride, channels, params, flops_per_window,
                macs_per_window, flops_source
    stages      list of entries (below): the per-stage latencies
    sweep       list of entries: preprocessing and model over window x batch
    memory      peak_rss_mb, rss_mb_after{stage: MiB}, gpu (dict or None)
    ratios      name -> {value: float|None, num: str, den: str, note: str}
    skipped     list of {stage, reason}
    power       optional: tegrastats samples during the run (Jetson), or None

An entry::

    stage       video_decode | landmarks_pose | landmarks_hands | landmarks | preprocess |
                model | routing | end_to_end | end_to_end_replay
    label       unique human-readable name, e.g. "model onnxruntime int8 b32"
    backend     str or None;  precision  str or None
    batch       windows (or frames) per call;  unit  "frame" | "window"
    window      frames per window or None
    status      "ok" | "skipped" | "failed";  reason  str or None (why skipped or failed,
                or a caveat)
    stats       summarize(...).to_dict() or None
    throughput_per_s   units per second or None
    samples_ms  the raw samples (after warm-up), for plots and re-analysis
    rounds_p50_ms  optional (model rows timed in several rounds): each round's p50

A ratio may also carry ``rounds``: the ratio of each round's p50s (INT8 / FP32 rows).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from typing import Mapping as TypingMapping  # evaluated in AnyReport below, on 3.8 too

from edge.bench.stats import STAGES, Entry, Problem, Stats
from edge.core.atomic import atomic_write

BENCH_SCHEMA = 1


@dataclass(frozen=True)
class Ratio:
    """One ratio of two rows' latencies (or an agreement share).

    Attributes:
        value: the ratio, None when a side is missing.
        num, den: what was divided by what (labels).
        note: what it means and what it aims at.
        rounds: the ratio of each round's p50s (rows timed in rounds), else None.
    """

    value: float | None
    num: str
    den: str
    note: str
    rounds: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": self.value, "num": self.num, "den": self.den}
        if self.rounds is not None:
            d["rounds"] = list(self.rounds)
        d["note"] = self.note
        return d


@dataclass(frozen=True)
class ModelInfo:
    """The measured model: ``path``, registry ``name``, ``tasks``, ``window``, ``stride``,
    input ``channels``; ``params``, ``macs_per_window``, ``flops_per_window`` (None when
    not counted) and how (``flops_source``); the INT8 sibling, the checkpoint, and the
    number of labels per task."""

    path: str
    name: str
    tasks: tuple[str, ...]
    window: int
    stride: int
    channels: int
    params: int | None
    macs_per_window: int | None
    flops_per_window: int | None
    flops_source: str
    int8_path: str | None = None
    checkpoint: str | None = None
    labels: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "tasks": list(self.tasks),
                "window": self.window, "stride": self.stride, "channels": self.channels,
                "params": self.params, "macs_per_window": self.macs_per_window,
                "flops_per_window": self.flops_per_window, "flops_source": self.flops_source,
                "int8_path": self.int8_path, "checkpoint": self.checkpoint,
                "labels": dict(self.labels)}


@dataclass(frozen=True)
class Memory:
    """Resident memory: the peak (MiB), after each stage, and the GPU's (None: no GPU)."""

    peak_rss_mb: float
    rss_mb_after: Mapping[str, float]
    gpu: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"peak_rss_mb": self.peak_rss_mb, "rss_mb_after": dict(self.rss_mb_after),
                "gpu": dict(self.gpu) if self.gpu is not None else None}


@dataclass(frozen=True)
class BenchReport:
    """A whole benchmark run (the layout is in the module doc).

    ``config``, ``device`` and ``power`` are what the options and the probes
    (:mod:`edge.bench.probe`) say, as JSON-ready mappings: their keys vary by machine.
    """

    created: str
    command: str
    config: Mapping[str, Any]
    device: Mapping[str, Any]
    model: ModelInfo
    stages: tuple[Entry, ...]
    sweep: tuple[Entry, ...]
    memory: Memory
    ratios: Mapping[str, Ratio]
    skipped: tuple[Problem, ...]
    failed: tuple[Problem, ...] = ()
    power: Mapping[str, Any] | None = None
    version: str = ""
    schema: int = BENCH_SCHEMA
    tool: str = "skelmtl bench"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in the order ``bench.json`` has always had."""
        return {"schema": self.schema, "tool": self.tool, "version": self.version,
                "created": self.created, "command": self.command, "config": dict(self.config),
                "device": dict(self.device), "model": self.model.to_dict(),
                "stages": [e.to_dict() for e in self.stages],
                "sweep": [e.to_dict() for e in self.sweep], "memory": self.memory.to_dict(),
                "ratios": {k: r.to_dict() for k, r in self.ratios.items()},
                "skipped": [p.to_dict() for p in self.skipped],
                "failed": [p.to_dict() for p in self.failed], "power": self.power}


AnyReport = Union[BenchReport, TypingMapping[str, Any]]


def as_dict(report: AnyReport) -> dict[str, Any]:
    """The JSON form of a typed report; a mapping (a report read back) as it is."""
    return report.to_dict() if isinstance(report, BenchReport) else dict(report)


_ENTRY_KEYS: dict[str, tuple[type, ...]] = {
    "stage": (str,), "label": (str,), "backend": (str, type(None)),
    "precision": (str, type(None)), "batch": (int,), "unit": (str,),
    "window": (int, type(None)), "status": (str,), "reason": (str, type(None)),
    "stats": (dict, type(None)), "throughput_per_s": (float, int, type(None)),
    "samples_ms": (list,),
}


_TOP_KEYS: dict[str, tuple[type, ...]] = {
    "schema": (int,), "tool": (str,), "version": (str,), "created": (str,),
    "command": (str,), "config": (dict,), "device": (dict,), "model": (dict,),
    "stages": (list,), "sweep": (list,), "memory": (dict,), "ratios": (dict,),
    "skipped": (list,),
}


_DEVICE_KEYS: dict[str, tuple[type, ...]] = {
    "cpu_model": (str,), "cores": (int,), "affinity_cores": (int,), "platform": (str,),
    "python": (str,), "libraries": (dict,), "gpu": (list, type(None)),
    "cuda": (str, type(None)), "tensorrt": (str, type(None)), "jetson": (dict, type(None)),
}


_MODEL_KEYS: dict[str, tuple[type, ...]] = {
    "path": (str,), "name": (str,), "tasks": (list,), "window": (int,), "stride": (int,),
    "channels": (int,), "params": (int, type(None)), "flops_per_window": (int, type(None)),
    "macs_per_window": (int, type(None)), "flops_source": (str,),
}


_MEMORY_KEYS: dict[str, tuple[type, ...]] = {
    "peak_rss_mb": (float, int), "rss_mb_after": (dict,), "gpu": (dict, type(None)),
}


_STATS_KEYS = tuple(f.name for f in Stats.__dataclass_fields__.values())


def _check(d: Any, keys: dict[str, tuple[type, ...]], where: str, errors: list[str]) -> None:
    if not isinstance(d, dict):
        errors.append(f"{where}: not an object")
        return
    for k, types in keys.items():
        if k not in d:
            errors.append(f"{where}.{k}: missing")
        elif isinstance(d[k], bool) or not isinstance(d[k], types):
            errors.append(f"{where}.{k}: {type(d[k]).__name__}, expected "
                          f"{' or '.join(t.__name__ for t in types)}")


def validate_report(report: AnyReport) -> None:
    """Check a report against schema :data:`BENCH_SCHEMA`.

    Raises:
        ValueError: listing every missing key and wrong type, with its path.
    """
    if isinstance(report, BenchReport):
        report = report.to_dict()
    errors: list[str] = []
    _check(report, _TOP_KEYS, "report", errors)
    if errors and not isinstance(report, dict):
        raise ValueError("; ".join(errors))
    if report.get("schema") not in (None, BENCH_SCHEMA) and isinstance(report.get("schema"), int):
        errors.append(f"report.schema: {report['schema']}, this package writes {BENCH_SCHEMA}")
    _check(report.get("device", {}), _DEVICE_KEYS, "device", errors)
    _check(report.get("model", {}), _MODEL_KEYS, "model", errors)
    _check(report.get("memory", {}), _MEMORY_KEYS, "memory", errors)
    for group in ("stages", "sweep"):
        entries = report.get(group, [])
        for i, e in enumerate(entries if isinstance(entries, list) else []):
            where = f"{group}[{i}]"
            _check(e, _ENTRY_KEYS, where, errors)
            if not isinstance(e, dict):
                continue
            if e.get("status") not in ("ok", "skipped", "failed"):
                errors.append(f"{where}.status: {e.get('status')!r}, expected 'ok', 'skipped' "
                              "or 'failed'")
            if e.get("stage") not in STAGES:
                errors.append(f"{where}.stage: unknown stage {e.get('stage')!r}")
            if e.get("status") == "ok":
                st = e.get("stats")
                if not isinstance(st, dict) or any(k not in st for k in _STATS_KEYS):
                    errors.append(f"{where}.stats: needs {list(_STATS_KEYS)}")
            elif not e.get("reason"):
                errors.append(f"{where}.reason: a skipped or failed entry must say why")
    for name, r in (report.get("ratios") or {}).items():
        if not isinstance(r, dict) or "value" not in r or not isinstance(
                r["value"], (float, int, type(None))):
            errors.append(f"ratios.{name}: needs value (number or null)")
    for key in ("skipped", "failed"):  # "failed" is optional (older reports lack it)
        for i, s in enumerate(report.get(key) or []):
            if not isinstance(s, dict) or not {"stage", "reason"} <= set(s):
                errors.append(f"{key}[{i}]: needs stage and reason")
    if errors:
        raise ValueError("bench report does not match schema "
                         f"{BENCH_SCHEMA}: " + "; ".join(errors))


def report_json(report: AnyReport) -> str:
    """``bench.json``'s text: objects indented one space a level, and every list of plain
    values (the raw ``samples_ms``, ``rounds_p50_ms``, tasks) on one line.

    The same JSON as ``json.dumps(report, indent=1)`` reads back to; one line per array
    instead of one per sample, so that a tracked report changes in a few hundred lines
    per run, not fifteen thousand.

    Raises:
        ValueError: a NaN or infinite number (JSON has none).
    """
    return _json(as_dict(report), 0) + "\n"


def _json(v: Any, level: int) -> str:
    if isinstance(v, dict):
        items = [f"{json.dumps(k if isinstance(k, str) else json.dumps(k))}: "
                 f"{_json(x, level + 1)}" for k, x in v.items()]
    elif isinstance(v, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in v):
            return json.dumps(list(v), allow_nan=False)
        items = [_json(x, level + 1) for x in v]
    else:
        return json.dumps(v, allow_nan=False)
    if not items:
        return "{}" if isinstance(v, dict) else "[]"
    pad = " " * (level + 1)
    close = "}" if isinstance(v, dict) else "]"
    return ("{" if isinstance(v, dict) else "[") + "\n" + ",\n".join(
        pad + i for i in items) + "\n" + " " * level + close


def write_report(report: AnyReport, out_dir: str | os.PathLike[str], *,
                 plot: bool = True) -> dict[str, Path]:
    """Validate, then write ``bench.json``, ``bench.md`` and (optionally) ``bench.png``.

    Each file is written atomically. Returns ``kind -> path`` for what was written.

    Raises:
        ValueError: the report does not match the schema (nothing is written).
    """
    from edge.bench.render import plot_distributions, render_markdown

    report = as_dict(report)
    validate_report(report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "bench.json", "markdown": out / "bench.md"}
    atomic_write(written["json"], report_json(report))
    atomic_write(written["markdown"], render_markdown(report))
    if plot:
        written["png"] = plot_distributions(report, out / "bench.png")
    return written
