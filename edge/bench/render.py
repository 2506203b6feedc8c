"""The report rendered: the terminal table, ``bench.md`` and ``bench.png``.

Every function takes the report's JSON form (:func:`edge.bench.report.as_dict`), so that
a ``bench.json`` read back renders the same.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.bench.report import AnyReport, as_dict


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


def render_table(report: AnyReport) -> str:
    """The per-stage table for the terminal (latencies in ms), then the ratios."""
    report = as_dict(report)
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


def render_markdown(report: AnyReport) -> str:
    """``bench.md``: device, model (FLOPs, parameters), stages, ratios, sweep, memory."""
    report = as_dict(report)
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


def plot_distributions(report: AnyReport, path: str | os.PathLike[str]) -> Path:
    """Box plots of every measured entry's samples (log scale), plus the sweep's medians."""
    report = as_dict(report)
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
