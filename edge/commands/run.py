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
import json
import os
import sys
import time
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


class _FirstFrames:
    """The first ``n`` items of a source, keeping its attributes (live, end_reason, ...)."""

    def __init__(self, source: Any, n: int) -> None:
        self.source, self.n = source, n
        self.live = getattr(source, "live", False)
        self.ended_early = False
        self.end_reason: str | None = None

    def __iter__(self) -> Any:
        for i, item in enumerate(self.source):
            yield item
            if i + 1 >= self.n:
                self.end_reason = f"stopped after --max-frames {self.n}"
                return
        self.ended_early = getattr(self.source, "ended_early", False)
        self.end_reason = getattr(self.source, "end_reason", None)


class Heartbeat:
    """Touches a file while frames flow, for a container health check (docker/healthcheck.sh).

    The file's modification time says when the last frame went through; it is touched at
    most once per ``every`` seconds so that a 30 fps loop does not do 30 syscalls a second.

    Args:
        path: the file (created with its parent folder); ``None`` disables the heartbeat.
        every: minimum seconds between two touches.
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, path: str | os.PathLike[str] | None, every: float = 1.0,
                 clock: Any = time.monotonic) -> None:
        self.path = Path(path) if path else None
        self.every = every
        self.clock = clock
        self.last = -float("inf")
        self.touches = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def beat(self) -> None:
        if self.path is None:
            return
        now = self.clock()
        if now - self.last >= self.every:
            self.path.touch()
            self.last = now
            self.touches += 1


def check_output(path: Path | None, flag: str) -> None:
    """Refuse an output file that cannot be written, before the run rather than after it.

    Raises:
        SkelmtlError: the path is a folder, its folder does not exist or is not writable.
    """
    if path is None:
        return
    if path.is_dir():
        raise SkelmtlError(f"{path}: is a folder; {flag} takes a file name")
    parent = path.parent
    if not parent.is_dir():
        raise SkelmtlError(f"{path}: folder {parent} does not exist ({flag})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SkelmtlError(f"{path}: folder {parent} is not writable ({flag})")
    if path.exists() and not os.access(path, os.W_OK):
        raise SkelmtlError(f"{path}: file is not writable ({flag})")


def check_distinct(outputs: list[tuple[Path, str]], inputs: list[tuple[Path, str]]) -> None:
    """No output may be an input (or inside an input folder), or another output.

    ``--jsonl`` truncates its file at the start and ``--overlay`` replaces its file at the
    end: either would destroy a recording or video given as ``--source``.

    Raises:
        SkelmtlError: naming both options and the path.
    """
    def same(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve() or (a.exists() and b.exists()
                                                  and os.path.samefile(a, b))
        except OSError:
            return False

    for i, (out, flag) in enumerate(outputs):
        for inp, what in inputs:
            if same(out, inp):
                raise SkelmtlError(f"{out}: {flag} would overwrite the {what} input")
        for other, flag2 in outputs[i + 1:]:
            if same(out, other):
                raise SkelmtlError(f"{out}: given to both {flag} and {flag2}")


def _print_event(ev: Any) -> bool:
    """Print one event; False when the reader of stdout went away (``| head``)."""
    try:
        print(ev, flush=True)
    except BrokenPipeError:
        return False
    return True


def main(args: argparse.Namespace) -> int:
    """Run ``skelmtl run``; see the module docstring for the exit status.

    SIGTERM and SIGINT end the stream as the end of the source does (open labels closed,
    the ``stream`` event published, the overlay and JSON lines finished, ``--stats``
    written), then the command exits with ``128 + signal`` (143, 130). A second signal
    stops at once.
    """
    from edge.frontend.sources import open_source
    from edge.runtime.overlay import OverlayWriter
    from edge.runtime.pipeline import MAX_ABS_COORD, stop_on_signals
    from edge.runtime.publish import PipeClosed, open_publishers

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
    inputs: list[tuple[Path, str]] = []
    for m in (Path(m) for m in str(args.model).split(",") if m):
        # A model folder's files, not the folder: events.jsonl beside a model is fine.
        files = ([f for f in m.iterdir() if f.is_file()] if m.is_dir() else [m])
        inputs += [(f, "--model") for f in files]
    inputs.append((Path(str(args.source)), "--source"))
    check_distinct(outputs, inputs)
    pipe = open_pipeline(args)
    specs = ([str(args.jsonl)] if args.jsonl else []) + list(args.publish)
    if args.jsonl and not str(args.jsonl).endswith((".jsonl", ".ndjson")):
        specs[0] = f"file://{args.jsonl.resolve()}"
    stdout_gone = False
    with pipe, stop_on_signals(pipe) as got:
        source = open_source(args.source)
        publisher = open_publishers(specs) if specs else None
        overlay = (OverlayWriter(args.overlay, fps=source.fps or 30.0, labels=pipe.meta.labels)
                   if args.overlay else None)
        landmarker = None
        if not getattr(source, "landmarks", False):
            from edge.frontend.landmarks import open_front_end

            landmarker = open_front_end(
                args.front_end, mode="image" if source.kind == "images" else "video",
                pose_model=args.pose_model, hand_model=args.hand_model,
                policy=pipe.front_end_policy(args.full_front_end),
                **front_end_options(args.front_end, providers=args.providers,
                                    threads=args.threads))
        threaded = {"auto": None, "on": True, "off": False}[args.threaded]
        last_state = "ended"
        frames: Any = source
        if args.max_frames > 0:
            frames = _FirstFrames(source, args.max_frames)
        try:
            heartbeat = Heartbeat(os.environ.get("SKELMTL_HEARTBEAT") or None)
            for step in pipe.steps(frames, threaded=threaded, landmarker=landmarker):
                heartbeat.beat()
                if overlay is not None:
                    overlay.write(step)
                for ev in step.events:
                    if publisher is not None:
                        try:
                            publisher.publish(ev)
                        except PipeClosed:
                            stdout_gone = True
                    if not args.quiet and not stdout_gone and not _print_event(ev):
                        stdout_gone = True
                    if stdout_gone and not pipe.stop_requested:
                        # `skelmtl run ... | head`: the reader has what it wanted; end
                        # the stream (files finished) and exit quietly.
                        stdout_to_devnull()
                        pipe.stop("standard output closed")
                    if ev.kind == "stream":
                        last_state = ev.state or "ended"
                        if ev.state != "ended" and ev.reason:
                            print(f"skelmtl run: source {ev.state}: {ev.reason}", file=sys.stderr)
        except BaseException:
            if overlay is not None:
                overlay.abort()
            raise
        finally:
            if publisher is not None:
                publisher.close()
            if landmarker is not None:
                landmarker.close()
            source.close()
        if overlay is not None:
            written = overlay.close()
            if written:
                print(f"overlay: {written} ({overlay.frames} frames)", file=sys.stderr)
        stats = pipe.stats()
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
    if stdout_gone:
        return EXIT_BROKEN_PIPE
    return 1 if last_state == "failed" else 0


if __name__ == "__main__":
    from edge.commands.runner import run_main

    sys.exit(run_main("run", sys.modules[__name__]))
