"""FP32 vs INT8: accuracy per head on the test split, and ONNX Runtime latency side by side.

Usage: skelmtl calibrate model.onnx --data STORE -o model.int8.onnx --report report.json

:func:`compare_models` is also what the benchmark calls. Latency is measured here and
written to the report; tests never assert it (timings on a shared CPU are not facts).

The bar the project holds itself to (reported in ``"bar"``, not enforced): the INT8 top-1
drop is at most 1.0 point on every head, and INT8 runs in at most 0.6x the FP32 latency
at batch 1 and batch 32.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calibration.calibset import WindowSet, batches, load_split
from calibration.onnx_meta import load_onnx, read_meta
from edge.core.atomic import atomic_write
from edge.core.metadata import INPUT_NAME, TASK_OUTPUT, logits_name

REPORT_SCHEMA = 1
MAX_TOP1_DROP = 1.0  # points
MAX_LATENCY_RATIO = 0.6


def session(path: str | os.PathLike[str], threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations and ``threads`` threads.

    The model is prepared as the runtime's CPU backend prepares it (:mod:`edge.backends.qdq`), so
    the report measures what ``skelmtl run`` runs.
    """
    import onnxruntime as ort

    from edge.backends.qdq import fold_relu_for_cpu

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    model, _ = fold_relu_for_cpu(Path(path).read_bytes())
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run_all(sess: Any, x: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Every output of ``sess`` on ``x``, batched, concatenated."""
    names = [o.name for o in sess.get_outputs()]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for b in batches(x, batch):
        for n, v in zip(names, sess.run(names, {INPUT_NAME: b})):
            parts[n].append(v)
    return {n: np.concatenate(v) for n, v in parts.items()}


def head_accuracy(fp32: dict[str, np.ndarray], int8: dict[str, np.ndarray], ws: WindowSet,
                  labels: dict[str, tuple[str, ...]], tasks: Sequence[str]) -> dict[str, Any]:
    """Per head: n, FP32 and INT8 top-1, the drop in points, agreement, max |logit diff|.

    Windows whose class the model does not know are left out (and counted).
    """
    out: dict[str, Any] = {}
    task_arr = np.asarray(ws.task)
    for t in tasks:
        name = logits_name(t)
        if name not in fp32:
            continue
        sel = np.flatnonzero(task_arr == t)
        known = [i for i in sel if ws.label[i] in labels[t]]
        if not known:
            continue
        y = np.asarray([labels[t].index(ws.label[i]) for i in known])
        a, b = fp32[name][known], int8[name][known]
        pa, pb = a.argmax(1), b.argmax(1)
        top1_a, top1_b = float((pa == y).mean()), float((pb == y).mean())
        out[t] = {"n": len(known), "unknown_label": int(len(sel) - len(known)),
                  "top1_fp32": top1_a, "top1_int8": top1_b,
                  "top1_drop_points": 100.0 * (top1_a - top1_b),
                  "agreement": float((pa == pb).mean()),
                  "max_abs_logit_diff": float(np.abs(a - b).max())}
    if TASK_OUTPUT in fp32:
        idx = {t: i for i, t in enumerate(tasks)}
        y = np.asarray([idx.get(t, -1) for t in ws.task])
        keep = y >= 0
        a, b = fp32[TASK_OUTPUT][keep], int8[TASK_OUTPUT][keep]
        pa, pb = a.argmax(1), b.argmax(1)
        out[TASK_OUTPUT] = {"n": int(keep.sum()), "top1_fp32": float((pa == y[keep]).mean()),
                            "top1_int8": float((pb == y[keep]).mean()),
                            "top1_drop_points": 100.0 * float((pa == y[keep]).mean()
                                                              - (pb == y[keep]).mean()),
                            "agreement": float((pa == pb).mean()),
                            "max_abs_logit_diff": float(np.abs(a - b).max())}
    return out


def latency(sessions: dict[str, Any], x: np.ndarray, batch_sizes: Sequence[int] = (1, 32),
            repeats: int = 200, warmup: int = 20, budget_s: float = 20.0) -> dict[str, Any]:
    """Median / p90 latency of each session, interleaved run by run so both see the same
    machine state.

    Args:
        sessions: name -> ONNX Runtime session.
        x: windows to feed (cycled).
        batch_sizes: batch sizes to time.
        repeats: timed runs per session and batch size (fewer when ``budget_s`` runs out).
        warmup: untimed runs first.
        budget_s: wall-clock budget per batch size.

    Returns:
        ``{"batch_<b>": {name: {"median_ms", "p90_ms", "runs"}, "ratio": ...}}`` where the
        ratio is the second session's median over the first's.
    """
    out: dict[str, Any] = {}
    names = list(sessions)
    for bs in batch_sizes:
        reps = np.resize(np.arange(len(x)), bs)
        feed = {INPUT_NAME: np.ascontiguousarray(x[reps])}
        for _ in range(warmup):
            for s in sessions.values():
                s.run(None, feed)
        times: dict[str, list[float]] = {n: [] for n in names}
        t_end = time.perf_counter() + budget_s
        for r in range(repeats):
            order = names if r % 2 == 0 else names[::-1]  # alternate who goes first
            for n in order:
                t0 = time.perf_counter()
                sessions[n].run(None, feed)
                times[n].append(time.perf_counter() - t0)
            if time.perf_counter() > t_end and r >= 10:
                break
        entry: dict[str, Any] = {n: {"median_ms": 1e3 * float(np.median(v)),
                                     "p90_ms": 1e3 * float(np.percentile(v, 90)),
                                     "runs": len(v)} for n, v in times.items()}
        if len(names) == 2:
            entry["ratio"] = entry[names[1]]["median_ms"] / entry[names[0]]["median_ms"]
        out[f"batch_{bs}"] = entry
    return out


def compare_models(fp32_path: str | os.PathLike[str], int8_path: str | os.PathLike[str],
                   data: Sequence[str | os.PathLike[str]] | None = None, *,
                   windows: WindowSet | None = None, split: str = "test", threads: int = 1,
                   measure_latency: bool = True, repeats: int = 200) -> dict[str, Any]:
    """The FP32 vs INT8 report.

    Args:
        fp32_path, int8_path: the exported model and its Q/DQ version.
        data: clip stores (their ``split`` clips are evaluated); or pass ``windows``.
        windows: preprocessed windows with labels, instead of ``data``.
        split: which split of ``data``.
        threads: ONNX Runtime intra-op threads for both models.
        measure_latency: time both models at batch 1 and 32.
        repeats: timed runs per model and batch size.

    Returns:
        A JSON-ready dict: models, data, ``heads`` (per-head accuracy), ``latency``,
        ``bar`` (the targets and whether this run meets them).
    """
    fp32_meta = read_meta(load_onnx(fp32_path), fp32_path)
    int8_meta = read_meta(load_onnx(int8_path), int8_path)
    if fp32_meta.tasks != int8_meta.tasks or fp32_meta.labels != int8_meta.labels:
        from edge.core.metadata import MetadataError

        raise MetadataError(f"{int8_path}: tasks/labels differ from {fp32_path}; compare a "
                            "model with its own quantized version")
    if windows is None:
        if not data:
            raise ValueError("give clip stores (data) or windows")
        windows = load_split(data, fp32_meta, split=split)
    s32, s8 = session(fp32_path, threads), session(int8_path, threads)
    out32, out8 = run_all(s32, windows.x), run_all(s8, windows.x)
    heads = head_accuracy(out32, out8, windows, fp32_meta.labels, fp32_meta.tasks)
    import onnxruntime as ort

    rep: dict[str, Any] = {
        "schema": REPORT_SCHEMA, "fp32": str(fp32_path), "int8": str(int8_path),
        "split": split, "windows": len(windows), "heads": heads,
        "calibration": int8_meta.producer.get("calibration", {}),
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "onnxruntime": ort.__version__,
                    "threads": threads},
    }
    if measure_latency:
        rep["latency"] = latency({"fp32": s32, "int8": s8}, windows.x, repeats=repeats)
    drops = {k: v["top1_drop_points"] for k, v in heads.items() if k != TASK_OUTPUT}
    bar: dict[str, Any] = {"max_top1_drop_points": MAX_TOP1_DROP,
                           "max_latency_ratio": MAX_LATENCY_RATIO,
                           "accuracy_ok": all(d <= MAX_TOP1_DROP for d in drops.values())}
    if measure_latency:
        ratios = {k: v["ratio"] for k, v in rep["latency"].items()}
        bar["latency_ok"] = all(r <= MAX_LATENCY_RATIO for r in ratios.values())
    rep["bar"] = bar
    return rep


def write_report(rep: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the report as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, (json.dumps(rep, indent=2, sort_keys=True) + "\n").encode())


def format_report(rep: dict[str, Any]) -> str:
    """A short table for the terminal."""
    lines = [f"FP32 vs INT8 on {rep['windows']} {rep['split']} windows "
             f"(calibration: {rep.get('calibration', {}).get('method', '?')})",
             f"{'head':<14}{'n':>6}{'fp32':>8}{'int8':>8}{'drop':>7}{'agree':>8}{'max|d|':>9}"]
    for k, v in rep["heads"].items():
        lines.append(f"{k:<14}{v['n']:>6}{100 * v['top1_fp32']:>7.1f}%{100 * v['top1_int8']:>7.1f}%"
                     f"{v['top1_drop_points']:>7.2f}{100 * v['agreement']:>7.1f}%"
                     f"{v['max_abs_logit_diff']:>9.4f}")
    for b, v in rep.get("latency", {}).items():
        lines.append(f"latency {b}: fp32 {v['fp32']['median_ms']:.3f} ms, int8 "
                     f"{v['int8']['median_ms']:.3f} ms, ratio {v.get('ratio', float('nan')):.2f}")
    lines.append(format_bar(rep))
    return "\n".join(lines)


def format_bar(rep: dict[str, Any]) -> str:
    """The bar line, with the measured values beside the bar they are held to."""
    bar = rep.get("bar", {})
    drops = {k: v["top1_drop_points"] for k, v in rep.get("heads", {}).items()
             if k != TASK_OUTPUT}
    worst = max(drops.values()) if drops else float("nan")
    text = (f"bar: accuracy {'ok' if bar.get('accuracy_ok') else 'MISSED'} (largest top-1 "
            f"drop {worst:.2f} points, bar <= {bar.get('max_top1_drop_points', MAX_TOP1_DROP)})")
    if "latency_ok" in bar:
        ratios = ", ".join(f"{v.get('ratio', float('nan')):.2f} at {b.replace('_', ' ')}"
                           for b, v in rep.get("latency", {}).items())
        text += (f", latency {'ok' if bar.get('latency_ok') else 'MISSED'} (INT8/FP32 time "
                 f"ratio {ratios}, bar <= "
                 f"{bar.get('max_latency_ratio', MAX_LATENCY_RATIO)})")
    return text
