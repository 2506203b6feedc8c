"""INT8 by explicit quantization: an FP32 skelmtl ONNX model -> a Q/DQ ONNX model.

Usage: skelmtl calibrate model.onnx --data STORE -o model.int8.onnx --method entropy --report report.json

The calibration windows are real training clips (stratified by task and class), passed
through the runtime's own preprocessing with the model's config. Quantization uses ONNX
Runtime's static quantizer in QDQ format, configured for TensorRT: symmetric INT8
activations (zero point 0), symmetric per-channel INT8 weights, no uint8 anywhere. The
same Q/DQ model runs in ONNX Runtime on a CPU and builds INT8 TensorRT engines
(``skelmtl build-engine``, which folds the int32 bias dequantization TensorRT does not
parse into float biases).

Next to the Q/DQ model, the legacy TensorRT calibration cache (``<out>.calib``, the
entropy calibrator's text format) is written for JetPack 5 users who build INT8 engines
by implicit quantization from the float model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable  # typing's Callable: an alias below is evaluated, on 3.8 too

import numpy as np

from calibration.calibset import WindowSet, draw_calibration_set
from calibration.onnx_meta import OnnxModelError, load_onnx, read_meta, save_onnx_atomic, write_meta
from calibration.trt.calib_cache import encode_calibration_cache
from edge.core.errors import SkelmtlError
from edge.core.metadata import INPUT_NAME, ModelMeta

METHODS = ("minmax", "entropy", "percentile")
# What gets quantized: the compute-heavy operators and the residual Add (TensorRT fuses a
# quantized Add into the convolution that feeds it; ONNX Runtime runs QLinearAdd). Relu
# is left alone: with symmetric INT8 a Q cannot clip at zero, so quantizing it only adds
# a Q/DQ pair.
# "GlobalAveragePool" may be added: ONNX Runtime then pools in INT8, in the NHWC layout of
# the convolutions before it, which saved about 1.5% of the then bundled stgcn_tiny's INT8 time at
# batch 1 but agreed with FP32 on one train window fewer (docs/calibration.md).
DEFAULT_OP_TYPES = ("Conv", "Gemm", "MatMul", "Add")
DEFAULT_CACHE_TRT = "8.5.2"  # JetPack 5.1.1 / 5.1.2
Log = Callable[[str], None]
# Progress goes to this logger; the command shows it (main), a library caller chooses.
LOG = logging.getLogger(__name__)


class QuantizeError(SkelmtlError, ValueError):
    """Quantization cannot be done as asked; the message names the file and the cause."""


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_onnx` wrote.

    Attributes:
        path: the Q/DQ model.
        meta: its metadata (``precision="int8"``).
        calibration_cache: the legacy TensorRT cache, or None.
        quantized_nodes: compute nodes that run in INT8.
        float_nodes: compute nodes left in float (asked for or unsupported).
        counts: calibration windows per task and class.
    """

    path: Path
    meta: ModelMeta
    calibration_cache: Path | None
    quantized_nodes: list[str]
    float_nodes: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _reader(x: np.ndarray, batch: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    # ONNX Runtime's histogram collectors stack per-batch outputs and break on a last,
    # smaller batch; use the largest batch size <= ``batch`` that divides the set.
    batch = next(b for b in range(max(1, min(batch, len(x))), 0, -1) if len(x) % b == 0)

    class ArrayReader(CalibrationDataReader):
        """Feeds ``x`` to the calibrator in equal batches (rewindable)."""

        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(x):
                return None
            b = x[self.i: self.i + batch]
            self.i += batch
            return {INPUT_NAME: np.ascontiguousarray(b, dtype=np.float32)}

        def rewind(self) -> None:
            self.i = 0

    return ArrayReader()


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    try:
        return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}[name]
    except KeyError:
        raise QuantizeError(f"unknown calibration method {name!r}; use one of {METHODS}") from None


def _compute_nodes(model: Any, op_types: Sequence[str]) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in op_types]


