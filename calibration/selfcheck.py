"""``skelmtl selfcheck``: prove the TensorRT path on this device, with what the image holds.

Usage: skelmtl selfcheck [--cache DIR] [--agreement 0.9] [--json report.json]

In order, each step printed as it passes or fails:

1. the platform (GPU, L4T release, TensorRT version with build number, Python, NumPy,
   ONNX Runtime) and the engine cache key the container would use;
2. the shipped INT8 engine, taken from the engine cache or built into it exactly as the
   container's first start builds it (``python -m edge.engine.cache ensure``);
3. every layer of that engine with its I/O precision (TensorRT's engine inspector), and
   how many computing layers run in INT8;
4. the TensorRT backend on windows cut from the bundled demo clips
   (``edge/assets/clips``, through the one preprocessing), against ONNX Runtime running
   the same INT8 model on the CPU: top-1 agreement per head, which must reach
   ``--agreement`` (default :data:`DEFAULT_AGREEMENT`). That isolates what TensorRT
   computes; what quantization itself costs is the calibration report's measure, and
   the agreement with the FP32 model is printed beside it, for the record only (on these
   windows, which straddle two clips, the shipped INT8 model's gesture head agrees with
   its FP32 one on 86% under ONNX Runtime);
5. the time of one batch-1 window on each (median of ``--repeats``), for the record; no
   speed bar is enforced here (``skelmtl bench`` measures properly).

Exit status: 0 when every step passed; 1 when a step failed (the report says which);
2 for bad input (a missing model file, an unreadable cache); :data:`EXIT_NO_TENSORRT`
(3) when TensorRT's Python bindings are not importable, with one line saying so: there
is nothing to check on such a machine, and that is not the same as a failed check.

It needs neither torch nor the training code: ``edge``, ``calibration``, NumPy, ONNX
Runtime and TensorRT, which is what the Jetson image holds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import platform as pyplatform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable  # typing's Callable: an alias below is evaluated, on 3.8 too

import numpy as np

from edge.core.atomic import atomic_write
from edge.core.errors import SkelmtlError

LOG = logging.getLogger(__name__)

DEFAULT_AGREEMENT = 0.90
EXIT_OK, EXIT_FAILED, EXIT_NO_TENSORRT = 0, 1, 3
MAX_WINDOWS = 256

Out = Callable[[str], None]
BackendLoader = Callable[[Path], Any]


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Step:
    """One step of the check: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SelfcheckReport:
    """Everything the check found; ``ok`` when every step passed."""

    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": 1, "ok": self.ok, "steps": [asdict(s) for s in self.steps]}


