"""The model rows: every backend and precision, timed interleaved; the router; the
preprocessing; the streaming pipeline on replayed landmark frames."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.inputs import Landmarks, ModelFiles, _batch, _windows
from edge.bench.options import BACKEND_CHOICES, BenchOptions, _short, _timed
from edge.bench.probe import _gpu_process_mb, _tensorrt_version
from edge.bench.stats import Entry, Recorder, interleaved_groups, make_entry, round_entry
from edge.core.errors import SkelmtlError
from edge.core.preprocess import PreprocessConfig, preprocess


@dataclass(frozen=True, eq=False)
class ModelRun:
    """What the model rows leave for the rest of the run.

    Attributes:
        agreement: backend -> output name -> share of windows whose top-1 class equals
            ONNX Runtime FP32's.
        outputs: ONNX Runtime FP32's outputs on the benchmark's windows (``(N, K)`` per
            output name; the routing stage routes on them), or None.
        gpu_process_mb: GPU memory this process held with every backend open, if seen.
    """

    agreement: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    outputs: Mapping[str, np.ndarray] | None = None
    gpu_process_mb: float | None = None


def _open_onnxruntime(path: Path, threads: int = 0, providers: str = "cpu") -> Any:
    from edge.backends import load_backend

    opts: dict[str, Any] = {"intra_op_threads": threads} if threads else {}
    if providers != "cpu":
        opts["providers"] = providers
    return load_backend(path, "onnxruntime", **opts)


def _open_backend(which: str, files: ModelFiles, opts: BenchOptions,
                  log: Callable[[str], None]) -> tuple[Any | None, str | None]:
    """Open one of :data:`BACKEND_CHOICES`: (backend, caveat) or (None, reason skipped)."""
    kind, precision = which.split("-")
    try:
        if kind == "onnxruntime":
            path = files.fp32 if precision == "fp32" else files.int8
            if path is None:
                return None, (f"no INT8 model next to {files.fp32} (expected "
                              f"{files.fp32.with_suffix('').name}.int8.onnx; make it with "
                              "skelmtl calibrate)")
            if importlib.util.find_spec("onnxruntime") is None:
                return None, "onnxruntime is not installed (pip install 'skelmtl[edge]')"
            return _open_onnxruntime(path, opts.threads, opts.providers), None
        if kind == "torch":
            if files.checkpoint is None:
                return None, ("no checkpoint (*.pt) next to the model; pass --checkpoint "
                              "to compare PyTorch FP32")
            from edge.backends import available_backends, load_backend

            if "torch" not in available_backends():
                return None, "no 'torch' backend registered (install skelmtl[train])"
            if importlib.util.find_spec("torch") is None:
                return None, "torch is not installed"
            return load_backend(files.checkpoint, "torch",
                                **({"threads": opts.threads} if opts.threads else {})), None
        if kind == "tensorrt":
            if _tensorrt_version() is None:
                return None, "TensorRT is not installed (JetPack's python3-libnvinfer)"
            src = files.int8 if precision == "int8" else files.fp32
            if src is None:
                return None, "no INT8 Q/DQ model to build an INT8 engine from"
            from edge.backends import load_backend
            from edge.engine.cache import ensure_engine

            cache = opts.engine_cache or (opts.out / "engines")
            log(f"bench: TensorRT {precision} engine from {src} (cache {cache})")
            eng = ensure_engine(src, cache, precision,
                                log=lambda m: log(f"skelmtl engine cache: {m}"))
            return load_backend(eng.path, "tensorrt"), None
    except ImportError as e:
        return None, f"needs the missing module {e.name or _short(e)!r}"
    except SkelmtlError as e:
        return None, _short(e)
    except Exception as e:  # a backend failing to load must not stop the others
        return None, f"failed to load: {_short(e)}"
    return None, f"unknown backend {which!r}"


def _bench_models(rec: Recorder, opts: BenchOptions, files: ModelFiles,
                  xs: list[np.ndarray], log: Callable[[str], None]) -> ModelRun:
    """Open every backend, time them interleaved at each batch; returns agreement info."""
    opened: dict[str, Any] = {}
    caveats: dict[str, str | None] = {}
    entries: dict[tuple[str, int], Entry] = {}  # recorded in BACKEND_CHOICES order
    window = int(xs[0].shape[1])

    def skip(which: str, batch: int, why: str) -> None:
        kind, prec = which.split("-")
        # TensorRT present but its engine does not build, load or run: a failure the board's
        # owner must see (exit 1), not a skip like a missing optional library.
        failed = kind == "tensorrt" and _tensorrt_version() is not None
        entries[(which, batch)] = make_entry("model", f"model {kind} {prec} b{batch}", None,
                                             reason=why, backend=kind, precision=prec,
                                             batch=batch, window=window, failed=failed)

    for which in opts.backends:
        b, why = _open_backend(which, files, opts, log)
        if b is None:
            for batch in opts.batches:
                skip(which, batch, str(why))
            continue
        opened[which] = b
        caveats[which] = why
    calls: dict[str, Callable[[], Any]] = {}
    keys: dict[str, tuple[str, int]] = {}
    for which, b in opened.items():
        for batch in opts.batches:
            x = _batch(xs, batch)
            try:
                b.infer(x)  # a batch the graph cannot take fails here, not mid-timing
            except Exception as e:
                skip(which, batch, f"infer failed: {_short(e)}")
                continue
            name = f"{which} b{batch}"
            calls[name] = functools.partial(b.infer, x)
            keys[name] = (which, batch)
    # Backends are interleaved within one batch size, batch sizes one after the other: a
    # batch-1 call timed right after another backend's batch-32 call found its caches
    # flushed by it and measured that, not itself (0.88 against 0.57 ms for FP32 at
    # batch 1 on the 2-core VM, which pulled every INT8 / FP32 ratio toward 1).
    # PyTorch is timed in its own rotation: its calls leave its intra-op threads spinning
    # and the caches full of its own buffers, which slowed the ONNX Runtime call after it
    # (FP32 at batch 1: 1.34 ms with torch in the rotation, 0.64 ms without, on the VM).
    times = interleaved_groups(calls, lambda n: (keys[n][1], keys[n][0].startswith("torch")),
                               opts.warmup, opts.iters, opts.rounds)
    for name, per_round in times.items():
        which, batch = keys[name]
        kind, prec = which.split("-")
        entries[(which, batch)] = round_entry(
            "model", f"model {kind} {prec} b{batch}", per_round, backend=kind,
            precision=prec, batch=batch, window=window, reason=caveats.get(which))
    for which in BACKEND_CHOICES:
        for batch in opts.batches:
            if (which, batch) in entries:
                rec.add(entries[(which, batch)])
    # Top-1 agreement of each backend with ONNX Runtime FP32 on these windows; the
    # reference outputs also feed the routing stage.
    agreement: dict[str, dict[str, float]] = {}
    ref_name = "onnxruntime-fp32" if "onnxruntime-fp32" in opened else next(iter(opened), None)
    want: dict[str, np.ndarray] | None = None
    if ref_name is not None:
        x = _batch(xs, min(len(xs), 256))
        want = opened[ref_name].infer(x)
    for which, b in opened.items():
        if which == ref_name or ref_name != "onnxruntime-fp32" or want is None:
            continue
        try:
            got = b.infer(x)
            agreement[which] = {
                k: float(np.mean(np.argmax(got[k], -1) == np.argmax(want[k], -1)))
                for k in want if k in got}
        except Exception:  # agreement is informative only
            continue
    gpu_mb = _gpu_process_mb()  # while every backend still holds its device memory
    for b in opened.values():
        with contextlib.suppress(Exception):
            b.close()
    return ModelRun(agreement, want, gpu_mb)


def _bench_routing(rec: Recorder, opts: BenchOptions, meta: Any, lm: Landmarks,
                   outputs: Mapping[str, np.ndarray] | None) -> None:
    """The router's decision per window, ``task="auto"`` (the runtime's default).

    With a task head that is :meth:`Router.from_task_head` on the window's ``task_logits``
    (taken from the FP32 model's outputs on the same windows); without one the hand-motion
    rule on the window's raw landmarks (:meth:`Router.before_inference`).
    """
    try:
        from edge.runtime.router import Router

        router = Router(meta, "auto")
    except Exception as e:
        rec.skip("routing", "routing", f"router unavailable: {_short(e)}")
        return
    from edge.core.metadata import TASK_OUTPUT

    wins = _windows(lm, meta.window, opts.warmup + opts.iters)
    logits = (outputs or {}).get(TASK_OUTPUT)
    if router.mode == "task_head" and logits is None:
        rec.skip("routing", "routing", "no task_logits from the model to route on")
        return
    times = []
    for i, (f, m) in enumerate(wins):
        t0 = time.perf_counter_ns()
        if router.before_inference(f, m) is None and logits is not None:
            router.from_task_head(logits[i % len(logits)])
        times.append((time.perf_counter_ns() - t0) / 1e6)
    rec.add(make_entry("routing", f"routing ({router.mode})", times[opts.warmup:],
                       window=meta.window, reason=f"Router(task='auto') mode {router.mode}"))


def _bench_preprocess(rec: Recorder, opts: BenchOptions, lm: Landmarks,
                      cfg: PreprocessConfig, *, sweep: bool = False,
                      label: str = "preprocess") -> list[np.ndarray]:
    """Time preprocess per window; returns the preprocessed windows."""
    wins = _windows(lm, cfg.window, opts.warmup + opts.iters)
    times, xs = [], []
    for f, m in wins:
        dt, x = _timed(functools.partial(preprocess, f, m, cfg))
        times.append(dt)
        xs.append(x)
    rec.add(make_entry("preprocess", label, times[opts.warmup:], window=cfg.window,
                       reason=None if sweep else f"windows of {lm.source}"), sweep=sweep)
    return xs


def _open_pipeline(files: ModelFiles, opts: BenchOptions, task: str = "auto"
                   ) -> tuple[Any, Path]:
    """The streaming pipeline on the model the runtime would pick (INT8 when present)."""
    from edge.runtime.pipeline import Pipeline

    path = files.int8 or files.fp32
    extra = {"intra_op_threads": opts.threads} if opts.threads else {}
    return Pipeline.from_model(path, task=task, backend="onnxruntime", **extra), path


def _add_e2e(rec: Recorder, stage: str, times: list[float], ran: list[bool], warmup: int,
             what: str) -> None:
    """Two entries: every frame, and the frames on which a window ran (the worst case)."""
    t, r = times[warmup:], ran[warmup:]
    rec.add(make_entry(stage, stage, t, unit="frame", reason=what))
    rec.add(make_entry(stage, f"{stage} (window frames)",
                       [v for v, k in zip(t, r) if k], unit="frame",
                       reason="no window ran in the timed frames" if not any(r) else what))


def _bench_replay(rec: Recorder, opts: BenchOptions, lm: Landmarks,
                  files: ModelFiles) -> None:
    """Per recorded landmark frame: :meth:`Pipeline.push` alone (no MediaPipe)."""
    stage = "end_to_end_replay"
    try:
        pipe, path = _open_pipeline(files, opts)
    except Exception as e:
        rec.skip(stage, stage, f"streaming pipeline unavailable: {_short(e)}", unit="frame")
        return
    warm = max(opts.warmup, int(pipe.window))
    n = warm + max(opts.frames, opts.iters * int(pipe.stride))
    total = lm.frames.shape[0]
    span = (float(lm.timestamps_ms[-1] - lm.timestamps_ms[0]) / 1000.0 + 1 / 30.0
            if total > 1 else 1 / 30.0)
    times: list[float] = []
    ran: list[bool] = []
    try:
        for i in range(n):
            k = i % total
            t = float(lm.timestamps_ms[k] - lm.timestamps_ms[0]) / 1000.0 + (i // total) * span
            frame = (lm.frames[k], lm.mask[k], t)
            before = pipe.windows
            t0 = time.perf_counter_ns()
            pipe.push(frame)
            times.append((time.perf_counter_ns() - t0) / 1e6)
            ran.append(pipe.windows > before)
    finally:
        with contextlib.suppress(Exception):
            pipe.close()
    _add_e2e(rec, stage, times, ran, warm,
             f"Pipeline.push on {lm.source}, {path.name}, task auto, stride {pipe.stride}")