def output_layers(model: Any, op_types: Sequence[str]) -> list[str]:
    """Compute nodes that write a graph output: the classifier heads (logits).

    :func:`quantize_onnx` keeps them in float unless asked: in INT8 each tiny head
    (64 x K multiply-accumulates) needs its own quantize and dequantize around it, which
    cost ONNX Runtime more than the product, and the logits keep full precision.
    """
    outs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if n.op_type in op_types and set(n.output) & outs]


def _dq_fed(model: Any) -> set[str]:
    """Nodes that run in INT8: those whose second input (the weight of Conv/Gemm/MatMul,
    the other operand of a residual Add) is dequantized, and one-input operators
    (GlobalAveragePool) between a DQ and a Q. An activation input alone can come from a DQ
    shared with other consumers, so it does not count for the others."""
    dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    q_in = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    return {n.name for n in model.graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and ((len(n.input) > 1 and n.input[1] in dq)
                 or (len(n.input) == 1 and n.input[0] in dq and n.output[0] in q_in))}


def calibrate_ranges(model_path: Path, x: np.ndarray, method: str, batch: int,
                     percentile: float) -> Any:
    """One calibration pass over every float tensor of ``model_path``.

    Returns ONNX Runtime's ``TensorsData`` (tensor -> symmetric range). Entropy uses
    TensorRT's settings (2048 histogram bins, 128 quantized bins): ONNX Runtime's default
    of 128 bins leaves the KL search a single candidate, the full range, which makes
    "entropy" identical to "minmax". Every tensor is calibrated (not only the inputs of
    the quantized operators) because the legacy TensorRT cache needs them all.
    """
    from onnxruntime.quantization import create_calibrator

    extra: dict[str, Any] = {"symmetric": True}
    if method == "entropy":
        extra.update(num_bins=2048, num_quantized_bins=128)
    elif method == "percentile":
        extra.update(num_bins=2048, percentile=percentile)
    with tempfile.TemporaryDirectory(prefix="skelmtl-cal-") as tmp:
        cal = create_calibrator(str(model_path), None,
                                augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                calibrate_method=_method(method), extra_options=extra)
        # ORT prints calibration progress to stdout; stdout carries only our result.
        with contextlib.redirect_stdout(sys.stderr):
            cal.collect_data(_reader(x, batch))
            ranges = cal.compute_data()
    return ranges


def ranges_to_scales(ranges: Any) -> dict[str, float]:
    """Per-tensor INT8 scales ``amax / 127`` from calibrated ranges (zero ranges dropped)."""
    scales = {}
    for name, td in ranges.data.items():
        lo, hi = td.range_value
        amax = float(max(abs(float(np.max(lo))), abs(float(np.max(hi)))))
        if amax > 0 and np.isfinite(amax):
            scales[name] = amax / 127.0
    return scales


def _constant_operand_adds(model: Any, op_types: Sequence[str]) -> list[str]:
    """Add/Mul nodes with a constant operand (a bias, a learned joint embedding, the input
    normalisation): quantizing the constant per-tensor to 8 bits destroys it, and there is
    no integer kernel to gain. Only activation + activation (residual) adds are quantized.
    """
    consts = {t.name for t in model.graph.initializer}
    consts |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    return [n.name for n in model.graph.node
            if n.op_type in ("Add", "Mul", "Sub") and n.op_type in op_types
            and any(i in consts for i in n.input)]


