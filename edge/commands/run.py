"""``skelmtl run``: stream a source through a model; events as JSON lines, an overlay video.

Usage: skelmtl run --model model.int8.onnx --source clip.landmarks.npz --task auto --jsonl events.jsonl --overlay out.mp4

Sources (``--source``): a video file, a camera index, an image folder, a GStreamer or
RTSP string, or recorded landmarks (``*.landmarks.npz`` or a folder of them; no MediaPipe
needed). Events go to stdout (one readable line each, unless ``--quiet``), to
``--jsonl`` (the versioned schema of :mod:`edge.core.events`, one JSON object per line) and to
each ``--publish`` target (``zmq://HOST:PORT``, ``udp://HOST:PORT``, ``-`` for stdout
JSON lines; see :mod:`edge.runtime.publish`). Per-stage latencies are printed at the end, and
written with ``--stats``.

Exit status: 0 when the source ended (also when it stopped early: the last event says
so), 1 when reading it failed mid-stream, 2 for a bad model, source or option, 143 after
SIGTERM and 130 after SIGINT (the stream is ended cleanly first: ``end`` and ``stream``
events, the overlay and JSON lines finished), 141 when the reader of standard output went
away (``skelmtl run ... | head``; the stream is ended the same way).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from edge.commands.runner import EXIT_BROKEN_PIPE, stdout_to_devnull
from edge.core.atomic import atomic_write
from edge.core.errors import SkelmtlError, signal_name
from edge.frontend.landmarks import front_end_options


def add_front_end_argument(p: Any, providers: str = "--providers") -> None:
    """``--front-end``, the landmark front end's implementation (``skelmtl run``, ``demo``,
    ``extract``); ``providers`` names the options the ``onnx`` one takes."""
    from edge.frontend.landmarks import FRONT_ENDS

    p.add_argument("--front-end", choices=sorted(FRONT_ENDS), default="mediapipe",
                   help="landmark front end: mediapipe (the Tasks API, default) or onnx "
                        "(MediaPipe's models converted once by 'skelmtl convert-landmarks', on "
                        f"ONNX Runtime; takes {providers})")




def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="model file (.onnx, .engine, .pt), a model folder, or per-task files "
                        "separated by commas")
    p.add_argument("--source", required=True,
                   help="video, camera index, image folder, GStreamer/RTSP, *.landmarks.npz")
    p.add_argument("--task", default="auto", help="a task of the model, or auto (default)")
    p.add_argument("--backend", default="auto",
                   help="auto (by file suffix), onnxruntime, tensorrt or torch")
    p.add_argument("--providers", default=None,
                   help="onnxruntime execution providers: cpu (default), cuda, tensorrt, best "
                        "(also the onnx front end's)")
    p.add_argument("--threads", type=int, default=0,
                   help="onnxruntime intra-op threads / torch threads (0: library default; "
                        "the onnx front end's per model, 0: 1)")
    p.add_argument("--jsonl", type=Path, default=None, help="write events as JSON lines here")
    p.add_argument("--overlay", type=Path, default=None,
                   help="write an overlay video (skeleton, task, label, confidence) here")
    p.add_argument("--publish", action="append", default=[], metavar="SPEC",
                   help="also publish events: zmq://HOST:PORT, udp://HOST:PORT, - (repeatable)")
    p.add_argument("--stats", type=Path, default=None,
                   help="write counters and per-stage latencies as JSON here")
    p.add_argument("--threaded", choices=("auto", "on", "off"), default="auto",
                   help="read the source in a background thread, dropping the oldest frames "
                        "when inference falls behind (auto: live sources only)")
    g = p.add_argument_group("smoothing and events")
    g.add_argument("--smoothing", choices=("ema", "mean", "none"), default="ema")
    g.add_argument("--alpha", type=float, default=0.5, help="EMA weight of the newest window")
    g.add_argument("--enter", type=float, default=0.6, help="probability that begins a label")
    g.add_argument("--exit", type=float, default=0.4, help="probability that ends it")
    g.add_argument("--min-duration", type=float, default=0.0,
                   help="seconds above --enter before a label begins")
    g.add_argument("--ignore-label", action="append", default=[],
                   help="a label that never produces events (e.g. a background class)")
    g.add_argument("--stride", type=int, default=None,
                   help="frames between windows (default: the model's)")
    lm = p.add_argument_group("landmarks (video sources)")
    add_front_end_argument(lm, providers="--providers and --threads")
    lm.add_argument("--pose-model", default=None, help="MediaPipe pose_landmarker .task file")
    lm.add_argument("--hand-model", default=None, help="MediaPipe hand_landmarker .task file")
    lm.add_argument("--full-front-end", action="store_true",
                    help="run pose and hands on every frame, whatever --task needs (default: "
                         "the stages the task needs, edge.frontend.policy)")
    p.add_argument("--max-frames", type=int, default=0,
                   help="stop after this many frames (0: run to the end of the source)")
    p.add_argument("--quiet", action="store_true", help="do not print events")


def backend_options(args: argparse.Namespace, backend: str, model: str) -> dict[str, Any]:
    """Backend options from the command line, only those the chosen backend takes."""
    from edge.backends import AUTO_BY_SUFFIX

    name = backend
    if name == "auto":
        name = AUTO_BY_SUFFIX.get(Path(model).suffix.lower(), "onnxruntime")
        if Path(model).is_dir():
            name = "onnxruntime"
    opts: dict[str, Any] = {}
    if name == "onnxruntime":
        if args.providers:
            opts["providers"] = args.providers
        if args.threads:
            opts["intra_op_threads"] = args.threads
    elif name == "torch" and args.threads:
        opts["threads"] = args.threads
    elif args.providers:
        raise SkelmtlError(f"--providers applies to the onnxruntime backend, not {name}")
    return opts


def open_pipeline(args: argparse.Namespace) -> Any:
    from edge.runtime.pipeline import Pipeline
    from edge.runtime.stream import StreamConfig

    models = [m for m in str(args.model).split(",") if m]
    config = StreamConfig(smoothing=args.smoothing, alpha=args.alpha, enter=args.enter,
                          exit=args.exit, min_duration=args.min_duration,
                          ignore_labels=tuple(args.ignore_label), stride=args.stride)
    model: Any = models[0] if len(models) == 1 else models
    return Pipeline.from_model(model, task=args.task, backend=args.backend, config=config,
                               **backend_options(args, args.backend, models[0]))


def _print_event(ev: Any) -> None:
    """Print one event; ``PipeClosed`` when the reader of stdout went away (``| head``)."""
    from edge.runtime.publish import PipeClosed

    try:
        print(ev, flush=True)
    except BrokenPipeError:
        raise PipeClosed("standard output: the reader closed the pipe") from None


def main(args: argparse.Namespace) -> int:
    """Run ``skelmtl run``; see the module docstring for the exit status.

    SIGTERM and SIGINT end the stream as the end of the source does (open labels closed,
    the ``stream`` event published, the overlay and JSON lines finished, ``--stats``
    written), then the command exits with ``128 + signal`` (143, 130). A second signal
    stops at once.
    """
    from edge.frontend.sources import open_source
    from edge.runtime.loop import (
        EventSink,
        FirstFrames,
        Heartbeat,
        check_distinct,
        check_output,
        model_files,
        run_stream,
    )
    from edge.runtime.overlay import OverlayWriter
    from edge.runtime.pipeline import MAX_ABS_COORD, stop_on_signals
    from edge.runtime.publish import open_publishers

    if not [m for m in str(args.model).split(",") if m.strip()]:
        raise SkelmtlError(f"--model {args.model!r}: no model file given")
    if not str(args.source).strip():
        raise SkelmtlError("--source is empty; give a file, folder, camera or URL")
    for value, flag, zero in ((args.max_frames, "--max-frames", "the whole source"),
                              (args.threads, "--threads", "the library's default")):
        if value < 0:
            raise SkelmtlError(f"{flag} must be >= 0 (0: {zero}), got {value}")
    outputs = [(path, flag) for path, flag in ((args.jsonl, "--jsonl"),
                                               (args.overlay, "--overlay"),
                                               (args.stats, "--stats")) if path is not None]
    for path, flag in outputs:
        check_output(path, flag)
    inputs = [(f, "--model") for f in model_files(m for m in str(args.model).split(",") if m)]
    check_distinct(outputs, inputs + [(Path(str(args.source)), "--source")])
    pipe = open_pipeline(args)
    specs = ([str(args.jsonl)] if args.jsonl else []) + list(args.publish)
    if args.jsonl and not str(args.jsonl).endswith((".jsonl", ".ndjson")):
        specs[0] = f"file://{args.jsonl.resolve()}"
    stdout_gone = False

    def echo(ev: Any) -> None:
        if not args.quiet and not stdout_gone:
            _print_event(ev)

    def gone() -> None:
        # `skelmtl run ... | head`: the reader has what it wanted; the stream is ended
        # (files finished) and the command exits quietly.
        nonlocal stdout_gone
        stdout_gone = True
        stdout_to_devnull()

    def report_end(ev: Any) -> None:
        if ev.kind == "stream" and ev.state != "ended" and ev.reason:
            print(f"skelmtl run: source {ev.state}: {ev.reason}", file=sys.stderr)

    with pipe, stop_on_signals(pipe) as got:
        with contextlib.ExitStack() as opened:
            source = opened.enter_context(contextlib.closing(open_source(args.source)))
            sinks: list[EventSink] = [echo, report_end]
            if specs:
                publisher = opened.enter_context(contextlib.closing(open_publishers(specs)))
                sinks.insert(0, publisher.publish)
            landmarker = None
            if not getattr(source, "landmarks", False):
                from edge.frontend.landmarks import open_front_end

                landmarker = opened.enter_context(contextlib.closing(open_front_end(
                    args.front_end, mode="image" if source.kind == "images" else "video",
                    pose_model=args.pose_model, hand_model=args.hand_model,
                    policy=pipe.front_end_policy(args.full_front_end),
                    **front_end_options(args.front_end, providers=args.providers,
                                        threads=args.threads))))
            overlay = (OverlayWriter(args.overlay, fps=source.fps or 30.0,
                                     labels=pipe.meta.labels) if args.overlay else None)
            frames: Any = source
            if args.max_frames > 0:
                frames = FirstFrames(source, args.max_frames,
                                     reason=f"stopped after --max-frames {args.max_frames}")
            heartbeat = Heartbeat(os.environ.get("SKELMTL_HEARTBEAT") or None)
            summary = run_stream(pipe, frames, sinks=sinks, on_step=[heartbeat.step],
                                 overlay=overlay, landmarker=landmarker,
                                 threaded={"auto": None, "on": True, "off": False}[args.threaded],
                                 on_output_closed=gone)
        if summary.overlay is not None:
            print(f"overlay: {summary.overlay} ({summary.overlay_frames} frames)",
                  file=sys.stderr)
        stats = dict(summary.stats)
        print(f"frames {stats['frames']}, windows {stats['windows']} (skipped "
              f"{stats['skipped_windows']} without a person), dropped {stats['dropped']}; "
              f"{stats['backend']} {stats['precision']}", file=sys.stderr)
        if stats["invalid_joints"] or stats["invalid_times"]:
            print(f"invalid input: {stats['invalid_joints']} joint(s) non-finite or beyond "
                  f"|{MAX_ABS_COORD:g}| counted as missing, {stats['invalid_times']} frame "
                  f"time(s) not a number", file=sys.stderr)
        print(pipe.latency.table(), file=sys.stderr)
        if args.stats:
            try:
                atomic_write(args.stats, json.dumps(stats, indent=2) + "\n")
            except OSError as e:
                raise SkelmtlError(f"{args.stats}: cannot write --stats: "
                                   f"{e.strerror or e}") from None
    if got["signal"] is not None:
        print(f"skelmtl run: stopped by {signal_name(got['signal'])}", file=sys.stderr)
        return 128 + got["signal"]
    if summary.output_closed:
        return EXIT_BROKEN_PIPE
    return 1 if summary.state == "failed" else 0


if __name__ == "__main__":
    from edge.commands.runner import run_main

    sys.exit(run_main("run", sys.modules[__name__]))
