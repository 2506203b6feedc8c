"""Build a TensorRT engine from a skelmtl ONNX model, on the device that will run it.

Usage: skelmtl build-engine model.int8.onnx --precision int8 -o model.engine

INT8 engines come from the Q/DQ model written by ``skelmtl calibrate`` (explicit
quantization), prepared for the installed TensorRT by :mod:`calibration.trt_prepare`; on
TensorRT 8.5 (JetPack 5.1) and 8.6 (JetPack 6.0) the float model plus ``--calib-cache``
(the legacy entropy calibrator replaying the cache ``calibrate`` wrote) is the
alternative. FP16 and FP32 engines come from the float ``model.onnx``. Every difference
between TensorRT 8.5/8.6, 10.x and 11.x is handled in :mod:`calibration.trt`.

The build never lowers precision silently: it stops when the GPU reports no fast INT8 /
FP16, when an ONNX operator is not supported by this TensorRT, or when the built engine's
layers do not run in the precision asked for. The output file is the engine prefixed by
a metadata header (:mod:`edge.engine.header`) that the runtime reads back.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import (
    Any,
    Callable,  # typing's: the alias below is evaluated, on 3.8 too
)

from calibration.onnx_meta import load_onnx, read_meta, save_onnx_atomic
from calibration.trt.builder import (
    attach_calibrator,
    check_platform,
    configure_precision,
    make_cache_calibrator,
    network_flags,
    open_timing_cache,
    parser_errors,
    set_workspace,
    use_strong_typing,
)
from calibration.trt.calib_cache import check_calibration_cache
from calibration.trt.inspection import inspect_engine, precision_problems
from calibration.trt.onnx_checks import (
    Issue,
    check_onnx,
    compute_node_names,
    qdq_nodes,
    raise_on_errors,
)
from calibration.trt.versions import TensorRTError, profile_for
from edge import __version__
from edge.core.atomic import atomic_write
from edge.core.metadata import INPUT_NAME
from edge.engine.header import EngineHeader, write_engine

DEFAULT_WORKSPACE_MB = 1024
Log = Callable[[str], None]
# Progress goes to this logger; the command shows it (main), a library caller chooses.
LOG = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    """``import tensorrt`` (lazy: it exists only on machines with JetPack / a TensorRT wheel).

    Raises:
        TensorRTError: the bindings are not importable.
    """
    try:
        import tensorrt
    except ImportError as e:
        raise TensorRTError(
            f"TensorRT's Python bindings are not importable ({e}); on a Jetson they come "
            "with JetPack (apt install python3-libnvinfer); engines must be built on the "
            "device that runs them") from None
    return tensorrt


def detect_gpu_name() -> str:
    """The GPU description for the engine header (``SKELMTL_GPU`` overrides; else
    :func:`edge.engine.cache.detect_gpu`), or ``"unknown"``."""
    from edge.backends.tensorrt import current_gpu

    return current_gpu() or "unknown"


def _convert_fp16(model: Any, log: Log) -> Any:
    """FP32 -> FP16 tensors, inputs and outputs kept FP32 (TensorRT 11: types are precision)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    log("converting the model's tensors to FP16 (inputs and outputs stay FP32): strongly "
        "typed TensorRT takes the precision from the ONNX types")
    return convert_float_to_float16(model, keep_io_types=True)


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def build_engine(model_path: str | os.PathLike[str], out: str | os.PathLike[str],
                 precision: str = "int8", *, min_batch: int = 1, opt_batch: int = 1,
                 max_batch: int = 8, timing_cache: str | os.PathLike[str] | None = None,
                 calib_cache: str | os.PathLike[str] | None = None,
                 workspace_mb: int = DEFAULT_WORKSPACE_MB, gpu: str | None = None,
                 weights: str = "auto", matmul: str = "auto", qdq_placement: str = "tensorrt",
                 typing: str = "auto", float_islands: str = "fp16",
                 save_prepared: str | os.PathLike[str] | None = None,
                 allow_precision_mismatch: bool = False,
                 trt: Any = None, log: Log = LOG.info) -> EngineHeader:
    """Build ``model_path`` into an engine file at ``out``.

    Args:
        model_path: a skelmtl ONNX model (with its metadata).
        out: the engine file to write (header + engine, atomically).
        precision: ``int8``, ``fp16`` or ``fp32``.
        min_batch, opt_batch, max_batch: the optimisation profile of the batch axis.
        timing_cache: TensorRT timing cache file, read if present and written back; a
            corrupt one is replaced by an empty one, never fatal.
        calib_cache: legacy calibration cache (TensorRT 8.x/10.x, float model only).
        workspace_mb: builder workspace limit.
        gpu: GPU description for the header (default: detected).
        weights, matmul, qdq_placement: how the Q/DQ model is prepared for this TensorRT
            (:class:`calibration.trt_prepare.PrepareOptions`; ``auto`` follows NVIDIA's
            documentation for the version).
        typing: ``auto``, ``strong`` or ``weak`` network typing
            (:func:`calibration.trt.builder.use_strong_typing`).
        float_islands: precision TensorRT may use for the layers of a weakly typed INT8
            build that are not quantized: ``fp16`` (NVIDIA's advice) or ``fp32``.
        save_prepared: also write the prepared ONNX here, for inspection.
        allow_precision_mismatch: write the engine even when its layer precisions do not
            match ``precision`` (logged, and recorded in the header).
        trt: the ``tensorrt`` module (default: imported; tests pass a stand-in).
        log: progress and diagnostics (default: this module's logger at INFO).

    Returns:
        The header written in front of the engine.

    Raises:
        SkelmtlError: bad model or metadata, unsupported TensorRT or operator, parser
            errors, a prepared model that breaks this version's rules, no fast INT8/FP16,
            a failed build, or an engine whose layer precisions do not match ``precision``.
    """
    from calibration import trt_prepare as tp

    if precision not in ("int8", "fp16", "fp32"):
        raise TensorRTError(f"unknown precision {precision!r}; use int8, fp16 or fp32")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise TensorRTError(f"need 1 <= min-batch <= opt-batch <= max-batch, got "
                            f"{min_batch}, {opt_batch}, {max_batch}")
    if workspace_mb < 1:
        raise TensorRTError(f"--workspace-mb must be at least 1, got {workspace_mb}")
    model_path, out = Path(model_path), Path(out)
    _refuse_overwriting_inputs([model_path] + ([Path(calib_cache)] if calib_cache else []),
                               {"-o/--output": out, "--save-prepared": save_prepared,
                                "--timing-cache": timing_cache})
    trt = trt if trt is not None else import_tensorrt()
    version = str(trt.__version__)
    profile = profile_for(version)
    options = tp.PrepareOptions(weights, matmul, qdq_placement).resolve(profile)

    model = load_onnx(model_path)
    meta = read_meta(model, model_path)
    prepared = tp.prepare_for_tensorrt(model, profile, options)
    for line in prepared.lines():
        log(line)
    has_qdq = bool(qdq_nodes(model))
    strong = use_strong_typing(profile, precision, has_qdq, typing)
    log(f"TensorRT {version} (rules of TensorRT {profile.family}, JetPack {profile.jetpack}); "
        f"{'strongly typed network' if strong else 'precision by builder flags'}")
    uses_fp16 = any(t.data_type == 10 for t in model.graph.initializer)
    if precision == "fp16" and strong and not uses_fp16:
        model = _convert_fp16(model, log)
    if save_prepared is not None:
        save_onnx_atomic(model, save_prepared)
        log(f"prepared ONNX written to {save_prepared}")
    issues = check_onnx(model, profile, precision, calibration_cache=calib_cache is not None)
    if has_qdq:
        issues += [Issue("error", m) for m in tp.prepared_problems(model, profile, options)]
    for i in issues:
        if i.severity != "error":
            log(str(i))
    raise_on_errors(issues, str(model_path))

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    log(check_platform(trt, builder, profile, precision))
    network = builder.create_network(network_flags(trt, profile, strong))
    parser = trt.OnnxParser(network, logger)
    data = model.SerializeToString()
    if not parser.parse(data, str(model_path)):
        errors = parser_errors(parser)
        raise TensorRTError(f"{model_path}: TensorRT {version}'s ONNX parser failed:\n  - "
                            + "\n  - ".join(errors or ["(no error reported)"]))

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for t in tensors:
            log(f"{kind} {t.name}: shape {tuple(t.shape)} {getattr(t.dtype, 'name', t.dtype)}")
    if [t.name for t in inputs] != [INPUT_NAME]:
        raise TensorRTError(f"{model_path}: network inputs {[t.name for t in inputs]}, "
                            f"expected [{INPUT_NAME!r}]")
    if [t.name for t in outputs] != meta.output_names():
        raise TensorRTError(f"{model_path}: network outputs {[t.name for t in outputs]} do "
                            f"not match the metadata's {meta.output_names()}")

    config = builder.create_builder_config()
    set_workspace(trt, config, workspace_mb << 20)
    # DETAILED verbosity puts per-layer data types in the engine, which the precision
    # check below needs.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    flags = configure_precision(trt, config, profile, precision, strong=strong,
                                float_islands=float_islands)
    if "FP16" in flags and precision == "int8":
        log("INT8 with the FP16 flag: layers left float (heads, float MatMuls) may run in "
            "FP16; --float-islands fp32 keeps them FP32")

    shape = tuple(inputs[0].shape)
    if any(int(d) < 0 for d in shape[1:]):
        raise TensorRTError(f"{model_path}: input {INPUT_NAME} has dynamic non-batch "
                            f"dimensions {shape}; export with a fixed window")
    rest = tuple(int(d) for d in shape[1:])
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, (min_batch, *rest), (opt_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(opt_profile)
    log(f"optimisation profile: batch {min_batch}/{opt_batch}/{max_batch} x {rest}")

    calibration = "qdq" if has_qdq else None
    if calib_cache is not None:
        cache = check_calibration_cache(Path(calib_cache), profile)
        attach_calibrator(trt, config, profile, make_cache_calibrator(trt, profile, cache),
                          opt_profile)
        calibration = f"legacy-cache:{Path(calib_cache).name}"
        log(f"implicit INT8 from calibration cache {calib_cache}")

    tc_path = Path(timing_cache) if timing_cache else None
    if tc_path is not None:
        try:
            blob = tc_path.read_bytes() if tc_path.is_file() else b""
        except OSError as e:
            log(f"timing cache {tc_path} is unreadable ({e.strerror}); starting from an empty one")
            blob = b""
        cache_obj = open_timing_cache(config, blob, str(tc_path), log)
        if not config.set_timing_cache(cache_obj, False):
            log(f"timing cache {tc_path} was made by another TensorRT or GPU; starting a "
                "fresh one")
            config.set_timing_cache(open_timing_cache(config, b"", str(tc_path), log), False)
        elif blob:
            log(f"reusing timing cache {tc_path}")

    log(f"building a {precision} engine (minutes on a Jetson)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"{model_path}: TensorRT {version} failed to build the engine "
                            "(its log above says why)")
    engine_bytes = bytes(serialized)
    if tc_path is not None:
        cache_now = config.get_timing_cache()
        if cache_now is not None:
            _write_atomic(tc_path, bytes(cache_now.serialize()))
            log(f"timing cache written to {tc_path}")

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise TensorRTError(f"{model_path}: the engine TensorRT just built does not "
                            "deserialise")
    layers = inspect_engine(trt, engine, profile)
    for lay in layers:
        log(f"layer {lay.name!r} ({lay.layer_type or '?'}): "
            f"{'/'.join(sorted(lay.dtypes)) or 'no types'}")
    matmul_int8 = options.matmul == "int8" and profile.int8_matmul
    notes: list[str] = []
    problems = precision_problems(layers, precision,
                                  tp.quantized_compute_nodes(model, matmul_int8),
                                  compute_node_names(model), notes)
    check = "passed"
    for note in notes:
        log(f"warning: {note}")
        check = "unverified: " + "; ".join(notes)
    if problems:
        text = (f"{model_path}: the {precision} engine does not compute in {precision}:\n  - "
                + "\n  - ".join(problems))
        if not allow_precision_mismatch:
            raise TensorRTError(text + "\n(refusing to write it; "
                                "--allow-precision-mismatch writes it anyway)")
        log("warning: " + text + "\n(writing it anyway: --allow-precision-mismatch)")
        check = "overridden: " + "; ".join(problems)
    counts: dict[str, int] = {}
    for lay in layers:
        for d in lay.dtypes:
            counts[d] = counts.get(d, 0) + 1
    log(f"engine layers by I/O type: {dict(sorted(counts.items()))}")

    producer = dict(meta.producer, tensorrt=version)
    header = EngineHeader(
        meta=meta.with_(precision=precision, producer=producer), precision=precision,
        tensorrt=version, gpu=gpu or detect_gpu_name(), engine_size=len(engine_bytes),
        engine_sha256=hashlib.sha256(engine_bytes).hexdigest(),
        build={"min_batch": min_batch, "opt_batch": opt_batch, "max_batch": max_batch,
               "workspace_mb": workspace_mb, "strongly_typed": strong,
               "builder_flags": flags, "float_islands": float_islands if "FP16" in flags
               and precision == "int8" else None,
               "trt_family": profile.family, "calibration": calibration,
               "prepared": prepared.summary(), "precision_check": check,
               "skelmtl": __version__,
               "source_onnx": model_path.name,
               "source_sha256": _sha256(model_path),
               "built_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    write_engine(out, header, engine_bytes)
    log(f"wrote {out} ({len(engine_bytes) / 1e6:.2f} MB engine, {precision}, "
        f"TensorRT {version}, GPU {header.gpu})")
    return header


def _refuse_overwriting_inputs(inputs: list[Path],
                               outputs: dict[str, str | os.PathLike[str] | None]) -> None:
    """An output that is an input (``build-engine m.onnx -o m.onnx``) would destroy it.

    Raises:
        TensorRTError: naming the option and the file.
    """
    for option, path in outputs.items():
        if path is None:
            continue
        for src in inputs:
            try:
                same = Path(path).resolve() == src.resolve() or (
                    Path(path).exists() and src.exists() and Path(path).samefile(src))
            except OSError:
                same = False
            if same:
                raise TensorRTError(f"{path}: {option} is an input of this build; "
                                    "write the output to another file")


def _sha256(path: Path) -> str:
    from edge.engine.cache import file_sha256

    return file_sha256(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skelmtl build-engine``."""
    parser.add_argument("model", type=Path, help="ONNX model: model.int8.onnx (Q/DQ) for "
                        "int8, model.onnx for fp16/fp32")
    parser.add_argument("-o", "--output", type=Path, required=True, help="engine file to write")
    parser.add_argument("--precision", choices=("int8", "fp16", "fp32"), default="int8")
    parser.add_argument("--min-batch", type=int, default=1)
    parser.add_argument("--opt-batch", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--timing-cache", type=Path, default=None,
                        help="TensorRT timing cache (read if present, written back)")
    parser.add_argument("--calib-cache", type=Path, default=None,
                        help="legacy calibration cache from 'skelmtl calibrate' (TensorRT "
                             "8.x/10.x; give the float model.onnx)")
    parser.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB)
    parser.add_argument("--gpu", default=None, help="GPU description for the header "
                        "(default: detected)")
    prep = parser.add_argument_group(
        "TensorRT preparation (defaults follow NVIDIA's documentation per version; only a "
        "build on the device can tell whether another choice is faster or more accurate)")
    prep.add_argument("--weights", choices=("auto", "qdq", "int8"), default="auto",
                      help="quantized weights as float -> Q -> DQ (auto on 8.x) or int8 "
                           "initializers -> DQ (auto from 10)")
    prep.add_argument("--matmul", choices=("auto", "int8", "float"), default="auto",
                      help="MatMul in float (auto on 8.x: no INT8 MatMul there) or INT8")
    prep.add_argument("--qdq-placement", choices=("tensorrt", "as-calibrated"),
                      default="tensorrt", help="drop the Q/DQ on outputs in front of "
                      "activations (tensorrt) or keep calibrate's placement; duplicate "
                      "quantizers of one tensor are merged either way")
    prep.add_argument("--typing", choices=("auto", "strong", "weak"), default="auto",
                      help="strongly typed network: auto = always on 11.x, for Q/DQ INT8 "
                           "from 10.12")
    prep.add_argument("--float-islands", choices=("fp16", "fp32"), default="fp16",
                      help="weakly typed INT8 builds: precision allowed for layers that are "
                           "not quantized (the FP16 flag)")
    prep.add_argument("--save-prepared", type=Path, default=None,
                      help="write the ONNX handed to TensorRT here, for inspection")
    prep.add_argument("--allow-precision-mismatch", action="store_true",
                      help="write the engine even if its layers do not run in --precision "
                           "(recorded in the engine header)")


def main(args: argparse.Namespace) -> int:
    """Build the engine; the output path goes to stdout, the build log to stderr."""
    if LOG.level == logging.NOTSET:  # the command shows its progress (a caller's level wins)
        LOG.setLevel(logging.INFO)
    build_engine(args.model, args.output, args.precision, min_batch=args.min_batch,
                 opt_batch=args.opt_batch, max_batch=args.max_batch,
                 timing_cache=args.timing_cache, calib_cache=args.calib_cache,
                 workspace_mb=args.workspace_mb, gpu=args.gpu, weights=args.weights,
                 matmul=args.matmul, qdq_placement=args.qdq_placement, typing=args.typing,
                 float_islands=args.float_islands, save_prepared=args.save_prepared,
                 allow_precision_mismatch=args.allow_precision_mismatch)
    print(args.output)
    return 0