def dedicate_quantizers(model: Any) -> int:
    """Make every activation's Q -> DQ pair per consumer distinct, in place.

    ONNX Runtime's CPU kernels fuse a DQ -> op -> Q unit into an integer kernel
    (QLinearConv, QLinearMatMul...) only when the unit's input DQ comes from a Q that
    feeds nothing else. A tensor with two consumers (an ST-GCN block input feeds the
    graph convolution and the residual convolution) gets one Q -> DQ pair per consumer
    from the quantizer (``DedicatedQDQPair``), but the pairs are identical, so ONNX
    Runtime's common-subexpression elimination merges them back into one Q with two DQs,
    and both consumers then run in float between dequantize and quantize. Giving each
    extra pair its own scale, one float32 ulp apart per copy (a relative change of about
    1e-7), keeps the pairs apart and lets both units fuse. TensorRT is indifferent.

    Returns:
        How many Q -> DQ pairs got their own scale.
    """
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    groups: dict[tuple[str, str], list[Any]] = {}
    for n in g.node:
        if (n.op_type == "QuantizeLinear" and n.input[0] not in inits
                and len(n.input) > 1 and n.input[1] in inits):
            groups.setdefault((n.input[0], n.input[1]), []).append(n)
    changed = 0
    for (_, scale_name), qs in groups.items():
        base = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        for k, q in enumerate(qs[1:], 1):
            scale = base
            for _ in range(k):
                scale = np.nextafter(scale, np.float32(np.inf), dtype=np.float32)
            t = numpy_helper.from_array(scale, f"{scale_name}_pair{k}")
            g.initializer.append(t)
            q.input[1] = t.name
            for dq in consumers.get(q.output[0], []):
                if dq.op_type == "DequantizeLinear" and dq.input[1] == scale_name:
                    dq.input[1] = t.name
            changed += 1
    return changed


# quantize_static(calibration_cache_path=...) and save_tensors_data: ONNX Runtime 1.27.
MIN_ORT_QUANTIZER = "1.27"
QUANTIZERS = ("onnxruntime", "modelopt")
MODELOPT_METHODS = {"entropy": "entropy", "minmax": "max"}  # ours -> ModelOpt's names


def modelopt_missing() -> str | None:
    """Why ``--quantizer modelopt`` cannot run here (None when it can), without importing
    ModelOpt (importing it is slow, and running it patches ONNX Runtime)."""
    import importlib.util

    if importlib.util.find_spec("modelopt") is None:
        return ("--quantizer modelopt needs NVIDIA ModelOpt's ONNX quantizer (pip install "
                "'nvidia-modelopt[onnx]', Python >= 3.10; see docs/calibration.md)")
    return None