def bundled_windows(meta: Any, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """Model inputs ``(N, C', window, 75)`` from the bundled demo clips played back to back
    as one stream (as ``skelmtl demo`` plays them), a window every ``meta.stride`` frames,
    through :func:`edge.core.preprocess.preprocess`.

    Raises:
        SkelmtlError: no bundled clip, or fewer frames than one window.
    """
    from edge.assets import bundled_clips
    from edge.core.preprocess import preprocess
    from edge.core.recording import load_recording

    cfg = meta.preprocess
    clips = bundled_clips()
    if not clips:
        raise SkelmtlError("no bundled demo clips (edge/assets/clips) in this installation")
    recs = [load_recording(p) for p in clips]
    frames = np.concatenate([r.frames for r in recs])
    mask = np.concatenate([r.mask for r in recs])
    if len(frames) < cfg.window:
        raise SkelmtlError(f"the bundled clips hold {len(frames)} frames, fewer than one "
                           f"window ({cfg.window})")
    starts = range(0, len(frames) - cfg.window + 1, max(1, meta.stride))
    x = np.stack([preprocess(frames[t:t + cfg.window], mask[t:t + cfg.window], cfg)
                  for t in starts]).astype(np.float32)
    if len(x) > max_windows:  # evenly over the stream, not its first seconds
        x = x[np.linspace(0, len(x) - 1, max_windows).round().astype(int)]
    return x


def top1_agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Per output, the fraction of rows whose argmax agrees."""
    return {k: float(np.mean(np.argmax(a[k], axis=1) == np.argmax(b[k], axis=1)))
            for k in sorted(a) if k in b}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def _platform_lines(platform: Any, trt: Any) -> dict[str, str]:
    try:
        import onnxruntime as ort

        ort_version = str(ort.__version__)
    except ImportError:
        ort_version = "not installed"
    return {"gpu": platform.gpu, "l4t": platform.l4t, "tensorrt": str(trt.__version__),
            "python": pyplatform.python_version(), "numpy": np.__version__,
            "onnxruntime": ort_version, "machine": pyplatform.machine()}


def engine_layers(trt: Any, engine_path: Path) -> list[Any]:
    """The engine's layers with their I/O precisions, from TensorRT's inspector.

    Raises:
        SkelmtlError: the engine does not deserialise here.
    """
    from calibration.trt.inspection import inspect_engine
    from calibration.trt.versions import TensorRTError, profile_for
    from edge.engine.header import read_engine

    _, blob = read_engine(engine_path)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        raise TensorRTError(f"{engine_path}: TensorRT {trt.__version__} cannot deserialise "
                            "the engine (its log above says why)")
    return inspect_engine(trt, engine, profile_for(str(trt.__version__)))


def run_selfcheck(*, model: Path | None = None, fp32: Path | None = None,
                  cache_dir: Path | None = None, agreement: float = DEFAULT_AGREEMENT,
                  repeats: int = 20, max_windows: int = MAX_WINDOWS, trt: Any = None,
                  platform: Any = None, builder: Any = None,
                  load_tensorrt: BackendLoader | None = None,
                  load_reference: BackendLoader | None = None,
                  out: Out = _stdout) -> SelfcheckReport:
    """Run every step; a failed step is recorded and the later ones that need it skipped.

    Args:
        model: the INT8 Q/DQ model (default: the bundled one).
        fp32: the FP32 model, compared and timed for the record only (default: the
            ``model.onnx`` beside ``model``, or the bundled one; none: not compared).
        cache_dir: the engine cache (default: the container's, see
            :func:`edge.engine.cache.default_cache_dir`).
        agreement: the least top-1 agreement per head between TensorRT and ONNX Runtime
            running the same INT8 model.
        repeats: timed runs per backend.
        max_windows: at most this many bundled windows.
        trt: the ``tensorrt`` module (default: imported).
        platform, builder, load_tensorrt, load_reference: stand-ins for the tests
            (default: detected platform, ``skelmtl build-engine``, the TensorRT backend,
            the ONNX Runtime CPU backend).
        out: where the report lines go.

    Returns:
        The report.

    Raises:
        SkelmtlError: bad input (a model file that does not exist or does not load).
    """
    from edge.assets import bundled_model
    from edge.engine import cache as ec

    report = SelfcheckReport()

    def step(name: str, ok: bool, detail: str, **data: Any) -> Step:
        s = Step(name, ok, detail, data)
        report.steps.append(s)
        out(f"[{'ok' if ok else 'FAILED'}] {name}: {detail}")
        return s

    trt = trt if trt is not None else importlib.import_module("tensorrt")
    if fp32 is None:  # the FP32 export beside the INT8 model, if it has one
        beside = (Path(model).parent / "model.onnx") if model else bundled_model("fp32")
        fp32 = beside if beside.is_file() else None
    model = Path(model) if model else bundled_model("int8")
    for p in (model, fp32):
        if p is not None and not Path(p).is_file():
            raise SkelmtlError(f"{p}: model file not found")

    try:
        platform = platform or ec.detect_platform()
    except SkelmtlError as e:
        step("platform", False, str(e))
        return report
    info = _platform_lines(platform, trt)
    step("platform", True, ", ".join(f"{k} {v}" for k, v in info.items()), **info)
    # the container's recipe: build-engine's defaults plus $SKELMTL_BUILD_OPTIONS
    recipe = ec.BuildRecipe("int8", options=ec.build_options())
    key = ec.engine_key(platform, ec.file_sha256(model), "int8", recipe)
    cache_dir = Path(cache_dir) if cache_dir else ec.default_cache_dir()
    step("cache key", True, f"{key} (in {cache_dir})", key=key, cache=str(cache_dir))

    try:
        cached = ec.ensure_engine(model, cache_dir, "int8", platform=platform,
                                  builder=builder, recipe=recipe, log=LOG.info)
    except SkelmtlError as e:
        step("engine", False, f"no INT8 engine: {e}")
        return report
    from edge.engine.header import read_engine_header

    build = read_engine_header(cached.path).build
    check = str(build.get("precision_check", "not recorded"))
    step("engine", not check.startswith("overridden"),
         f"{'built' if cached.built else 'from the cache'}: {cached.path} (flags "
         f"{build.get('builder_flags')}, strongly typed {build.get('strongly_typed')}, "
         f"precision check {check})", path=str(cached.path), built=cached.built,
         precision_check=check, prepared=build.get("prepared"))

    try:
        layers = engine_layers(trt, cached.path)
    except SkelmtlError as e:
        step("layers", False, str(e))
        return report
    for lay in layers:
        out(f"    layer {lay.name} [{lay.layer_type or '?'}]: "
            f"{'/'.join(sorted(lay.dtypes)) or 'no types'}")
    from calibration.trt.inspection import is_opaque

    int8 = [lay.name for lay in layers if "int8" in lay.dtypes and not is_opaque(lay)]
    opaque = [lay.name for lay in layers if is_opaque(lay)]
    # INT8 must show somewhere, unless TensorRT hid the computing layers in opaque
    # regions, whose types the inspector does not show (step 4 still compares answers)
    step("layers", bool(int8) or bool(opaque),
         f"{len(layers)} layers, {len(int8)} with INT8 I/O"
         + (f", {len(opaque)} opaque regions (precision inside not shown)" if opaque else ""),
         layers=[{"name": lay.name, "type": lay.layer_type, "dtypes": sorted(lay.dtypes)}
                 for lay in layers])

    from edge.backends import load_backend

    load_ort = load_reference or (lambda p: load_backend(p, "onnxruntime"))
    with contextlib.ExitStack() as open_backends:
        try:
            trt_backend = open_backends.enter_context(contextlib.closing(
                (load_tensorrt or (lambda p: load_backend(p, "tensorrt")))(cached.path)))
            int8_ref = open_backends.enter_context(contextlib.closing(load_ort(model)))
        except Exception as e:  # CUDA/TensorRT failures are what this reports
            step("backends", False, f"{type(e).__name__}: {e}")
            return report
        try:
            x = bundled_windows(trt_backend.meta, max_windows)
            got = trt_backend.infer(x)
            agree = top1_agreement(got, int8_ref.infer(x))
        except Exception as e:  # CUDA/TensorRT failures are what this reports
            step("inference", False, f"{type(e).__name__}: {e}")
            return report
        # The FP32 model is for the record only: its failure does not fail the check.
        fp32_ref, agree_fp32, fp32_note = None, None, "no FP32 model beside it"
        if fp32 is not None:
            try:
                fp32_ref = open_backends.enter_context(contextlib.closing(load_ort(fp32)))
                agree_fp32 = top1_agreement(got, fp32_ref.infer(x))
                fp32_note = ", ".join(f"{k} {v:.1%}" for k, v in agree_fp32.items()) + \
                    " (quantization's share, not checked here)"
            except Exception as e:  # a mismatched --fp32 must not hide the real answer
                fp32_ref, fp32_note = None, f"not compared ({type(e).__name__}: {e})"
        low = {k: v for k, v in agree.items() if v < agreement}
        step("agreement", bool(agree) and not low,
             f"top-1 agreement with ONNX Runtime running the same INT8 model on {len(x)} "
             "bundled windows: " + ", ".join(f"{k} {v:.1%}" for k, v in agree.items())
             + f" (needs >= {agreement:.0%} per head); with the FP32 model: {fp32_note}",
             windows=len(x), agreement=agree, agreement_fp32=agree_fp32, threshold=agreement)
        try:
            one = x[:1]
            which, timed = ("FP32", fp32_ref) if fp32_ref is not None else ("INT8", int8_ref)
            t_trt = median_ms(lambda: trt_backend.infer(one), repeats)
            t_ort = median_ms(lambda: timed.infer(one), repeats)
            step("latency", True, f"one window: TensorRT INT8 {t_trt:.2f} ms, ONNX Runtime "
                 f"{which} (CPU) {t_ort:.2f} ms (median of {repeats}; not a benchmark)",
                 tensorrt_ms=t_trt, onnxruntime_ms=t_ort)
        except Exception as e:  # CUDA/TensorRT failures are what this reports
            step("inference", False, f"{type(e).__name__}: {e}")
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skelmtl selfcheck``."""
    parser.add_argument("--model", type=Path, default=None,
                        help="INT8 Q/DQ model (default: the bundled model.int8.onnx)")
    parser.add_argument("--fp32", type=Path, default=None,
                        help="FP32 model, compared and timed for the record only (default: "
                             "the model.onnx beside --model, or the bundled one)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="engine cache folder (default: the container's, "
                             "$SKELMTL_ENGINE_CACHE or $SKELMTL_CACHE/engines)")
    parser.add_argument("--agreement", type=float, default=DEFAULT_AGREEMENT,
                        help="least top-1 agreement per head with ONNX Runtime running the "
                             f"same INT8 model (default {DEFAULT_AGREEMENT})")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per backend")
    parser.add_argument("--max-windows", type=int, default=MAX_WINDOWS)
    parser.add_argument("--build-cmd", default=os.environ.get("SKELMTL_BUILD_CMD"),
                        help="engine build command (default: 'skelmtl build-engine')")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")


def main(args: argparse.Namespace) -> int:
    """Run the check; exit 0 (passed), 1 (a step failed) or 3 (no TensorRT here)."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as e:
        sys.stderr.write(f"skelmtl selfcheck: TensorRT's Python bindings are not importable "
                         f"({e}); nothing to check on this machine (exit "
                         f"{EXIT_NO_TENSORRT})\n")
        return EXIT_NO_TENSORRT
    if not 0.0 <= args.agreement <= 1.0:
        raise SkelmtlError(f"--agreement {args.agreement}: give a fraction between 0 and 1")
    from edge.engine import cache as ec

    builder = None
    if args.build_cmd:
        builder = ec.command_builder(shlex.split(args.build_cmd),
                                     ec.BuildRecipe("int8", options=ec.build_options()))
    report = run_selfcheck(model=args.model, fp32=args.fp32, cache_dir=args.cache,
                           agreement=args.agreement, repeats=args.repeats,
                           max_windows=args.max_windows, trt=trt, builder=builder)
    if args.json:
        atomic_write(args.json, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    failed = [s.name for s in report.steps if not s.ok]
    _stdout("selfcheck passed" if report.ok else f"selfcheck FAILED: {', '.join(failed)}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _cli(argv: Sequence[str] | None = None) -> int:
    """``python -m calibration.selfcheck`` (before the subcommand is registered)."""
    parser = argparse.ArgumentParser(prog="skelmtl selfcheck",
                                     description=(__doc__ or "").splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return main(args)
    except SkelmtlError as e:
        sys.stderr.write(f"skelmtl selfcheck: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(_cli())
