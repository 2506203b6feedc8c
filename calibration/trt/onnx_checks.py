"""ONNX checks a TensorRT version needs before its parser sees the model.

:func:`check_onnx` lists what the version's parser or documentation rejects (opset,
operators, Einsum forms, Q/DQ parameters, precision against the model's types);
:func:`fold_int32_dequantize` turns quantized biases back into float ones; the node
helpers find the Q/DQ and compute nodes the post-build precision check looks for.
Imports onnx only inside functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from calibration.trt.versions import TensorRTError, TrtProfile


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



def compute_node_names(model: Any) -> list[str]:
    """Names of the model's nodes that compute (not Q/DQ, not Constant)."""
    return [n.name or n.output[0] for n in model.graph.node
            if n.op_type not in _QDQ + ("Constant",)]


__all__ = [
    "Issue", "onnx_summary", "qdq_nodes", "quantized_compute_nodes", "check_onnx",
    "raise_on_errors", "fold_int32_dequantize", "compute_node_names",
]