def modelopt_quantize(pre: Path, qdq: Path, calib: np.ndarray, method: str,
                      op_types: Sequence[str], exclude: Sequence[str], batch: int) -> str:
    """Quantize with NVIDIA ModelOpt's ONNX post-training quantizer instead (its
    ``modelopt.onnx.quantization.quantize``, INT8 mode, calibrated on the CPU), in a child
    process (:mod:`calibration.modelopt_child`: ModelOpt patches ONNX Runtime's
    quantization modules for the process that runs it).

    ModelOpt places Q/DQ by TensorRT's rules and calibrates with its own ONNX Runtime
    calibrator; it writes opset 19 at least (its minimum for INT8), so its models suit
    TensorRT 10 and 11 (JetPack 6 and 7), not TensorRT 8.5. Float parts stay FP32.

    Returns:
        ModelOpt's version, for the metadata.

    Raises:
        QuantizeError: ModelOpt not installed, a method it lacks (percentile), its failure.
    """
    import subprocess

    missing = quantizer_problem("modelopt", method)
    if missing:
        raise QuantizeError(missing)
    # ModelOpt feeds the calibration data in batches of the shape it is given: the largest
    # batch up to ``batch`` that divides the set, so that no window is dropped.
    n = len(calib)
    b = next(k for k in range(min(batch, n), 0, -1) if n % k == 0)
    shape = "x".join(str(d) for d in (b, *calib.shape[1:]))
    np.save(qdq.with_name("calib.npy"), np.ascontiguousarray(calib, np.float32))
    job = {"model": str(pre), "output": str(qdq), "calib": str(qdq.with_name("calib.npy")),
           "input": INPUT_NAME, "method": MODELOPT_METHODS[method],
           "shapes": f"{INPUT_NAME}:{shape}", "op_types": list(op_types),
           "exclude": list(exclude)}
    job_path = qdq.with_name("modelopt_job.json")
    job_path.write_text(json.dumps(job))
    r = subprocess.run([sys.executable, "-m", "calibration.modelopt_child", str(job_path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        tail = " | ".join(r.stderr.strip().splitlines()[-3:])
        raise QuantizeError(f"ModelOpt's quantizer failed ({tail[-600:]})")
    if not qdq.is_file():
        raise QuantizeError(f"ModelOpt's quantizer wrote no model to {qdq}")
    try:
        return str(json.loads(r.stdout.strip().splitlines()[-1])["modelopt"])
    except (ValueError, KeyError, IndexError):
        return "unknown"


def quantizer_missing() -> str | None:
    """Why this onnxruntime cannot run :func:`quantize_onnx` (None when it can).

    The ranges are computed here (TensorRT's entropy histogram) and handed to ONNX Runtime's
    quantizer through its calibration cache, which arrived in onnxruntime 1.27. Older
    runtimes (JetPack 5's Python 3.8 tops out at 1.16) can run and check INT8 models but
    not make them: calibrate on a workstation, build engines on the device.
    """
    try:
        import onnxruntime
    except ImportError:
        return "skelmtl calibrate needs onnxruntime (pip install 'skelmtl[calib]')"
    try:
        from onnxruntime.quantization.calibrate import save_tensors_data  # noqa: F401
    except ImportError:
        return (f"skelmtl calibrate needs onnxruntime >= {MIN_ORT_QUANTIZER} (its quantizer's "
                f"calibration cache); this is {onnxruntime.__version__}: calibrate on a machine "
                "with a newer onnxruntime (pip install 'skelmtl[calib]')")
    return None


def quantizer_problem(quantizer: str, method: str) -> str | None:
    """Why ``quantizer`` cannot run ``method`` here (None when it can)."""
    if quantizer not in QUANTIZERS:
        return f"unknown quantizer {quantizer!r}; use one of {QUANTIZERS}"
    if quantizer == "modelopt":
        if method not in MODELOPT_METHODS:
            return (f"--quantizer modelopt calibrates with {sorted(MODELOPT_METHODS)}, "
                    f"not {method!r}")
        return modelopt_missing()
    return quantizer_missing()


def prune_opset_imports(model: Any) -> int:
    """Drop opset imports of domains no node uses; returns how many were dropped.

    ONNX Runtime's pre-processing declares every domain it knows (``ai.onnx.ml`` 5,
    ``com.microsoft.nchwc``, ...). Older runtimes refuse a model that imports a domain
    version newer than theirs even when no node uses it (onnxruntime 1.16, JetPack 5's
    newest for Python 3.8: "ValidateOpsetForDomain").
    """
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    dropped = len(model.opset_import) - len(keep)
    if dropped:
        del model.opset_import[:]
        model.opset_import.extend(keep)
    return dropped


def quantize_onnx(model_path: str | os.PathLike[str], out: str | os.PathLike[str],
                  calib: np.ndarray, *, method: str = "entropy",
                  keep_float: Sequence[str] = (), op_types: Sequence[str] = DEFAULT_OP_TYPES,
                  quantize_heads: bool = False, quantizer: str = "onnxruntime",
                  percentile: float = 99.999, batch: int = 32,
                  trt_cache: str | os.PathLike[str] | None = None,
                  trt_cache_version: str = DEFAULT_CACHE_TRT,
                  counts: dict[str, dict[str, int]] | None = None,
                  log: Log = LOG.info) -> QuantizeResult:
    """Quantize ``model_path`` into a Q/DQ model at ``out``.

    Args:
        model_path: FP32 skelmtl ONNX model.
        out: where the Q/DQ model goes (written atomically).
        calib: ``(N, C', T, V)`` calibration windows (preprocessed).
        method: ``minmax``, ``entropy`` or ``percentile``.
        keep_float: node names to leave in float.
        op_types: operator types to quantize.
        quantize_heads: also quantize the layers that write the logits
            (:func:`output_layers`); by default they stay float.
        quantizer: ``onnxruntime`` (ours: TensorRT's entropy histogram, ONNX Runtime's
            Q/DQ placement) or ``modelopt`` (:func:`modelopt_quantize`).
        percentile: the percentile for ``percentile`` calibration.
        batch: calibration batch size.
        trt_cache: also write the legacy TensorRT calibration cache there.
        trt_cache_version: the TensorRT version that will read that cache.
        counts: calibration windows per task and class (recorded in the metadata).
        log: progress lines (default: this module's logger at INFO).

    Raises:
        SkelmtlError: unreadable or foreign model, a model that is not FP32, calibration
            windows of the wrong shape, unknown node names, a quantizer failure.
    """
    from onnxruntime import __version__ as ort_version

    missing = quantizer_problem(quantizer, method)
    if missing:
        raise QuantizeError(missing)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model_path, out = Path(model_path), Path(out)
    model = load_onnx(model_path)
    meta = read_meta(model, model_path)
    if meta.precision != "fp32":
        raise QuantizeError(f"{model_path}: is already {meta.precision}; calibrate the FP32 "
                            "model from 'skelmtl export'")
    p = meta.preprocess
    want = (p.channels, p.window, 75)
    if calib.ndim != 4 or tuple(calib.shape[1:]) != want or len(calib) == 0:
        raise QuantizeError(f"calibration windows {calib.shape} do not match the model input "
                            f"(N, *{want})")
    if method not in METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; use one of {METHODS}")
    names = {n.name for n in model.graph.node}
    unknown = [k for k in keep_float if k not in names]
    if unknown:
        sample = sorted(_compute_nodes(model, op_types))[:8]
        raise QuantizeError(f"{model_path}: no nodes named {unknown}; compute nodes are e.g. "
                            f"{sample}")

    extra: dict[str, Any] = {
        "ActivationSymmetric": True, "WeightSymmetric": True,  # TensorRT: zero point 0
        "QuantizeBias": True,  # int32 bias for ORT's integer kernels; build-engine folds it
        "DedicatedQDQPair": True,  # one DQ per consumer: ORT fuses node units only then
    }
    with tempfile.TemporaryDirectory(prefix="skelmtl-q-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        qdq = Path(tmp) / "qdq.onnx"
        # Shape inference and ORT's basic graph optimisations (standard ops only), as
        # ONNX Runtime recommends before static quantization.
        quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=False)
        import onnx

        pre_model = onnx.load(str(pre))
        heads = [] if quantize_heads else [
            n for n in output_layers(pre_model, op_types) if n not in keep_float]
        exclude = list(keep_float) + heads + _constant_operand_adds(pre_model, op_types)
        ranges = None
        tool = {"quantizer": quantizer}
        if quantizer == "modelopt":
            log(f"quantizing with ModelOpt: {len(calib)} windows, {method}")
            tool["modelopt"] = modelopt_quantize(pre, qdq, calib, method, op_types, exclude,
                                                 batch)
            if trt_cache:
                # The legacy cache holds every tensor's range; ModelOpt's model has only its
                # quantized ones, so the cache comes from our own pass.
                ranges = calibrate_ranges(pre, calib, method, batch, percentile)
        else:
            from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
            from onnxruntime.quantization.calibrate import save_tensors_data

            log(f"calibrating on {len(calib)} windows with {method}")
            ranges = calibrate_ranges(pre, calib, method, batch, percentile)
            cache_json = Path(tmp) / "ranges.json"
            save_tensors_data(ranges, cache_json)
            try:
                quantize_static(str(pre), str(qdq), None,
                                calibration_cache_path=str(cache_json),
                                quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types),
                                per_channel=True, reduce_range=False,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                nodes_to_exclude=exclude,
                                calibrate_method=_method(method), extra_options=extra)
            except Exception as e:  # ORT raises plain exceptions for graph problems
                raise QuantizeError(f"{model_path}: ONNX Runtime's quantizer failed "
                                    f"({type(e).__name__}: {e})") from None
        qmodel = onnx.load(str(qdq))
        prune_opset_imports(qmodel)
        dedicated = dedicate_quantizers(qmodel)
        if dedicated:
            log(f"kept {dedicated} per-consumer Q/DQ pairs apart (ONNX Runtime fuses "
                "integer kernels only then)")

    compute = _compute_nodes(pre_model, op_types)
    fed = _dq_fed(qmodel)
    quantized = [n for n in compute if n in fed]
    floats = [n for n in compute if n not in fed]
    still = [k for k in list(keep_float) + heads if k in fed]
    if still:
        raise QuantizeError(f"nodes asked to stay float were quantized: {still}")
    if not quantized:
        raise QuantizeError(f"{model_path}: nothing was quantized (no {list(op_types)} nodes "
                            "outside --keep-float)")
    foreign = sorted({n.op_type for n in qmodel.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise QuantizeError(f"the quantized model uses non-standard operators {foreign}, which "
                            "TensorRT cannot parse")

    cache_path = Path(trt_cache) if trt_cache else None
    calibration = {"method": method, "windows": int(len(calib)), "per_channel": True,
                   "symmetric": True, "op_types": list(op_types), "keep_float": list(keep_float),
                   "float_heads": heads, "onnxruntime": ort_version, **tool}
    if method == "percentile":
        calibration["percentile"] = percentile
    if counts:
        calibration["per_class"] = counts
    producer = dict(meta.producer, calibration=calibration)
    qmeta = meta.with_(precision="int8", producer=producer)
    write_meta(qmodel, qmeta)
    onnx.checker.check_model(qmodel, full_check=True)
    save_onnx_atomic(qmodel, out)
    log(f"wrote {out}: {len(quantized)} nodes INT8, {len(floats)} float"
        + (f" ({', '.join(floats[:6])}{'...' if len(floats) > 6 else ''})" if floats else ""))

    if cache_path is not None:
        scales = ranges_to_scales(ranges)
        names = {o for n in model.graph.node for o in n.output} | {INPUT_NAME}
        covered = len(names & set(scales))
        data = encode_calibration_cache(scales, trt_cache_version)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_cache = cache_path.with_name(f".{cache_path.name}.tmp-{os.getpid()}")
        tmp_cache.write_bytes(data)
        os.replace(tmp_cache, cache_path)
        log(f"wrote {cache_path}: legacy TensorRT {trt_cache_version} calibration cache, "
            f"{len(scales)} tensors ({covered} of the float model's {len(names)})")
    return QuantizeResult(out, qmeta, cache_path, quantized, floats, counts or {})


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def refuse_overwriting_input(model_path: Path,
                             outputs: dict[str, str | os.PathLike[str] | None]) -> None:
    """Refuse an output path that is the input model (``calibrate M -o M`` would replace
    the FP32 model with the INT8 one, and the FP32 reference would be gone).

    Raises:
        QuantizeError: naming the option and the file.
    """
    for option, path in outputs.items():
        if path is not None and _same_file(Path(path), Path(model_path)):
            raise QuantizeError(f"{path}: {option} is the input model; calibrate writes a "
                                "new file and keeps the FP32 model (e.g. -o model.int8.onnx)")


def calibrate(model_path: str | os.PathLike[str], out: str | os.PathLike[str],
              data: Sequence[str | os.PathLike[str]], *, method: str = "entropy",
              size: int = 512, seed: int = 0, split: str = "train",
              keep_float: Sequence[str] = (), op_types: Sequence[str] = DEFAULT_OP_TYPES,
              quantize_heads: bool = False, quantizer: str = "onnxruntime",
              percentile: float = 99.999, trt_cache: str | os.PathLike[str] | None = "auto",
              trt_cache_version: str = DEFAULT_CACHE_TRT, log: Log = LOG.info
              ) -> tuple[QuantizeResult, WindowSet]:
    """Draw the calibration set from clip stores and quantize (the CLI's work).

    ``trt_cache="auto"`` writes the legacy cache next to ``out`` as ``<stem>.calib``;
    None skips it.
    """
    missing = quantizer_problem(quantizer, method)  # before the minutes spent drawing the set
    if missing:
        raise QuantizeError(missing)
    model_path, out = Path(model_path), Path(out)
    cache = out.with_suffix(".calib") if trt_cache == "auto" else trt_cache
    refuse_overwriting_input(model_path, {"-o/--output": out, "--trt-cache": cache})
    meta = read_meta(load_onnx(model_path), model_path)
    cal = draw_calibration_set(data, meta, size=size, split=split, seed=seed)
    log(f"calibration set: {len(cal)} windows from split {split!r}: "
        + json.dumps(cal.counts(), sort_keys=True))
    res = quantize_onnx(model_path, out, cal.x, method=method, keep_float=keep_float,
                        op_types=op_types, quantize_heads=quantize_heads,
                        quantizer=quantizer, percentile=percentile, trt_cache=cache,
                        trt_cache_version=trt_cache_version, counts=cal.counts(), log=log)
    return res, cal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``skelmtl calibrate``."""
    parser.add_argument("model", type=Path, help="FP32 model.onnx from 'skelmtl export'")
    parser.add_argument("--data", action="extend", nargs="+", required=True, metavar="STORE",
                        help="clip stores with train (and test) splits (--data A B, or "
                             "--data A --data B)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="Q/DQ model to write")
    parser.add_argument("--method", choices=METHODS, default="entropy")
    parser.add_argument("--quantizer", choices=QUANTIZERS, default="onnxruntime",
                        help="onnxruntime (default) or modelopt (NVIDIA ModelOpt's ONNX "
                             "quantizer, if installed: entropy or minmax; writes opset 19, "
                             "for TensorRT 10 / 11)")
    parser.add_argument("--size", type=int, default=512, help="calibration windows")
    parser.add_argument("--percentile", type=float, default=99.999)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="train", help="split to calibrate on")
    parser.add_argument("--keep-float", nargs="+", default=[], metavar="NODE",
                        help="node names to leave in float")
    parser.add_argument("--op-types", nargs="+", default=list(DEFAULT_OP_TYPES),
                        help="operator types to quantize")
    parser.add_argument("--quantize-heads", action="store_true",
                        help="also quantize the layers that write the logits (float by "
                             "default: they are tiny, and INT8 costs more around them)")
    parser.add_argument("--trt-cache", default="auto",
                        help="legacy TensorRT calibration cache path ('auto': <out>.calib, "
                             "'none': skip)")
    parser.add_argument("--trt-cache-version", default=DEFAULT_CACHE_TRT,
                        help="TensorRT version that will read the cache (JetPack 5.1: 8.5.2)")
    parser.add_argument("--report", type=Path, default=None,
                        help="also write the FP32 vs INT8 report (test split) as JSON")
    parser.add_argument("--report-split", default="test")
    parser.add_argument("--threads", type=int, default=1,
                        help="ONNX Runtime threads for the report's latency measurement")
    parser.add_argument("--latency-repeats", type=int, default=200,
                        help="timed runs per model and batch size in the report")


def main(args: argparse.Namespace) -> int:
    """Calibrate, quantize and (optionally) report."""
    if LOG.level == logging.NOTSET:  # the command shows its progress (a caller's level wins)
        LOG.setLevel(logging.INFO)
    cache = None if str(args.trt_cache).lower() == "none" else args.trt_cache
    refuse_overwriting_input(Path(args.model), {"-o/--output": args.output,
                                                "--report": args.report})
    res, _ = calibrate(args.model, args.output, args.data, method=args.method, size=args.size,
                       seed=args.seed, split=args.split, keep_float=args.keep_float,
                       op_types=args.op_types, quantize_heads=args.quantize_heads,
                       quantizer=args.quantizer, percentile=args.percentile, trt_cache=cache,
                       trt_cache_version=args.trt_cache_version)
    if args.report is not None:
        from calibration.report import compare_models, format_report, write_report

        rep = compare_models(args.model, res.path, args.data, split=args.report_split,
                             threads=args.threads, repeats=args.latency_repeats)
        write_report(rep, args.report)
        print(format_report(rep), file=sys.stderr)
    print(res.path)
    return 0


__all__ = ["QuantizeError", "QuantizeResult", "quantize_onnx", "calibrate",
           "calibrate_ranges", "dedicate_quantizers", "ranges_to_scales", "output_layers",
           "modelopt_quantize", "modelopt_missing", "quantizer_problem", "QUANTIZERS",
           "METHODS", "DEFAULT_OP_TYPES", "OnnxModelError"]
