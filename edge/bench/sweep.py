"""The sweep: preprocessing and the ONNX Runtime model (FP32, and INT8 when present) over
window length x batch size.

It is export-free: at each window the bench copies the model with the input's time axis
set to that window, the batch axis symbolic and the metadata's window changed
(:func:`edge.bench.flops.window_copy`), and runs the copy through the normal ONNX Runtime
backend. Weights and architecture are the bundled model's, which is what "how cost grows
with work" asks about; the accuracy of a model at a window it was not trained for is not
the point. A graph that bakes the window length into a constant (a Reshape, a pooling
kernel) fails at other windows; those points are recorded as skipped with the runtime's
message.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bench.flops import window_copy
from edge.bench.inputs import Landmarks, ModelFiles, _batch, _with_window
from edge.bench.models import _bench_preprocess, _open_onnxruntime
from edge.bench.options import BenchOptions, _short
from edge.bench.stats import Recorder, interleaved_groups, make_entry, round_entry
from edge.core.preprocess import PreprocessConfig


def _bench_sweep(rec: Recorder, opts: BenchOptions, files: ModelFiles, meta: Any,
                 lm: Landmarks) -> None:
    """Preprocessing and the ONNX Runtime model (FP32, and INT8 when present) over window
    length x batch size; the model calls of one window are interleaved round-robin."""
    if not opts.sweep_windows:
        return
    models = [("fp32", files.fp32)] + ([("int8", files.int8)] if files.int8 else [])
    tmp = Path(tempfile.mkdtemp(prefix="skelmtl-bench-"))
    try:
        for window in opts.sweep_windows:
            cfg = PreprocessConfig(**_with_window(meta.preprocess, window))
            xs = _bench_preprocess(rec, opts, lm, cfg, sweep=True,
                                   label=f"preprocess w{window}")
            calls: dict[str, Callable[[], Any]] = {}
            keys: dict[str, tuple[str, int]] = {}
            opened = []
            for prec, src in models:
                def skip(batch: int, why: str, prec: str = prec, window: int = window) -> None:
                    rec.add(make_entry("model", f"model onnxruntime {prec} w{window} b{batch}",
                                       None, reason=why, backend="onnxruntime",
                                       precision=prec, batch=batch, window=window), sweep=True)
                try:
                    b = _open_onnxruntime(window_copy(src, tmp / f"{prec}_w{window}.onnx",
                                                      window), opts.threads,
                                          opts.providers)
                except ImportError as e:
                    for batch in opts.sweep_batches:
                        skip(batch, f"needs the missing module {e.name!r}")
                    continue
                except Exception as e:  # a graph tied to its window
                    for batch in opts.sweep_batches:
                        skip(batch, f"the model does not load at window {window}: "
                                    f"{_short(e, 200)}")
                    continue
                opened.append(b)
                for batch in opts.sweep_batches:
                    x = _batch(xs, batch)
                    try:
                        b.infer(x)
                    except Exception as e:
                        skip(batch, f"the model does not run at window {window}, batch "
                                    f"{batch}: {_short(e, 200)}")
                        continue
                    label = f"model onnxruntime {prec} w{window} b{batch}"
                    calls[label] = functools.partial(b.infer, x)
                    keys[label] = (prec, batch)
            # One batch size at a time, as in the main rows.
            batch_of = {k: v[1] for k, v in keys.items()}
            times = interleaved_groups(calls, batch_of.__getitem__, opts.warmup, opts.iters,
                                       opts.rounds)
            for label, per_round in times.items():
                prec, batch = keys[label]
                rec.add(round_entry("model", label, per_round, backend="onnxruntime",
                                    precision=prec, batch=batch, window=window), sweep=True)
            for b in opened:
                with contextlib.suppress(Exception):
                    b.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
