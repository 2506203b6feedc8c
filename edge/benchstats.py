"""Statistics and reports for ``skelmtl bench``: pure numpy, no timing in here.

:mod:`edge.bench` measures; this module turns the raw samples into numbers and files:

* :func:`summarize` -- p50 / p90 / p99 / mean / std / min / max of latency samples (ms);
* :func:`throughput` -- items per second from a batch size and latencies;
* :func:`ratio` -- a ratio that is ``None`` (not ``inf`` or ``nan``) when a side is missing;
* :func:`round_robin` -- the interleaved order in which the backends' repetitions run;
* :func:`validate_report` -- the JSON schema (version :data:`BENCH_SCHEMA`) as code;
* :func:`render_table`, :func:`render_markdown`, :func:`plot_distributions`,
  :func:`write_report` -- the terminal table, ``bench.md``, ``bench.png``, ``bench.json``
  (:func:`report_json`: each array of samples on one line).

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
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import atomic_write

BENCH_SCHEMA = 1
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


# --------------------------------------------------------------------------- schema

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


def validate_report(report: dict[str, Any]) -> None:
    """Check a report against schema :data:`BENCH_SCHEMA`.

    Raises:
        ValueError: listing every missing key and wrong type, with its path.
    """
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


# --------------------------------------------------------------------------- rendering

def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


_COLS = ("stage", "backend", "prec", "window", "batch", "n", "p50", "p90", "p99", "mean",
         "std", "min", "max", "per s")
_ID = 6  # identity columns before the numbers (a skipped row puts its reason there)


def _name(e: dict[str, Any]) -> str:
    """The stage column: the label without what the other columns already say."""
    if e["stage"] == "model":
        return "model"
    return re.sub(r" w\d+$", "", str(e.get("label") or e["stage"]))


def _rows(entries: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for e in entries:
        st = e.get("stats") or {}
        ident = [_name(e), e.get("backend") or "", e.get("precision") or "",
                 "" if e.get("window") is None else str(e["window"]), str(e["batch"])]
        if e.get("status") != "ok":
            rows.append([*ident, "-", f"{e.get('status')}: {e.get('reason')}", *([""] * 7)])
            continue
        unit = "fr" if e.get("unit") == "frame" else "win"
        tp = e.get("throughput_per_s")
        rows.append([*ident, str(st["n"]),
                     *(_fmt_ms(st[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms",
                                                  "std_ms", "min_ms", "max_ms")),
                     f"{_fmt_num(tp)} {unit}" if tp is not None else "-"])
    return rows


def _text_table(rows: list[list[str]]) -> list[str]:
    def skipped(r: list[str]) -> bool:
        return r[_ID].startswith(("skipped", "failed"))

    widths = [max([len(c)] + [len(r[i]) for r in rows if i < _ID or not skipped(r)])
              for i, c in enumerate(_COLS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(_COLS, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r in rows:
        cells = r[:_ID + 1] if skipped(r) else r
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    return out


def render_table(report: dict[str, Any]) -> str:
    """The per-stage table for the terminal (latencies in ms), then the ratios."""
    out = _text_table(_rows(report["stages"]))
    if report.get("sweep"):
        out += ["", "sweep (window length x batch size):", *_text_table(_rows(report["sweep"]))]
    ratios = report.get("ratios") or {}
    if ratios:
        out.append("")
        for name, r in ratios.items():
            v = r.get("value")
            out.append(f"{name}: {'-' if v is None else f'{v:.3f}'}  ({r.get('note', '')})")
    return "\n".join(out)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def render_markdown(report: dict[str, Any]) -> str:
    """``bench.md``: device, model (FLOPs, parameters), stages, ratios, sweep, memory."""
    dev, model, mem = report["device"], report["model"], report["memory"]
    lines = ["# skelmtl bench", "",
             f"- command: `{report['command']}`",
             f"- created: {report['created']} (skelmtl {report['version']}, "
             f"report schema {report['schema']})",
             f"- CPU: {dev['cpu_model']}, {dev['cores']} logical cores "
             f"({dev['affinity_cores']} usable by this process); {dev['platform']}",
             f"- Python {dev['python']}; "
             + ", ".join(f"{k} {v}" for k, v in sorted(dev["libraries"].items()) if v),
             f"- GPU: {_gpu_line(dev)}; CUDA toolkit: {dev['cuda'] or 'absent'}; "
             f"TensorRT: {dev['tensorrt'] or 'absent'}; Jetson: "
             f"{_jetson_line(dev['jetson'])}",
             ""]
    lines += ["## Model", "",
              f"- `{model['path']}`: {model['name'] or 'unnamed'}, tasks "
              f"{', '.join(model['tasks'])}, window {model['window']} frames, stride "
              f"{model['stride']}, {model['channels']} input channels",
              f"- parameters: {_fmt_count(model['params'])}; per window: "
              f"{_fmt_count(model['flops_per_window'])} FLOPs "
              f"({_fmt_count(model['macs_per_window'])} multiply-accumulates; "
              f"counted by {model['flops_source']})", ""]
    cfg = report["config"]
    lines += ["## Per-stage latency (ms)", "",
              f"{cfg.get('warmup', '?')} warm-up calls, then {cfg.get('iters', '?')} timed "
              f"calls per entry ({cfg.get('frames', '?')} timed frames for the video "
              "stages, after a window of warm-up frames); model backends interleaved "
              "round-robin, end to end interleaved with the landmarks frame by frame. "
              "`per s` is frames (fr) or windows (win) per second: batch / mean latency.",
              ""]
    lines += _md_table(_COLS, _rows(report["stages"]))
    by_reason: dict[str, list[str]] = {}
    for e in report["stages"]:
        if e["status"] == "ok" and e.get("reason"):
            by_reason.setdefault(str(e["reason"]), []).append(str(e["label"]))
    notes = [f"- {', '.join(labels)}: {reason}" for reason, labels in by_reason.items()]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += ["", "## Ratios", ""]
    rrows = []
    for name, r in report["ratios"].items():
        v = r.get("value")
        rrows.append([name, "-" if v is None else f"{v:.3f}", f"{r.get('num', '')}",
                      f"{r.get('den', '')}", r.get("note", "")])
    lines += _md_table(("ratio", "value", "numerator", "denominator", "note"), rrows)
    if report["sweep"]:
        lines += ["", "## Sweep: window length x batch size (ms per call)", ""]
        lines += _md_table(_COLS, _rows(report["sweep"]))
    lines += ["", "## Memory", "",
              f"- peak resident memory of the process: {mem['peak_rss_mb']:.0f} MiB"]
    if mem["rss_mb_after"]:
        lines.append("- resident memory after each stage: " + ", ".join(
            f"{k} {v:.0f} MiB" for k, v in mem["rss_mb_after"].items()))
    lines.append(f"- GPU memory: {json.dumps(mem['gpu']) if mem['gpu'] else 'no GPU'}")
    power = report.get("power")
    if power:
        lines += ["", "## Power (tegrastats during the run)", "",
                  f"- {power.get('samples')} samples; mean mW per rail: "
                  f"{json.dumps(power.get('power_mw_mean'))}; max: "
                  f"{json.dumps(power.get('power_mw_max'))}",
                  f"- peak RAM {power.get('ram_used_mb_max')} MB; mean GPU load "
                  f"{power.get('gpu_load_pct_mean')}%"]
    lines.append("")
    return "\n".join(lines)


def _gpu_line(dev: dict[str, Any]) -> str:
    gpus = dev.get("gpu")
    if not gpus:
        return "absent"
    return "; ".join(str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in gpus)


def _jetson_line(j: dict[str, Any] | None) -> str:
    if not j:
        return "no"
    return ", ".join(f"{k} {v}" for k, v in j.items() if v)


def _fmt_count(v: int | None) -> str:
    if v is None:
        return "unknown"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.2f}{suffix}"
    return str(v)


def plot_distributions(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Box plots of every measured entry's samples (log scale), plus the sweep's medians."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in report["stages"] if e["status"] == "ok" and e["samples_ms"]]
    sweep = [e for e in report["sweep"] if e["status"] == "ok" and e["stats"]]
    fig, axes = plt.subplots(1, 2 if sweep else 1, figsize=(14 if sweep else 9,
                                                            max(3.0, 0.35 * len(entries) + 1.5)),
                             squeeze=False)
    ax = axes[0][0]
    if entries:
        data = [e["samples_ms"] for e in entries]
        style: dict[str, Any] = {"whis": (1, 99), "showfliers": True,
                                 "flierprops": {"markersize": 2}}
        try:  # matplotlib >= 3.10 names it orientation; vert= is deprecated there
            ax.boxplot(data, orientation="horizontal", **style)
        except TypeError:
            ax.boxplot(data, vert=False, **style)
        ax.set_yticks(range(1, len(entries) + 1), [e["label"] for e in entries], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
    ax.set_xlabel("latency per call (ms, log scale); whiskers p1-p99")
    ax.set_title("per-stage latency distributions")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    if sweep:
        ax2 = axes[0][1]
        keys = sorted({(e["stage"], e.get("backend") or "", e.get("precision") or "",
                        e["batch"]) for e in sweep})
        batches = sorted({k[3] for k in keys})
        colours = {b: f"C{i}" for i, b in enumerate(batches)}
        for key in keys:
            stage, backend, prec, batch = key
            pts = sorted((e["window"], e["stats"]["p50_ms"]) for e in sweep
                         if (e["stage"], e.get("backend") or "", e.get("precision") or "",
                             e["batch"]) == key and e["window"] is not None)
            if not pts:
                continue
            # Colour = batch; line style = what runs (preprocess dotted, INT8 dashed).
            line = ":" if stage != "model" else ("--" if prec == "int8" else "-")
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle=line,
                     color=colours[batch] if stage == "model" else "k",
                     label=" ".join(x for x in (stage, backend, prec, f"b{batch}") if x))
        ax2.set_xscale("log", base=2)
        wins = sorted({e["window"] for e in sweep if e["window"] is not None})
        ax2.set_xticks(wins, [str(w) for w in wins])
        ax2.minorticks_off()
        ax2.set_yscale("log")
        ax2.set_xlabel("window length (frames)")
        ax2.set_ylabel("p50 latency per call (ms)")
        ax2.set_title("sweep: cost vs window and batch")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def report_json(report: dict[str, Any]) -> str:
    """``bench.json``'s text: objects indented one space a level, and every list of plain
    values (the raw ``samples_ms``, ``rounds_p50_ms``, tasks) on one line.

    The same JSON as ``json.dumps(report, indent=1)`` reads back to; one line per array
    instead of one per sample, so that a tracked report changes in a few hundred lines
    per run, not fifteen thousand.

    Raises:
        ValueError: a NaN or infinite number (JSON has none).
    """
    return _json(report, 0) + "\n"


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


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str], *,
                 plot: bool = True) -> dict[str, Path]:
    """Validate, then write ``bench.json``, ``bench.md`` and (optionally) ``bench.png``.

    Each file is written atomically. Returns ``kind -> path`` for what was written.

    Raises:
        ValueError: the report does not match the schema (nothing is written).
    """
    validate_report(report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "bench.json", "markdown": out / "bench.md"}
    _write_text(written["json"], report_json(report))
    _write_text(written["markdown"], render_markdown(report))
    if plot:
        written["png"] = plot_distributions(report, out / "bench.png")
    return written


def make_entry(stage: str, label: str, samples_ms: Sequence[float] | np.ndarray | None, *,
               batch: int = 1, unit: str = "window", backend: str | None = None,
               precision: str | None = None, window: int | None = None,
               reason: str | None = None, per_call_items: int | None = None,
               failed: bool = False) -> dict[str, Any]:
    """One report entry: ``ok`` with statistics when there are samples, else ``skipped``
    (what it needs is not installed or not there), or ``failed`` with ``failed`` (it is
    there and broke: a TensorRT engine that does not build or load on the board).

    ``per_call_items`` (default ``batch``) is how many units one call handles, for the
    throughput. ``reason`` on an ``ok`` entry is a caveat (e.g. random weights).
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {STAGES}")
    base = {"stage": stage, "label": label, "backend": backend, "precision": precision,
            "batch": int(batch), "unit": unit, "window": window}
    if samples_ms is None or len(samples_ms) == 0:
        return {**base, "status": "failed" if failed else "skipped",
                "reason": reason or "no samples",
                "stats": None, "throughput_per_s": None, "samples_ms": []}
    a = np.asarray(samples_ms, dtype=np.float64)
    return {**base, "status": "ok", "reason": reason,
            "stats": summarize(a).to_dict(),
            "throughput_per_s": throughput(per_call_items or batch, a),
            "samples_ms": [round(float(v), 5) for v in a]}


def find_entry(entries: Sequence[dict[str, Any]], stage: str, *, backend: str | None = None,
               precision: str | None = None, batch: int | None = None,
               window: int | None = None) -> dict[str, Any] | None:
    """The first ``ok`` entry matching every given field (``None`` = any)."""
    for e in entries:
        if e["stage"] != stage or e["status"] != "ok":
            continue
        if backend is not None and e.get("backend") != backend:
            continue
        if precision is not None and e.get("precision") != precision:
            continue
        if batch is not None and e.get("batch") != batch:
            continue
        if window is not None and e.get("window") != window:
            continue
        return e
    return None


def p50(entry: dict[str, Any] | None) -> float | None:
    """The entry's median latency in ms, or ``None`` for a missing/skipped entry."""
    if not entry or entry.get("status") != "ok" or not entry.get("stats"):
        return None
    return float(entry["stats"]["p50_ms"])
