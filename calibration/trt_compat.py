"""Every TensorRT version difference, in one place.

The engine builder (:mod:`calibration.engine`) never tests a version number itself: it asks
the :class:`TrtProfile` of the installed TensorRT what to do, and calls the helpers here
for the API calls that differ. The versions we support, and what differs:

============  =========  ==========================================================
TensorRT      JetPack    differences that matter to us
============  =========  ==========================================================
8.5.x         5.1.x      networks need ``EXPLICIT_BATCH``; precision by builder flags
8.6.x         6.0 (DP)   (``INT8``, ``FP16``); Q/DQ models build with the ``INT8``
                         flag; the legacy ``IInt8EntropyCalibrator2`` reads a
                         calibration cache (implicit quantization); ONNX opset <= 17;
                         8.5 has no ``LayerNormalization``; ``Einsum`` without
                         ellipsis, diagonals or broadcasting; weights are quantized by
                         the parser from float constants (float -> Q -> DQ), and
                         MatMul has no INT8 (onnx-tensorrt 8.5 ``operators.md``:
                         "MatMul | FP32, FP16").
10.x          6.1, 6.2   explicit batch always (flag deprecated, not needed);
              (10.3);    precision flags still exist; calibrators deprecated since
              7.0        10.1; ``platform_has_fast_int8`` deprecated since 10.5;
              (10.13+)   int8 weight initializers behind ``DequantizeLinear`` are
                         documented ("Quantized Weights"); MatMul lists INT8;
                         from 10.12 NVIDIA recommends strongly typed networks for
                         Q/DQ models ("Use explicit quantization with Strong
                         Typing. Precision-control build flags are not required and
                         should not be specified").
11.x          7.2.2+     strongly typed networks only: ``BuilderFlag.FP16/INT8``,
              (11.4.1+)  ``OBEY_PRECISION_CONSTRAINTS``, calibrators,
                         ``int8_calibrator`` and ``platform_has_fast_int8/fp16`` are
                         removed; INT8 only from Q/DQ, FP16 only from an FP16-typed
                         ONNX model; the engine inspector's JSON changed
                         (``Bindings`` -> ``I/O Tensors``; ``Format/Datatype`` split).
============  =========  ==========================================================

TensorRT 8.6 ships with JetPack 6.0 (developer preview), not JetPack 5.1 (which has 8.5.2);
TensorRT 11 reaches Jetson only as 11.4.1 and later on JetPack 7.2.2 and later.

Sources: NVIDIA's TensorRT Python API reference per release and the "Migrating from
TensorRT 10.x to 11.x" guide (Python API reference, IEngineInspector JSON output,
Jetson/JetPack pages); onnx-tensorrt ``docs/operators.md`` at the 8.5 release for the
operator matrix ("MatMul | FP32, FP16", "QuantizeLinear | FP32, FP16", "DequantizeLinear |
INT8 | x_zero_point must be zero"); NVIDIA's "Explicit Quantization" page (quantized
weights behind ``IDequantizeLayer``; "use explicit quantization with Strong Typing.
Precision-control build flags are not required and should not be specified"); trtexec's
advice to add FP16 to INT8 builds (quoted in NVIDIA/TensorRT#2664); TensorRT's fused layer
names (``w + Q_quantize_scale_node + Conv + Relu``, NVIDIA/TensorRT#1293); the timing cache
API (``IBuilderConfig.create_timing_cache`` / ``set_timing_cache``, Python API reference).
The ONNX each version is handed is prepared in :mod:`calibration.trt_prepare`.

This module imports neither TensorRT nor onnx at import time: the ``trt`` module is
passed in, so the same code runs against the real bindings on a Jetson and against the
recording stand-in in ``tests/fake_tensorrt``.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import SkelmtlError


class TensorRTError(SkelmtlError, RuntimeError):
    """TensorRT cannot build what was asked; the message says what and why."""


class UnsupportedTensorRT(TensorRTError):
    """A TensorRT version this package does not know how to drive."""


# --- versions -----------------------------------------------------------------------------

def parse_version(v: str) -> tuple[int, int, int]:
    """``"10.3.0.30"`` -> ``(10, 3, 0)``.

    Raises:
        UnsupportedTensorRT: not a version string.
    """
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(v))
    if not m:
        raise UnsupportedTensorRT(f"cannot read a TensorRT version from {v!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_number(v: str) -> int:
    """TensorRT's ``NV_TENSORRT_VERSION`` integer, as used in calibration cache headers.

    8.x: ``major*1000 + minor*100 + patch`` (8.5.2 -> 8502); 10 and later:
    ``major*10000 + minor*100 + patch`` (10.3.0 -> 100300).
    """
    major, minor, patch = parse_version(v)
    if major < 10:
        return major * 1000 + minor * 100 + patch
    return major * 10000 + minor * 100 + patch


# Operators the ONNX parser rejects. 8.5: the "N" rows of onnx-tensorrt's operators.md at
# release 8.5 (only those an exported network could contain are worth listing, but the
# whole row set is cheap). 8.6 adds LayerNormalization. For 10/11 we list what no
# TensorRT parses: ONNX Runtime's integer-only operators (a QOperator-format model),
# sequences and strings.
_NEVER = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
    "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SequenceMap", "SplitToSequence", "ConcatFromSequence",
    "StringNormalizer", "TfIdfVectorizer",
})
_UNSUPPORTED_85 = _NEVER | {
    "Bernoulli", "BitShift", "BlackmanWindow", "Compress", "DFT", "Det", "HammingWindow",
    "HannWindow", "Hardmax", "IsInf", "LayerNormalization", "MaxRoiPool", "MaxUnpool",
    "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional",
    "OptionalGetElement", "OptionalHasElement", "STFT", "SoftmaxCrossEntropyLoss", "Unique",
}
_UNSUPPORTED_86 = _UNSUPPORTED_85 - {"LayerNormalization"}


@dataclass(frozen=True)
class TrtProfile:
    """What one TensorRT release needs from us.

    Attributes:
        version: ``(major, minor, patch)``.
        family: ``"8.5"``, ``"8.6"``, ``"10"`` or ``"11"``.
        jetpack: the JetPack generation that ships it.
        explicit_batch_flag: ``create_network`` needs ``1 << EXPLICIT_BATCH``.
        strongly_typed: the network is created ``STRONGLY_TYPED`` (precision comes from
            the ONNX types and Q/DQ nodes; no precision flags).
        precision_flags: ``BuilderFlag.INT8`` / ``FP16`` exist and are used.
        capability_query: ``builder.platform_has_fast_int8/fp16`` exist.
        legacy_calibrator: ``IInt8EntropyCalibrator2`` and ``config.int8_calibrator``
            exist (implicit quantization from a calibration cache).
        legacy_calibrator_deprecated: they exist but NVIDIA deprecated them.
        max_opset: highest default-domain ONNX opset the parser documents.
        unsupported_ops: ONNX operators the parser rejects.
        einsum_restricted: ``Einsum`` without ellipsis, diagonals or broadcasting.
        inspector_io_key: the engine inspector's key for I/O tensors
            (``"Bindings"`` until 10.x, ``"I/O Tensors"`` from 11).
        quantized_weights: int8 weight initializers may feed ``DequantizeLinear``
            (documented from 10.0; 8.x wants float weights -> Q -> DQ).
        int8_matmul: the parser lists INT8 for ``MatMul`` (not in 8.5/8.6).
        strongly_typed_available: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists
            (10.0 and later).
        strongly_typed_recommended: NVIDIA recommends strongly typed Q/DQ builds (10.12
            and later; mandatory from 11).
    """

    version: tuple[int, int, int]
    family: str
    jetpack: str
    explicit_batch_flag: bool
    strongly_typed: bool
    precision_flags: bool
    capability_query: bool
    legacy_calibrator: bool
    legacy_calibrator_deprecated: bool
    max_opset: int
    unsupported_ops: frozenset[str] = field(default_factory=frozenset)
    einsum_restricted: bool = False
    inspector_io_key: str = "Bindings"
    quantized_weights: bool = False
    int8_matmul: bool = False
    strongly_typed_available: bool = False
    strongly_typed_recommended: bool = False

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))


def profile_for(version: str) -> TrtProfile:
    """The :class:`TrtProfile` of a TensorRT version string.

    Raises:
        UnsupportedTensorRT: older than 8.5, or the 9.x line (never shipped on Jetson).
    """
    v = parse_version(version)
    major, minor, _ = v
    if (major, minor) in ((8, 5), (8, 6)):
        return TrtProfile(version=v, family=f"8.{minor}", jetpack="5.1" if minor == 5 else "6.0",
                          explicit_batch_flag=True,
                          strongly_typed=False, precision_flags=True, capability_query=True,
                          legacy_calibrator=True, legacy_calibrator_deprecated=False,
                          max_opset=17,
                          unsupported_ops=_UNSUPPORTED_85 if minor == 5 else _UNSUPPORTED_86,
                          einsum_restricted=True)
    if major == 10:
        return TrtProfile(version=v, family="10", jetpack="6" if minor < 13 else "7",
                          explicit_batch_flag=False, strongly_typed=False, precision_flags=True,
                          capability_query=True, legacy_calibrator=True,
                          legacy_calibrator_deprecated=minor >= 1,
                          # TensorRT 10.0 documents opsets up to 20; later 10.x may accept more.
                          max_opset=20, unsupported_ops=_NEVER, quantized_weights=True,
                          int8_matmul=True, strongly_typed_available=True,
                          strongly_typed_recommended=minor >= 12)
    if major >= 11:
        return TrtProfile(version=v, family="11", jetpack="7.2.2", explicit_batch_flag=False,
                          strongly_typed=True, precision_flags=False, capability_query=False,
                          legacy_calibrator=False, legacy_calibrator_deprecated=False,
                          max_opset=25, unsupported_ops=_NEVER, inspector_io_key="I/O Tensors",
                          quantized_weights=True, int8_matmul=True,
                          strongly_typed_available=True, strongly_typed_recommended=True)
    raise UnsupportedTensorRT(
        f"TensorRT {version} is not supported: use 8.5 (JetPack 5.1), 8.6 (JetPack 6.0 DP), "
        "10.x (JetPack 6.1+/7) or 11.4.1+ (JetPack 7.2.2+)")


# --- ONNX checks before the parser sees the model ------------------------------------------

@dataclass(frozen=True)
class Issue:
    """One finding of :func:`check_onnx`: ``error`` stops the build, ``warning`` is logged."""

    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


_QDQ = ("QuantizeLinear", "DequantizeLinear")
_INT8, _UINT8, _INT32, _FLOAT16 = 3, 2, 6, 10  # onnx.TensorProto data types


def onnx_summary(model: Any) -> dict[str, Any]:
    """What the checks need from an ``onnx.ModelProto``: opset, ops, Q/DQ, float16 use."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant" and n.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    ops = [(n.name or n.output[0], n.op_type, n.domain) for n in g.node]
    elem = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        elem[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        elem[t.name] = t.data_type
    return {"opset": opset, "ops": ops, "inits": inits, "consts": consts, "elem": elem,
            "nodes": list(g.node)}


def _const_array(name: str, s: Mapping[str, Any]) -> Any:
    from onnx import numpy_helper

    if name in s["inits"]:
        return numpy_helper.to_array(s["inits"][name])
    if name in s["consts"]:
        for a in s["consts"][name].attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    return None


def qdq_nodes(model: Any) -> list[Any]:
    """The model's QuantizeLinear / DequantizeLinear nodes."""
    return [n for n in model.graph.node if n.op_type in _QDQ]


def quantized_compute_nodes(model: Any) -> list[str]:
    """Names of Conv/Gemm/MatMul nodes whose weight (second input) is dequantized: the
    nodes an INT8 engine must run in INT8."""
    produced_by_dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return [n.name for n in model.graph.node
            if n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose")
            and len(n.input) > 1 and n.input[1] in produced_by_dq]


def check_onnx(model: Any, profile: TrtProfile, precision: str, *,
               calibration_cache: bool = False) -> list[Issue]:
    """The checks a TensorRT version needs before parsing ``model``.

    Args:
        model: an ``onnx.ModelProto``.
        profile: the target TensorRT.
        precision: the precision asked for (``int8``, ``fp16``, ``fp32``).
        calibration_cache: a legacy calibration cache will be used (implicit INT8).

    Returns:
        The issues found, errors first. An empty list means the model looks buildable.
    """
    s = onnx_summary(model)
    issues: list[Issue] = []
    err = lambda m: issues.append(Issue("error", m))  # noqa: E731
    warn = lambda m: issues.append(Issue("warning", m))  # noqa: E731
    v = profile.version_str

    if s["opset"] > profile.max_opset:
        msg = (f"ONNX opset {s['opset']} is above the {profile.max_opset} TensorRT {v} "
               "documents; re-export with 'skelmtl export --opset 17'")
        (err if profile.family.startswith("8") else warn)(msg)
    foreign = sorted({f"{op} ({dom})" for _, op, dom in s["ops"] if dom not in ("", "ai.onnx")})
    if foreign:
        err(f"operators from non-standard domains TensorRT cannot parse: {', '.join(foreign)} "
            "(an ONNX Runtime-optimised model? quantize the exported model, not an "
            "ORT-optimised one)")
    bad = sorted({op for _, op, dom in s["ops"]
                  if dom in ("", "ai.onnx") and op in profile.unsupported_ops})
    if bad:
        err(f"operators TensorRT {v} does not support: {', '.join(bad)}")
    if profile.einsum_restricted:
        for n in s["nodes"]:
            if n.op_type != "Einsum":
                continue
            eq = next((a.s.decode() for a in n.attribute if a.name == "equation"), "")
            lhs = eq.split("->")[0].replace(" ", "")
            if "..." in lhs:
                err(f"Einsum {n.name!r} ({eq}) uses an ellipsis, which TensorRT {v} rejects")
            elif any(len(set(term)) != len(term) for term in lhs.split(",")):
                err(f"Einsum {n.name!r} ({eq}) takes a diagonal, which TensorRT {v} rejects")

    qdq = [n for n in s["nodes"] if n.op_type in _QDQ]
    for n in qdq:
        zp = _const_array(n.input[2], s) if len(n.input) > 2 and n.input[2] else None
        if zp is not None:
            if zp.dtype.name == "uint8" or s["elem"].get(n.input[2]) == _UINT8:
                err(f"{n.op_type} {n.name!r} uses uint8: TensorRT quantizes to int8 only "
                    "(calibrate with symmetric int8 activations)")
            elif (zp != 0).any():
                err(f"{n.op_type} {n.name!r} has a non-zero zero point: TensorRT supports "
                    "symmetric quantization only")
        if n.op_type == "DequantizeLinear":
            src = s["elem"].get(n.input[0])
            if src == _INT32:
                err(f"DequantizeLinear {n.name!r} dequantizes int32 (a quantized bias): "
                    "TensorRT needs float biases (calibrate with QuantizeBias off)")
    has_qdq = bool(qdq)
    uses_fp16 = any(t == _FLOAT16 for t in s["elem"].values())

    if calibration_cache:
        if not profile.legacy_calibrator:
            err(f"TensorRT {v} has no INT8 calibrators (implicit quantization was removed); "
                "build from the Q/DQ model written by 'skelmtl calibrate' instead")
        elif has_qdq:
            err("a calibration cache cannot be combined with a Q/DQ model (implicit and "
                "explicit quantization do not mix); give the float model.onnx with "
                "--calib-cache, or drop --calib-cache")
        elif precision != "int8":
            err("--calib-cache only makes sense with --precision int8")
        elif profile.legacy_calibrator_deprecated:
            warn(f"implicit INT8 calibration is deprecated in TensorRT {v}; prefer the "
                 "Q/DQ model")
    if precision == "int8" and not has_qdq and not calibration_cache:
        hint = (" or, on TensorRT 8.x/10.x, give the float model with --calib-cache"
                if profile.legacy_calibrator else "")
        err("--precision int8 needs a Q/DQ model (from 'skelmtl calibrate')" + hint)
    if precision in ("fp16", "fp32") and has_qdq:
        err(f"the model has Q/DQ nodes, so TensorRT would compute those layers in INT8, "
            f"not {precision}; build {precision} engines from the float model.onnx")
    if precision == "fp16" and profile.strongly_typed and not uses_fp16:
        err(f"TensorRT {v} builds strongly typed networks: FP16 comes from FP16 tensors in "
            "the ONNX model, not from a builder flag, and this model is all FP32 (convert it "
            "to FP16 first, e.g. with ModelOpt AutoCast)")
    if precision == "fp32" and uses_fp16:
        err("the model has float16 tensors, so an fp32 engine would not be fp32")
    issues.sort(key=lambda i: i.severity != "error")
    return issues


def raise_on_errors(issues: Iterable[Issue], source: str) -> None:
    """Raise one :class:`TensorRTError` listing every error in ``issues``."""
    errors = [i.message for i in issues if i.severity == "error"]
    if errors:
        lines = "\n  - ".join(errors)
        raise TensorRTError(f"{source}: cannot build with this TensorRT:\n  - {lines}")


def fold_int32_dequantize(model: Any) -> int:
    """Replace ``DequantizeLinear`` of constant int32 tensors (quantized biases) by float
    initializers, in place; returns how many were folded.

    ONNX Runtime's integer kernels want int32 biases, TensorRT's parser only dequantizes
    8-bit types. Folding the bias back to float keeps one Q/DQ model for both: TensorRT
    then adds the bias in its own INT8 convolution epilogue.
    """
    from onnx import numpy_helper

    s = onnx_summary(model)
    g = model.graph
    folded = 0
    for n in list(g.node):
        if n.op_type != "DequantizeLinear" or s["elem"].get(n.input[0]) != _INT32:
            continue
        x = _const_array(n.input[0], s)
        scale = _const_array(n.input[1], s)
        zp = _const_array(n.input[2], s) if len(n.input) > 2 and n.input[2] else None
        if x is None or scale is None:
            continue
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        xf = x.astype("float64")
        if zp is not None:
            xf = xf - (zp.astype("float64") if zp.ndim == 0 else
                       zp.astype("float64").reshape(_bshape(x.ndim, axis, zp.size)))
        sc = scale.astype("float64")
        if sc.ndim > 0 and x.ndim > 0:
            sc = sc.reshape(_bshape(x.ndim, axis, sc.size))
        value = (xf * sc).astype("float32")
        g.node.remove(n)
        g.initializer.append(numpy_helper.from_array(value, n.output[0]))
        folded += 1
    if folded:
        used = {i for node in g.node for i in node.input}
        keep = [t for t in g.initializer if t.name in used or t.name in
                {o.name for o in g.output}]
        del g.initializer[:]
        g.initializer.extend(keep)
    return folded


def _bshape(ndim: int, axis: int, size: int) -> tuple[int, ...]:
    shape = [1] * ndim
    shape[axis % ndim] = size
    return tuple(shape)


# --- builder calls that differ -------------------------------------------------------------

def use_strong_typing(profile: TrtProfile, precision: str, has_qdq: bool,
                      typing: str = "auto") -> bool:
    """Whether to create the network ``STRONGLY_TYPED``.

    ``auto``: always on 11.x (the only mode); for Q/DQ INT8 builds on 10.12 and later,
    where NVIDIA's "Explicit Quantization" page says to use explicit quantization with
    strong typing and no precision flags; otherwise weak typing (8.x has no strong typing).
    ``strong`` / ``weak`` force it where the version allows.

    Raises:
        TensorRTError: ``strong`` on 8.x, ``weak`` on 11.x, or an unknown mode.
    """
    if typing not in ("auto", "strong", "weak"):
        raise TensorRTError(f"unknown typing {typing!r}; use auto, strong or weak")
    if profile.strongly_typed:
        if typing == "weak":
            raise TensorRTError(f"TensorRT {profile.version_str} builds strongly typed "
                                "networks only; drop --typing weak")
        return True
    if typing == "strong":
        if not profile.strongly_typed_available:
            raise TensorRTError(f"TensorRT {profile.version_str} has no strongly typed "
                                "networks (10.0 and later); use --typing auto or weak")
        return True
    if typing == "weak":
        return False
    return profile.strongly_typed_recommended and precision == "int8" and has_qdq


def network_flags(trt: Any, profile: TrtProfile, strong: bool | None = None) -> int:
    """The ``create_network`` flags for this version (``strong`` defaults to the profile's
    mandatory strong typing)."""
    strong = profile.strongly_typed if strong is None else strong
    flags = 0
    if profile.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strong:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def check_platform(trt: Any, builder: Any, profile: TrtProfile, precision: str) -> str:
    """Refuse a precision the GPU cannot run fast, where this TensorRT can tell.

    Returns:
        A note for the log (what was checked, or why it could not be).

    Raises:
        TensorRTError: ``platform_has_fast_int8`` / ``fp16`` is false.
    """
    if precision == "fp32":
        return "fp32 needs no capability check"
    if not profile.capability_query:
        return (f"TensorRT {profile.version_str} cannot query fast {precision.upper()} "
                "support; the built engine's layer precisions are checked instead")
    attr = "platform_has_fast_int8" if precision == "int8" else "platform_has_fast_fp16"
    if not bool(getattr(builder, attr)):
        raise TensorRTError(f"this GPU has no fast {precision.upper()} ({attr} is False); "
                            f"refusing to build a {precision} engine that would silently run "
                            "in a higher precision")
    return f"{attr} is True"


def configure_precision(trt: Any, config: Any, profile: TrtProfile, precision: str, *,
                        strong: bool | None = None, float_islands: str = "fp16") -> list[str]:
    """Set the builder flags for ``precision``; returns the flags set (for the header).

    Strongly typed networks take no precision flags at all (TensorRT rejects them). For
    ``fp32`` the TF32 flag is cleared where it exists: TF32 matmuls are a precision
    reduction. For ``int8`` on a weakly typed network the ``FP16`` flag is set too unless
    ``float_islands="fp32"``: without it every layer TensorRT does not run in INT8 (the
    float heads, the float MatMuls of 8.x) runs in FP32. trtexec says the same when only
    INT8 is asked for ("FP32 and INT8 precisions have been specified - more performance
    might be enabled by additionally specifying --fp16 or --best", NVIDIA/TensorRT#2664).

    Raises:
        TensorRTError: an unknown ``float_islands``.
    """
    if float_islands not in ("fp16", "fp32"):
        raise TensorRTError(f"unknown float islands precision {float_islands!r}; use fp16 "
                            "or fp32")
    strong = profile.strongly_typed if strong is None else strong
    flags: list[str] = []
    if precision == "fp32":
        if hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        return flags
    if strong or not profile.precision_flags:
        return flags
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        flags.append("INT8")
        if float_islands == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
            flags.append("FP16")
    elif precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        flags.append("FP16")
    return flags


def set_workspace(trt: Any, config: Any, nbytes: int) -> None:
    """Limit the builder's workspace (``set_memory_pool_limit``, 8.4 and later)."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))


def make_cache_calibrator(trt: Any, profile: TrtProfile, cache: bytes) -> Any:
    """A legacy ``IInt8EntropyCalibrator2`` that only replays a calibration cache.

    TensorRT reads the cache through ``read_calibration_cache`` and, since every scale is
    there, never asks for a batch; ``get_batch`` returning ``None`` would end calibration
    with no data if it did.

    Raises:
        TensorRTError: this TensorRT has no calibrators.
    """
    if not profile.legacy_calibrator:
        raise TensorRTError(f"TensorRT {profile.version_str} has no INT8 calibrators")
    base = trt.IInt8EntropyCalibrator2

    class CacheCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._cache = bytes(cache)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            return None

        def read_calibration_cache(self) -> bytes:
            return self._cache

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return CacheCalibrator()


def attach_calibrator(trt: Any, config: Any, profile: TrtProfile, calibrator: Any,
                      opt_profile: Any) -> None:
    """Give ``config`` the legacy calibrator (and the calibration profile, dynamic shapes)."""
    if not profile.legacy_calibrator:
        raise TensorRTError(f"TensorRT {profile.version_str} has no INT8 calibrators")
    config.int8_calibrator = calibrator
    config.set_calibration_profile(opt_profile)


def parser_errors(parser: Any) -> list[str]:
    """The ONNX parser's errors, one line each, with the node where the version says it."""
    out = []
    for i in range(int(parser.num_errors)):
        e = parser.get_error(i)
        where = []
        if hasattr(e, "node_name") and e.node_name():
            where.append(f"node {e.node_name()!r}")
        elif hasattr(e, "node") and int(e.node()) >= 0:
            where.append(f"node #{e.node()}")
        if hasattr(e, "node_operator") and e.node_operator():
            where.append(f"op {e.node_operator()}")
        out.append(f"{e.desc()}" + (f" ({', '.join(where)})" if where else ""))
    return out


# --- what the built engine really computes in -----------------------------------------------

@dataclass(frozen=True)
class LayerInfo:
    """One engine layer from the inspector: its name, type and I/O data types."""

    name: str
    layer_type: str
    dtypes: frozenset[str]


_DTYPE_WORDS = (("int8", ("int8",)), ("fp16", ("fp16", "half")), ("fp32", ("fp32", "float")),
                ("int32", ("int32",)), ("bool", ("bool",)), ("int64", ("int64",)))


def _dtype_of(desc: str) -> str:
    d = desc.lower()
    for name, words in _DTYPE_WORDS:
        if any(w in d for w in words):
            return name
    return "unknown"


def parse_inspector_json(text: str, profile: TrtProfile) -> list[LayerInfo]:
    """Layers from ``EngineInspector.get_engine_information(JSON)``.

    Handles both schemas: ``"Format/Datatype": "Row major linear Int8 format"`` (up to
    10.x) and separate ``"Format"`` / ``"DataType"`` (11.x). Needs the engine built with
    ``ProfilingVerbosity.DETAILED``; with less, layers are bare names and carry no types.

    Raises:
        TensorRTError: the text is not the inspector's JSON.
    """
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise TensorRTError(f"engine inspector output is not JSON ({e})") from None
    layers = d.get("Layers") if isinstance(d, dict) else None
    if not isinstance(layers, list):
        raise TensorRTError("engine inspector output has no 'Layers' list")
    out = []
    for lay in layers:
        if isinstance(lay, str):  # LAYER_NAMES_ONLY verbosity
            out.append(LayerInfo(lay, "", frozenset()))
            continue
        types = set()
        for t in list(lay.get("Inputs", [])) + list(lay.get("Outputs", [])):
            if "DataType" in t:
                types.add(_dtype_of(str(t["DataType"])))
            elif "Format/Datatype" in t:
                types.add(_dtype_of(str(t["Format/Datatype"])))
        out.append(LayerInfo(str(lay.get("Name", "")), str(lay.get("LayerType", "")),
                             frozenset(types)))
    return out


def inspect_engine(trt: Any, engine: Any, profile: TrtProfile) -> list[LayerInfo]:
    """The built engine's layers, through its engine inspector."""
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return parse_inspector_json(text, profile)


_NAME_SPLIT = re.compile(r"\s*(?:\+|\|\|)\s*")
_NAME_WRAP = re.compile(r"^(?:PWN|ForeignNode|Myelin)?\s*[\[({]?|[\])}]$")
# Layers TensorRT compiles as one opaque region (Myelin): named "{ForeignNode[first...last]}";
# their I/O types are the region's boundary, which says nothing about the precision inside.
_OPAQUE_WORDS = ("ForeignNode", "Myelin")
_QDQ_SUFFIXES = ("_quantize_scale_node", "_dequantize_scale_node")


def layer_tokens(name: str) -> set[str]:
    """The ONNX node names a TensorRT layer name is made of.

    TensorRT names a fused layer by joining its parts with ``" + "`` (e.g.
    ``layer3.5.conv1.weight + QuantizeLinear_342_quantize_scale_node + Conv_344 + Relu_346``
    in NVIDIA/TensorRT#1293), wraps pointwise fusions as ``PWN(a, b)``, and names the
    layers it makes from Q/DQ nodes ``<node>_quantize_scale_node``. Matching whole tokens,
    not substrings, keeps ``/conv1/Conv`` from matching ``/conv1/Conv_1``.
    """
    out = set()
    for part in _NAME_SPLIT.split(name.replace(",", " + ")):
        part = part.strip()
        while True:
            stripped = _NAME_WRAP.sub("", part).strip()
            if stripped == part:
                break
            part = stripped
        for suffix in _QDQ_SUFFIXES:
            if part.endswith(suffix):
                part = part[: -len(suffix)]
        if part:
            out.add(part)
    return out


def is_opaque(layer: LayerInfo) -> bool:
    """A Myelin region (``{ForeignNode[a...b]}``): its I/O types are its boundary's."""
    return any(w in layer.name or w in layer.layer_type for w in _OPAQUE_WORDS)


def precision_problems(layers: list[LayerInfo], precision: str,
                       quantized_nodes: Iterable[str] = (),
                       compute_nodes: Iterable[str] | None = None,
                       notes: list[str] | None = None) -> list[str]:
    """Where the engine does not compute in the precision asked for.

    * ``int8``: some *computing* layer (one made of an ONNX compute node, not only of
      Q/DQ nodes or reformats) must have INT8 I/O, and every quantized ONNX compute node
      found among a layer's name tokens (:func:`layer_tokens`) must sit in a layer with
      INT8 I/O. A node found in no layer name is not a problem: TensorRT may have fused
      it under another name. Opaque Myelin regions (:func:`is_opaque`) are left out: their
      I/O types are the region's boundary. When no computing layer is visible outside
      them, the precision cannot be verified: that is a note, not a problem, so that an
      engine TensorRT compiled as one region is not refused (and rebuilt at every start)
      for what the inspector cannot show; ``skelmtl selfcheck`` lists the layers and
      compares the answers with ONNX Runtime instead.
    * ``fp16``: some layer must run in FP16.
    * ``fp32``: no layer may run in FP16 or INT8.

    Args:
        layers: from :func:`inspect_engine`.
        precision: what was asked for.
        quantized_nodes: the ONNX nodes that must run INT8.
        compute_nodes: the names of the model's non-Q/DQ nodes (default: any layer
            counts as computing, the old and weaker rule).
        notes: receives what could not be verified.

    Returns:
        One message per problem; empty when the engine matches.
    """
    typed = [lay for lay in layers if lay.dtypes]
    if not typed:
        return ["the engine inspector gave no layer data types (build with "
                "ProfilingVerbosity.DETAILED); cannot verify the precision"]
    problems = []
    if precision == "int8":
        visible = [lay for lay in typed if not is_opaque(lay)]
        compute = set(compute_nodes) if compute_nodes is not None else None
        computing = [lay for lay in visible
                     if compute is None or layer_tokens(lay.name) & compute]
        if not computing and len(visible) < len(typed):
            if notes is not None:
                notes.append("TensorRT compiled the computing layers into opaque regions "
                             f"({', '.join(lay.name for lay in typed if is_opaque(lay))[:200]}); "
                             "their INT8 use cannot be verified from the engine inspector")
        elif not any("int8" in lay.dtypes for lay in computing):
            problems.append("no computing layer of the engine runs in INT8 (only quantize/"
                            "dequantize or reformat layers, if any)")
        for node in quantized_nodes:
            holders = [lay for lay in visible if node and node in layer_tokens(lay.name)]
            if holders and not any("int8" in lay.dtypes for lay in holders):
                problems.append(f"quantized node {node!r} runs in "
                                f"{'/'.join(sorted(holders[0].dtypes))}, not INT8 "
                                f"(layer {holders[0].name!r})")
    elif precision == "fp16":
        if not any("fp16" in lay.dtypes for lay in typed):
            if all(is_opaque(lay) for lay in typed) and notes is not None:
                notes.append("every layer is an opaque region; FP16 use cannot be verified")
            else:
                problems.append("no layer of the engine runs in FP16 (TensorRT chose FP32 "
                                "everywhere)")
    elif precision == "fp32":
        low = [lay.name for lay in typed if lay.dtypes & {"fp16", "int8"}
               and not is_opaque(lay)]
        if low:
            problems.append(f"layers run below FP32: {low[:5]}")
    return problems


def compute_node_names(model: Any) -> list[str]:
    """Names of the model's nodes that compute (not Q/DQ, not Constant)."""
    return [n.name or n.output[0] for n in model.graph.node
            if n.op_type not in _QDQ + ("Constant",)]


def open_timing_cache(config: Any, blob: bytes, source: str, log: Any) -> Any:
    """``config.create_timing_cache(blob)`` that never aborts the build.

    A corrupt or truncated blob makes the real bindings return ``None`` (the C++
    ``IBuilderConfig::createTimingCache`` returns a null pointer and logs an error; pybind11
    turns it into ``None``), and ``set_timing_cache(None, ...)`` then raises. Some
    versions raise instead. Either way the build starts from an empty cache and says so.

    Returns:
        An ``ITimingCache``.

    Raises:
        TensorRTError: not even an empty timing cache can be created.
    """
    cache = None
    if blob:
        try:
            cache = config.create_timing_cache(blob)
        except Exception as e:  # pybind11 raises RuntimeError/TypeError alike
            log(f"timing cache {source} is unreadable ({e}); starting from an empty one")
        else:
            if cache is None:
                log(f"timing cache {source} is corrupt (TensorRT could not read it); "
                    "starting from an empty one")
    if cache is None:
        cache = config.create_timing_cache(b"")
    if cache is None:
        raise TensorRTError("TensorRT cannot create an empty timing cache")
    return cache


# --- the legacy calibration cache (TensorRT's text format) ---------------------------------

CACHE_ALGORITHM = "EntropyCalibration2"


def encode_calibration_cache(scales: Mapping[str, float], trt_version: str,
                             algorithm: str = CACHE_ALGORITHM) -> bytes:
    """TensorRT's calibration cache text: ``TRT-<version>-<algorithm>`` then
    ``tensor: <big-endian IEEE-754 float32 scale in hex>`` per line.

    The scale is the INT8 step, ``amax / 127``. TensorRT refuses a cache whose header
    names another version or algorithm, so write it for the TensorRT that will read it.
    """
    lines = [f"TRT-{version_number(trt_version)}-{algorithm}"]
    for name in sorted(scales):
        s = float(scales[name])
        if not s > 0.0 or s != s:
            continue
        if ":" in name or "\n" in name:
            raise TensorRTError(f"tensor name {name!r} cannot be written to a calibration cache")
        lines.append(f"{name}: {struct.pack('>f', s).hex()}")
    return ("\n".join(lines) + "\n").encode("ascii")


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed calibration cache: version integer, algorithm, tensor -> scale."""

    version: int
    algorithm: str
    scales: dict[str, float]


def decode_calibration_cache(data: bytes, source: str = "calibration cache") -> CalibrationCache:
    """Inverse of :func:`encode_calibration_cache`.

    Raises:
        TensorRTError: not a TensorRT calibration cache.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise TensorRTError(f"{source}: not a TensorRT calibration cache (binary data)") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    m = re.match(r"^TRT-(\d+)-(\w+)$", lines[0].strip()) if lines else None
    if not m:
        raise TensorRTError(f"{source}: not a TensorRT calibration cache (first line "
                            f"{lines[0][:40] if lines else ''!r})")
    scales = {}
    for ln in lines[1:]:
        name, sep, hexval = ln.rpartition(":")
        try:
            scales[name.strip()] = struct.unpack(">f", bytes.fromhex(hexval.strip()))[0]
        except ValueError:
            raise TensorRTError(f"{source}: malformed line {ln!r}") from None
        if not sep:
            raise TensorRTError(f"{source}: malformed line {ln!r}")
    return CalibrationCache(int(m.group(1)), m.group(2), scales)


def check_calibration_cache(path: Path, profile: TrtProfile) -> bytes:
    """Read a cache for this TensorRT, refusing one written for another version/algorithm.

    Raises:
        TensorRTError: naming both versions and how to rewrite the cache.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TensorRTError(f"{path}: cannot read the calibration cache ({e.strerror})") from None
    cache = decode_calibration_cache(data, str(path))
    want = version_number(profile.version_str)
    if cache.version != want:
        raise TensorRTError(
            f"{path}: calibration cache written for TensorRT version {cache.version}, this is "
            f"{profile.version_str} ({want}), which ignores it; rewrite it with 'skelmtl "
            f"calibrate ... --trt-cache-version {profile.version_str}'")
    if cache.algorithm != CACHE_ALGORITHM:
        raise TensorRTError(f"{path}: calibration cache is for {cache.algorithm}; the builder "
                            f"uses {CACHE_ALGORITHM}")
    return data


__all__ = [
    "TensorRTError", "UnsupportedTensorRT", "TrtProfile", "Issue", "LayerInfo",
    "CalibrationCache", "parse_version", "version_number", "profile_for", "check_onnx",
    "raise_on_errors", "network_flags", "check_platform", "configure_precision",
    "set_workspace", "make_cache_calibrator", "attach_calibrator", "parser_errors",
    "parse_inspector_json", "inspect_engine", "precision_problems", "qdq_nodes",
    "quantized_compute_nodes", "encode_calibration_cache", "decode_calibration_cache",
    "check_calibration_cache", "CACHE_ALGORITHM", "fold_int32_dequantize",
    "use_strong_typing", "layer_tokens", "compute_node_names", "open_timing_cache",
    "is_opaque",
]
