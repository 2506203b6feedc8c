"""The run: every stage in order, then the typed report; and ``skelmtl bench``'s main.

Usage: skelmtl bench --model edge/assets/model --video carphone --out reports/bench/ [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone

from edge import __version__
from edge.bench.flops import count_onnx
from edge.bench.frontend import replay_agreement
from edge.bench.inputs import (
    ModelFiles,
    _clip_files,
    _load_clips,
    _synthetic_landmarks,
    _video_path,
    resolve_model,
)
from edge.bench.models import (
    _bench_models,
    _bench_preprocess,
    _bench_replay,
    _bench_routing,
    _open_onnxruntime,
    _open_pipeline,
)
from edge.bench.options import BenchError, BenchOptions, _short, options_from_args, split_variant
from edge.bench.probe import TegraStats, _gpu_memory, _peak_rss_mb, device_info
from edge.bench.ratios import compute_ratios
from edge.bench.render import render_table
from edge.bench.report import BenchReport, Memory, ModelInfo, Ratio, write_report
from edge.bench.stats import Recorder
from edge.bench.sweep import _bench_sweep
from edge.bench.video import _bench_video


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, write the reports, print the table."""
    # MediaPipe's C++ logging would bury the table; only its errors are kept.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    opts = options_from_args(args)
    report = run_bench(opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    written = write_report(report, opts.out, plot=opts.plot)
    print(render_table(report))
    print()
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if report.failed:
        print(f"bench: {len(report.failed)} row(s) FAILED: "
              + "; ".join(f"{f.stage}: {f.reason}" for f in report.failed), file=sys.stderr)
        return 1
    return 0


def run_bench(opts: BenchOptions, log: Callable[[str], None] = lambda m: None) -> BenchReport:
    """Measure every stage and return the report (:class:`edge.bench.report.BenchReport`).

    Raises:
        BenchError: no usable model or clips given that do not exist.
    """
    files = resolve_model(opts.model, opts.checkpoint)
    rec = Recorder(log)
    log(f"bench: model {files.fp32}; INT8 {files.int8}; checkpoint {files.checkpoint}")
    dev = device_info()
    gpu_before = _gpu_memory()
    tegra = TegraStats()  # Jetson only: power, RAM and GPU load sampled during the run
    try:
        return _run_stages(opts, files, rec, log, dev, gpu_before, tegra)
    finally:
        tegra.stop()


def _model_info(files: ModelFiles, opts: BenchOptions) -> tuple[ModelInfo, object]:
    """The model's description and its metadata (read by ONNX Runtime, the runtime's own
    reader)."""
    try:
        ref = _open_onnxruntime(files.fp32, opts.threads)
    except ImportError:
        raise BenchError("onnxruntime is not installed; pip install 'skelmtl[edge]'") from None
    meta = ref.meta
    with contextlib.suppress(Exception):
        ref.close()
    counts = count_onnx(files.fp32)
    return ModelInfo(
        path=str(files.fp32), name=meta.model_name or files.fp32.stem, tasks=tuple(meta.tasks),
        window=int(meta.window), stride=int(meta.stride),
        channels=int(meta.preprocess.channels), params=counts["params"],
        macs_per_window=counts["macs_per_window"], flops_per_window=counts["flops_per_window"],
        flops_source=str(counts["flops_source"]),
        int8_path=str(files.int8) if files.int8 else None,
        checkpoint=str(files.checkpoint) if files.checkpoint else None,
        labels={t: len(v) for t, v in meta.labels.items()}), meta


def _run_stages(opts: BenchOptions, files: ModelFiles, rec: Recorder,
                log: Callable[[str], None], dev: dict, gpu_before: dict | None,
                tegra: TegraStats) -> BenchReport:
    model, meta = _model_info(files, opts)
    rec.memory("start")
    video, vreason = _video_path(opts.video)
    video_lm, events = _bench_video(rec, opts, video, vreason, files, model.window)

    clip_files = _clip_files(opts.clips)
    lm = _load_clips(clip_files) if clip_files else None
    if lm is None:
        lm = video_lm if video_lm is not None and len(video_lm.frames) >= 2 else \
            _synthetic_landmarks()
        log(f"bench: no recorded clips; preprocessing uses {lm.source}")
    elif len(opts.front_ends) > 1:
        events.update(_replay_events(files, opts, clip_files, log))
    xs = _bench_preprocess(rec, opts, lm, meta.preprocess)  # type: ignore[attr-defined]
    rec.memory("preprocess")
    info = _bench_models(rec, opts, files, xs, log)
    rec.memory("model")
    _bench_routing(rec, opts, meta, lm, info.outputs)
    _bench_replay(rec, opts, lm, files)
    rec.memory("end_to_end_replay")
    _bench_sweep(rec, opts, files, meta, lm)
    rec.memory("sweep")
    gpu = ({"before": gpu_before, "after": _gpu_memory(),
            "process_mb_after_model": info.gpu_process_mb} if gpu_before else None)
    tegra.stop()
    return BenchReport(
        version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=opts.command,
        config={"warmup": opts.warmup, "iters": opts.iters, "rounds": opts.rounds,
                "frames": opts.frames, "batches": list(opts.batches),
                "sweep_windows": list(opts.sweep_windows),
                "sweep_batches": list(opts.sweep_batches), "backends": list(opts.backends),
                "front_ends": list(opts.front_ends),
                "video": str(video) if video else None,
                "clips": [str(f) for f in clip_files], "landmark_source": lm.source,
                "threads": opts.threads, "providers": opts.providers,
                "timer": "time.perf_counter_ns",
                "interleaving": "round-robin, rotating start"},
        device=dev, model=model, stages=tuple(rec.stages), sweep=tuple(rec.sweep),
        memory=Memory(round(_peak_rss_mb(), 1), dict(rec.rss_after), gpu),
        ratios=compute_ratios(rec.stages, model.stride, info.agreement, events),
        skipped=tuple(rec.skipped), failed=tuple(rec.failed), power=tegra.summary())


def _replay_events(files: ModelFiles, opts: BenchOptions, clips: list,
                   log: Callable[[str], None]) -> dict[str, Ratio]:
    """The routed front ends' event agreement on the recorded clips (an informative
    extra: a model whose tasks the variants do not name gets none). A recording replays
    a policy, whatever front end made it, so only the policies are replayed."""
    policies = list(dict.fromkeys(split_variant(v)[1] for v in opts.front_ends))
    try:
        return replay_agreement(lambda task: _open_pipeline(files, opts, task)[0], clips,
                                policies)
    except Exception as e:  # informative only; the timings stand without it
        log(f"bench: no event agreement on the clips: {_short(e)}")
        return {}
