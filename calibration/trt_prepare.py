"""The ONNX model TensorRT is handed: ``skelmtl calibrate``'s Q/DQ model, rewritten per version.

``skelmtl calibrate`` writes one Q/DQ model that ONNX Runtime runs on a CPU. Its Q/DQ
placement serves ONNX Runtime's integer kernels, not TensorRT's parser and fusions, so
``skelmtl build-engine`` prepares a copy for the TensorRT it runs on
(:func:`prepare_for_tensorrt`) and checks that copy against the rules of that version
(:func:`prepared_problems`) before parsing it. ``--save-prepared`` writes it for
inspection (Netron, ``polygraphy inspect model``).

What is rewritten, and the source for each rule:

* **int32 biases** are folded into float biases
  (:func:`calibration.trt.onnx_checks.fold_int32_dequantize`):
  onnx-tensorrt's ``docs/operators.md`` (8.5) lists ``DequantizeLinear`` for INT8 only.
* **Weights** (``weights="qdq"``): on TensorRT 8.x an int8 initializer feeding
  ``DequantizeLinear`` is replaced by its float value feeding a ``QuantizeLinear`` ->
  ``DequantizeLinear`` pair with the same scale, zero point and axis. TensorRT 8.x's
  parser quantizes weights itself from float constants (onnx-tensorrt 8.5
  ``QuantizeLinear``: "FP32, FP16" inputs); NVIDIA/TensorRT#2163 shows 8.4 failing on
  int8 weight initializers, and ONNX Runtime's quantizer has ``AddQDQPairToWeight`` for
  exactly this (NVIDIA ModelOpt sets it for TensorRT). Only TensorRT 10's documentation
  ("Explicit Quantization", "Quantized Weights") states that pre-quantized weights behind
  an ``IDequantizeLayer`` are accepted, so ``auto`` keeps int8 weights from 10.0 on.
* **MatMul** (``matmul="float"``): onnx-tensorrt 8.5's ``docs/operators.md`` lists
  ``MatMul`` with the types "FP32, FP16" (no INT8), while Conv and Gemm list INT8. On 8.x
  ``auto`` therefore dequantizes the MatMul's constant operand into a float initializer
  and feeds it the float activation (the Q/DQ pair in front of it is dropped where nothing
  else reads it); the MatMul then runs in FP16/FP32 and the precision check does not ask
  it to run in INT8. From 10.0 the operator table lists INT8 for MatMul.
* **Duplicate quantizers** are merged: ONNX Runtime quantizes a tensor read by two nodes
  twice, with scales that can differ by one ulp. TensorRT's Q/DQ fusion works per tensor
  (developer guide, "Q/DQ Layer-Placement Recommendations": one scale per tensor), and two
  quantizers keep one of them as a standalone layer. Pairs whose scales agree within
  :data:`DUPLICATE_RTOL` become one; pairs that really differ are left and reported.
* **Output quantization** (``placement="tensorrt"``): the same guide recommends
  quantizing the inputs of weighted operations and the residual input of an addition,
  and not the outputs of weighted operations: TensorRT fuses Conv (+ Add) + ReLU and
  quantizes where the next weighted layer's input Q/DQ says. A Q/DQ pair whose input
  comes from a computing node and whose every reader is an activation (ReLU, ...) is
  removed, and so is the main branch's pair in front of a residual ``Add`` (the residual
  input keeps its own); ``placement="as-calibrated"`` keeps the calibrated placement.

Which of these help on a given Jetson only a build there can tell (issue 14 items 2, 9,
10): the defaults follow NVIDIA's documentation, and ``skelmtl build-engine --weights
--matmul --qdq-placement`` choose otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from calibration.trt import onnx_checks
from calibration.trt.onnx_checks import fold_int32_dequantize, qdq_nodes
from calibration.trt.versions import TensorRTError, TrtProfile

LOG = logging.getLogger(__name__)

WEIGHT_MODES = ("auto", "qdq", "int8")
MATMUL_MODES = ("auto", "int8", "float")
PLACEMENTS = ("tensorrt", "as-calibrated")
# Two quantizers of one tensor whose scales agree this closely are the same quantizer
# written twice (ONNX Runtime computes each pair's scale separately; they differ by ulps).
DUPLICATE_RTOL = 1e-5
# Readers that make a Q/DQ pair "output quantization": TensorRT fuses these pointwise
# activations into the producing Conv/Gemm/Add, so a Q/DQ between them only splits it.
_ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid",
                          "HardSwish", "Elu", "Selu", "Softplus"})
_INTEGER_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13})  # uint8 int8 uint16 int16 int32 int64 uint32 uint64


@dataclass(frozen=True)
class PrepareOptions:
    """How to rewrite the Q/DQ model; ``auto`` resolves per TensorRT version.

    Attributes:
        weights: ``qdq`` (float weights -> Q -> DQ), ``int8`` (int8 initializers -> DQ)
            or ``auto`` (``qdq`` on 8.x, ``int8`` from 10).
        matmul: ``float`` (MatMul operands dequantized), ``int8`` (kept quantized) or
            ``auto`` (``float`` on 8.x, ``int8`` from 10).
        placement: ``tensorrt`` (NVIDIA's recommended placement) or ``as-calibrated``.
    """

    weights: str = "auto"
    matmul: str = "auto"
    placement: str = "tensorrt"

    def resolve(self, profile: TrtProfile) -> PrepareOptions:
        """The options with ``auto`` replaced by what ``profile``'s TensorRT documents.

        Raises:
            TensorRTError: an unknown mode.
        """
        for name, value, allowed in (("weights", self.weights, WEIGHT_MODES),
                                     ("matmul", self.matmul, MATMUL_MODES),
                                     ("placement", self.placement, PLACEMENTS)):
            if value not in allowed:
                raise TensorRTError(f"unknown {name} mode {value!r}; use one of {allowed}")
        weights = self.weights if self.weights != "auto" else (
            "int8" if profile.quantized_weights else "qdq")
        matmul = self.matmul if self.matmul != "auto" else (
            "int8" if profile.int8_matmul else "float")
        return PrepareOptions(weights, matmul, self.placement)


@dataclass
class PrepareReport:
    """What :func:`prepare_for_tensorrt` changed, for the build log and the header."""

    options: PrepareOptions
    folded_biases: int = 0
    merged_quantizers: list[str] = field(default_factory=list)
    kept_duplicates: list[str] = field(default_factory=list)
    removed_output_qdq: list[str] = field(default_factory=list)
    float_matmuls: list[str] = field(default_factory=list)
    requantized_weights: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (counts and options)."""
        o = self.options
        return {"weights": o.weights, "matmul": o.matmul, "placement": o.placement,
                "folded_biases": self.folded_biases,
                "merged_quantizers": len(self.merged_quantizers),
                "removed_output_qdq": len(self.removed_output_qdq),
                "float_matmuls": len(self.float_matmuls),
                "requantized_weights": len(self.requantized_weights)}

    def lines(self) -> list[str]:
        """One log line per kind of change."""
        o = self.options
        out = [f"prepared ONNX: weights {o.weights}, MatMul {o.matmul}, Q/DQ placement "
               f"{o.placement}"]
        if self.folded_biases:
            out.append(f"folded {self.folded_biases} int32 bias dequantizations into float "
                       "biases (TensorRT dequantizes 8-bit types only)")
        if self.merged_quantizers:
            out.append(f"merged {len(self.merged_quantizers)} duplicate quantizers (one "
                       f"scale per tensor): {', '.join(self.merged_quantizers)}")
        for d in self.kept_duplicates:
            out.append(f"kept two quantizers with different scales on tensor {d!r}")
        if self.removed_output_qdq:
            out.append(f"removed {len(self.removed_output_qdq)} output Q/DQ pairs in front of "
                       "activations and on residual additions' main branch (TensorRT "
                       "fuses them into the producing layer)")
        if self.float_matmuls:
            out.append(f"{len(self.float_matmuls)} MatMul nodes run in float (this TensorRT "
                       f"has no INT8 MatMul): {', '.join(self.float_matmuls)}")
        if self.requantized_weights:
            out.append(f"{len(self.requantized_weights)} int8 weights turned into float "
                       "weights -> QuantizeLinear -> DequantizeLinear")
        return out


class _Graph:
    """Producer/consumer maps of an ONNX graph, rebuilt after each change."""

    def __init__(self, model: Any) -> None:
        g = model.graph
        self.g = g
        self.inits = {t.name: t for t in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in g.output}

    def const(self, name: str) -> Any:
        """The numpy value of an initializer or Constant output, else None."""
        from onnx import numpy_helper

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        n = self.producer.get(name)
        if n is not None and n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None

    def is_const(self, name: str) -> bool:
        return name in self.inits or (name in self.producer
                                      and self.producer[name].op_type == "Constant")


def _axis(node: Any) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _rename_input(g: Any, old: str, new: str) -> None:
    for n in g.node:
        for k, i in enumerate(n.input):
            if i == old:
                n.input[k] = new


def _drop_unused_initializers(model: Any) -> None:
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def merge_duplicate_quantizers(model: Any, rtol: float = DUPLICATE_RTOL) -> tuple[list[str],
                                                                                  list[str]]:
    """Merge QuantizeLinear nodes of one tensor whose scales and zero points agree.

    The duplicate's DequantizeLinear readers are pointed at the kept pair's
    DequantizeLinear output, and the duplicate Q and its DQs are removed.

    Returns:
        (the tensors whose quantizers were merged, those left with differing scales).
    """
    import numpy as np

    merged: list[str] = []
    kept: list[str] = []
    while True:
        gr = _Graph(model)
        by_input: dict[str, list[Any]] = {}
        for n in gr.g.node:
            if n.op_type == "QuantizeLinear":
                by_input.setdefault(n.input[0], []).append(n)
        change = None
        for tensor, qs in by_input.items():
            if len(qs) < 2 or tensor in kept:
                continue
            first = qs[0]
            s0, z0 = gr.const(first.input[1]), gr.const(first.input[2]) if len(
                first.input) > 2 and first.input[2] else None
            for other in qs[1:]:
                s1 = gr.const(other.input[1])
                z1 = gr.const(other.input[2]) if len(other.input) > 2 and other.input[2] else None
                same_zp = (z0 is None and z1 is None) or (
                    z0 is not None and z1 is not None and z0.dtype == z1.dtype
                    and np.array_equal(z0, z1))
                if (s0 is not None and s1 is not None and s0.shape == s1.shape and same_zp
                        and _axis(first) == _axis(other)
                        and np.allclose(s0, s1, rtol=rtol, atol=0)):
                    change = (tensor, first, other)
                    break
            if change:
                break
            kept.append(tensor)
        if change is None:
            return merged, kept
        tensor, first, other = change
        keep_dq = next((c for c in gr.consumers.get(first.output[0], [])
                        if c.op_type == "DequantizeLinear"), None)
        if keep_dq is None:
            kept.append(tensor)
            continue
        for dq in list(gr.consumers.get(other.output[0], [])):
            if dq.op_type == "DequantizeLinear" and dq.output[0] not in gr.outputs:
                _rename_input(gr.g, dq.output[0], keep_dq.output[0])
                gr.g.node.remove(dq)
            else:
                _rename_input(gr.g, other.output[0], first.output[0])
        gr.g.node.remove(other)
        merged.append(tensor)
        _drop_unused_initializers(model)


def remove_output_qdq(model: Any) -> list[str]:
    """Remove Q/DQ pairs on a computed tensor whose every reader is an activation.

    Returns:
        The tensors whose Q/DQ pair was removed.
    """
    removed: list[str] = []
    gr = _Graph(model)
    for q in list(gr.g.node):
        if q.op_type != "QuantizeLinear":
            continue
        src = q.input[0]
        prod = gr.producer.get(src)
        if prod is None or prod.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue  # a graph input or a constant: input quantization, keep it
        readers = gr.consumers.get(q.output[0], [])
        if not readers or any(r.op_type != "DequantizeLinear" for r in readers):
            continue
        if any(r.output[0] in gr.outputs for r in readers):
            continue
        final = [c for r in readers for c in gr.consumers.get(r.output[0], [])]
        if not final or any(c.op_type not in _ACTIVATIONS for c in final):
            continue
        for r in readers:
            _rename_input(gr.g, r.output[0], src)
            gr.g.node.remove(r)
        gr.g.node.remove(q)
        removed.append(src)
        gr = _Graph(model)
    _drop_unused_initializers(model)
    return removed


def _depths(gr: _Graph) -> dict[str, int]:
    """Longest path (in nodes) from a graph input to each node output."""
    depth: dict[str, int] = {}
    for n in gr.g.node:  # ONNX graphs are topologically sorted
        d = max((depth.get(i, 0) for i in n.input if i), default=0)
        for o in n.output:
            depth[o] = d + 1
    return depth


def remove_add_main_branch_qdq(model: Any) -> list[str]:
    """For an ``Add`` whose two inputs are both dequantized outputs of weighted layers,
    remove the Q/DQ pair of the main branch (the deeper one) and keep the residual's.

    NVIDIA's placement recommendations quantize the *residual* input of an element-wise
    addition, so that TensorRT fuses the main branch's convolution with the addition
    (and a following ReLU) into one INT8 kernel; a Q/DQ on the main branch's output
    stands between them. ModelOpt does the same (``modelopt.onnx.quantization.qdq_graph``:
    ``build_non_residual_input_map``, ``remove_partial_input_qdq``).

    Returns:
        The main-branch tensors whose Q/DQ pair was removed.
    """
    removed: list[str] = []
    gr = _Graph(model)
    depth = _depths(gr)
    for add in [n for n in gr.g.node if n.op_type == "Add" and len(n.input) == 2]:
        sides: list[tuple[int, Any, Any]] = []
        for name in add.input:
            dq: Any = gr.producer.get(name)
            q: Any = gr.producer.get(dq.input[0]) if dq is not None and dq.op_type == \
                "DequantizeLinear" else None
            src: Any = gr.producer.get(q.input[0]) if q is not None and q.op_type == \
                "QuantizeLinear" else None
            if src is None or src.op_type not in ("Conv", "Gemm", "MatMul", "ConvTranspose"):
                break
            sides.append((depth.get(q.input[0], 0), dq, q))
        if len(sides) != 2 or sides[0][0] == sides[1][0]:
            continue  # not two weighted branches, or no telling which is the residual
        _, dq, q = max(sides, key=lambda t: t[0])
        if len(gr.consumers.get(dq.output[0], [])) != 1 or \
                len(gr.consumers.get(q.output[0], [])) != 1:
            continue  # the quantized tensor has other readers that need it
        _rename_input(gr.g, dq.output[0], q.input[0])
        gr.g.node.remove(dq)
        gr.g.node.remove(q)
        removed.append(q.input[0])
        gr = _Graph(model)
        depth = _depths(gr)
    _drop_unused_initializers(model)
    return removed


def _dequantized(gr: _Graph, dq: Any) -> Any:
    """The float32 value of a DequantizeLinear of a constant (per-tensor or per-axis)."""
    import numpy as np

    x = gr.const(dq.input[0])
    scale = gr.const(dq.input[1])
    zp = gr.const(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
    xf = x.astype(np.float64)
    axis = _axis(dq)
    shape = [1] * x.ndim
    if scale.ndim > 0 and scale.size > 1:
        shape[axis % x.ndim] = scale.size
    if zp is not None:
        xf = xf - zp.astype(np.float64).reshape(shape if zp.size > 1 else ())
    return (xf * scale.astype(np.float64).reshape(shape if scale.size > 1 else ())
            ).astype(np.float32)


def float_matmuls(model: Any) -> list[str]:
    """Take MatMul nodes out of INT8: constant operands dequantized to float initializers,
    activation operands read before their Q/DQ pair.

    Returns:
        The MatMul nodes changed.
    """
    from onnx import numpy_helper

    changed: list[str] = []
    gr = _Graph(model)
    for mm in [n for n in gr.g.node if n.op_type == "MatMul"]:
        touched = False
        for k, name in enumerate(list(mm.input)):
            dq = gr.producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            if gr.is_const(dq.input[0]):
                value = _dequantized(gr, dq)
                fname = f"{dq.input[0]}_float"
                if fname not in gr.inits:
                    gr.g.initializer.append(numpy_helper.from_array(value, fname))
                mm.input[k] = fname
            else:
                q = gr.producer.get(dq.input[0])
                if q is None or q.op_type != "QuantizeLinear":
                    continue
                mm.input[k] = q.input[0]
            touched = True
            gr = _Graph(model)
        if touched:
            changed.append(mm.name or mm.output[0])
    # DQ and Q nodes nobody reads any more
    while True:
        gr = _Graph(model)
        dead = [n for n in gr.g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not gr.consumers.get(n.output[0]) and n.output[0] not in gr.outputs]
        if not dead:
            break
        for n in dead:
            gr.g.node.remove(n)
    _drop_unused_initializers(model)
    return changed


def requantize_weights(model: Any) -> list[str]:
    """Integer weight initializers feeding DequantizeLinear -> float weight ->
    QuantizeLinear -> DequantizeLinear (same scale, zero point and axis).

    TensorRT re-quantizes the float weight with that scale, so the INT8 values it keeps
    equal the calibrated ones (float32 ``q * s / s`` rounds back to ``q`` for |q| <= 127).

    Returns:
        The weight tensors rewritten.
    """
    from onnx import helper, numpy_helper

    done: list[str] = []
    gr = _Graph(model)
    for dq in [n for n in gr.g.node if n.op_type == "DequantizeLinear"]:
        src = dq.input[0]
        if not gr.is_const(src):
            continue
        value = gr.const(src)
        if value.dtype.kind not in "iu":
            continue
        fname = f"{src}_float"
        qout = f"{src}_requantized"
        gr.g.initializer.append(numpy_helper.from_array(_dequantized(gr, dq), fname))
        attrs = {a.name: helper.get_attribute_value(a) for a in dq.attribute}
        q = helper.make_node("QuantizeLinear", [fname, *dq.input[1:]], [qout],
                             name=f"{src}_QuantizeLinear", **attrs)
        idx = list(gr.g.node).index(dq)
        gr.g.node.insert(idx, q)
        dq.input[0] = qout
        done.append(src)
    _drop_unused_initializers(model)
    return done


def prepare_for_tensorrt(model: Any, profile: TrtProfile,
                         options: PrepareOptions | None = None) -> PrepareReport:
    """Rewrite ``model`` (in place) into what ``profile``'s TensorRT should parse.

    A float model (no Q/DQ) is left as it is, apart from nothing: every pass below only
    touches Q/DQ nodes.

    Returns:
        What was changed, with the resolved options.
    """
    opts = (options or PrepareOptions()).resolve(profile)
    report = PrepareReport(opts)
    report.folded_biases = fold_int32_dequantize(model)
    if not qdq_nodes(model):
        return report
    report.merged_quantizers, report.kept_duplicates = merge_duplicate_quantizers(model)
    if opts.placement == "tensorrt":
        report.removed_output_qdq = remove_output_qdq(model)
        report.removed_output_qdq += remove_add_main_branch_qdq(model)
    if opts.matmul == "float":
        report.float_matmuls = float_matmuls(model)
    if opts.weights == "qdq":
        report.requantized_weights = requantize_weights(model)
    return report


def _weight_axis(consumer: Any, input_index: int, ndim: int) -> int | None:
    """The output-channel axis of a weight tensor for per-channel quantization."""
    if consumer.op_type in ("Conv",):
        return 0
    if consumer.op_type == "ConvTranspose":
        return 1
    if consumer.op_type == "Gemm":
        trans_b = next((a.i for a in consumer.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if consumer.op_type == "MatMul":
        return ndim - 1 if input_index == 1 else ndim - 2
    return None


def prepared_problems(model: Any, profile: TrtProfile,
                      options: PrepareOptions | None = None) -> list[str]:
    """The rules ``profile``'s parser and documentation state, checked on a prepared model.

    * no integer weight feeds a DequantizeLinear on 8.x (and none on 10+ when the
      options asked for ``qdq`` weights);
    * no tensor has two quantizers;
    * every zero point is int8 and 0 (symmetric), every scale positive and finite;
    * per-channel scales sit on the weight's output-channel axis with one scale per
      channel;
    * no MatMul reads a dequantized tensor where MatMul has no INT8 (8.x, or ``matmul=float``);
    * only operators and domains this TensorRT parses.

    Returns:
        One message per broken rule (empty: the model follows them).
    """
    import numpy as np

    opts = (options or PrepareOptions()).resolve(profile)
    gr = _Graph(model)
    out: list[str] = []
    v = profile.version_str
    quantizers: dict[str, list[str]] = {}
    for n in gr.g.node:
        if n.domain not in ("", "ai.onnx"):
            out.append(f"{n.op_type} {n.name!r}: domain {n.domain!r} is not parsed by TensorRT")
        elif n.op_type in profile.unsupported_ops:
            out.append(f"{n.op_type} {n.name!r}: not supported by TensorRT {v}")
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if n.op_type == "QuantizeLinear":
            quantizers.setdefault(n.input[0], []).append(n.name)
        scale = gr.const(n.input[1])
        zp = gr.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if scale is None:
            out.append(f"{n.op_type} {n.name!r}: scale is not a constant")
        elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            out.append(f"{n.op_type} {n.name!r}: scales must be positive and finite")
        if zp is not None and (zp.dtype != np.int8 or np.any(zp != 0)):
            out.append(f"{n.op_type} {n.name!r}: zero point must be int8 0 (symmetric), got "
                       f"{zp.dtype} {np.unique(zp)[:3].tolist()}")
        if n.op_type == "DequantizeLinear" and gr.is_const(n.input[0]):
            w = gr.const(n.input[0])
            if w.dtype.kind in "iu" and (profile.family.startswith("8") or opts.weights == "qdq"):
                out.append(f"DequantizeLinear {n.name!r}: integer weight {n.input[0]!r} feeds "
                           f"it directly; TensorRT {v} wants float weights -> QuantizeLinear "
                           "-> DequantizeLinear")
        if scale is not None and scale.size > 1:
            src = n.input[0]
            value = gr.const(src)
            if value is None and n.op_type == "DequantizeLinear":
                q = gr.producer.get(src)
                value = gr.const(q.input[0]) if q is not None and q.op_type == \
                    "QuantizeLinear" else None
            dq_outs = [n.output[0]] if n.op_type == "DequantizeLinear" else [
                d.output[0] for d in gr.consumers.get(n.output[0], [])]
            readers = [(c, list(c.input).index(o)) for o in dq_outs
                       for c in gr.consumers.get(o, [])]
            if value is None:
                out.append(f"{n.op_type} {n.name!r}: per-channel scales on an activation "
                           "(TensorRT quantizes activations per tensor)")
            else:
                axis = _axis(n) % value.ndim
                if value.shape[axis] != scale.size:
                    out.append(f"{n.op_type} {n.name!r}: {scale.size} scales for axis {axis} "
                               f"of size {value.shape[axis]}")
                for r, k in readers:
                    want = _weight_axis(r, k, value.ndim)
                    if want is not None and want != axis:
                        out.append(f"{n.op_type} {n.name!r}: per-channel axis {axis}, but "
                                   f"{r.op_type} {r.name!r} has its output channels on axis "
                                   f"{want}")
    for tensor, names in quantizers.items():
        if len(names) > 1:
            out.append(f"tensor {tensor!r} has {len(names)} quantizers ({', '.join(names)}); "
                       "TensorRT wants one scale per tensor")
    if opts.matmul == "float":
        for n in gr.g.node:
            if n.op_type == "MatMul" and any(
                    gr.producer.get(i) is not None
                    and gr.producer[i].op_type == "DequantizeLinear" for i in n.input):
                out.append(f"MatMul {n.name!r} reads a dequantized tensor; TensorRT {v} has "
                           "no INT8 MatMul (onnx-tensorrt operators.md: FP32, FP16)")
    return out


def quantized_compute_nodes(model: Any, matmul_int8: bool) -> list[str]:
    """The compute nodes a prepared model asks TensorRT to run in INT8: Conv, Gemm and
    ConvTranspose with a dequantized weight, and MatMul only when ``matmul_int8`` (the
    version has INT8 MatMul and the options kept it quantized)."""
    kinds: Iterable[str] = ("Conv", "Gemm", "ConvTranspose") + (
        ("MatMul",) if matmul_int8 else ())
    return [n for n in onnx_checks.quantized_compute_nodes(model)
            if n in _names_of(model, kinds)]


def _names_of(model: Any, kinds: Iterable[str]) -> set[str]:
    kinds = set(kinds)
    return {n.name for n in model.graph.node if n.op_type in kinds}


__all__ = ["PrepareOptions", "PrepareReport", "prepare_for_tensorrt", "prepared_problems",
           "merge_duplicate_quantizers", "remove_output_qdq", "remove_add_main_branch_qdq",
           "float_matmuls",
           "requantize_weights", "quantized_compute_nodes", "WEIGHT_MODES", "MATMUL_MODES",
           "PLACEMENTS", "DUPLICATE_RTOL"]
