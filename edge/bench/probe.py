"""The environment a benchmark ran in: CPU, libraries, GPU, CUDA, TensorRT, Jetson.

:func:`device_info` probes once per run; :class:`TegraStats` samples a Jetson's power, RAM
and GPU load during the whole run; anything absent is recorded as absent.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.options import _optional, _short
from edge.core.errors import SkelmtlError

_LIBRARIES = {  # report key -> distributions that provide it (first found wins)
    "numpy": ("numpy",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",), "mediapipe": ("mediapipe",),
    "opencv": ("opencv-contrib-python", "opencv-python", "opencv-python-headless"),
    "torch": ("torch",), "tensorrt": ("tensorrt",), "pycuda": ("pycuda",),
    "cuda-python": ("cuda-python",), "matplotlib": ("matplotlib",),
}


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
        from edge.engine.cache import read_l4t_release

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
