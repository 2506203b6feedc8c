"""Load-time rewrite of a Q/DQ model for ONNX Runtime's CPU provider: Relu folded into the
quantisation of its output.

Usage: data, folded = fold_relu_for_cpu(Path("model.int8.onnx").read_bytes())

Why: ``skelmtl calibrate`` writes one Q/DQ model for both targets, with *symmetric* INT8
activations (zero point 0) because TensorRT accepts nothing else. With a zero point of 0
the quantiser cannot drop a Relu (negative values are representable), so ONNX Runtime keeps
every Relu as a float kernel between a DequantizeLinear and a QuantizeLinear, and the
pattern ``Q -> DQ -> Relu -> Q -> DQ`` costs five kernels where one would do (issue 4: the
INT8 graph had 67 kernels against FP32's 33, and INT8 took 0.73-0.82x FP32 time at batch 1).

The rewrite, applied only when the session runs on the CPU provider (TensorRT, through
ONNX Runtime's TensorRT provider or natively, reads the file unchanged):

``[Q1 -> DQ1 ->] Relu -> Q2 (int8, zp 0, scale s) -> DQ2 -> ...`` becomes
``Q (uint8, zp 0, scale s) -> DQ (uint8, zp 0, scale s) -> ...``

Quantising to uint8 with zero point 0 clamps negatives to 0, which *is* the Relu. Values
that the int8 grid held (0..127 steps of ``s``) map to the same steps, so the result is the
original one except that (a) the intermediate rounding by ``Q1``/``DQ1`` is skipped (one
rounding fewer) and (b) values above ``127 s`` are kept up to ``255 s`` instead of being
clipped. ONNX Runtime then fuses the producer (Conv, Add) with the new Q and drops the Relu.
uint8 is also what ONNX Runtime's x86 kernels prefer for activations.

``onnx`` is needed for the rewrite; without it the model loads unchanged (and a message
says so once).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Quantisation scales of one tensor that ORT's quantiser wrote once per consumer differ in
# the last bits (float32 rounding); larger differences mean different tensors.
_SCALE_RTOL = 1e-5


def fold_relu_for_cpu(data: bytes) -> tuple[bytes, int]:
    """Fold each ``Relu -> QuantizeLinear`` of a Q/DQ model into a uint8 quantisation.

    Args:
        data: a serialised ONNX model (anything else is returned as is).

    Returns:
        ``(model bytes, number of Relus folded)``; the input bytes when nothing was folded,
        the bytes are not an ONNX model, or ``onnx`` is not installed.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        log.info("onnx is not installed: the Q/DQ model runs without the CPU Relu fold "
                 "(pip install onnx for about a third fewer INT8 kernels)")
        return data, 0
    try:
        model = onnx.load_from_string(data)
    except Exception:  # not ONNX: left to ONNX Runtime, whose error names the file
        return data, 0
    if not any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        return data, 0
    folded = _fold(model, onnx, numpy_helper)
    return (model.SerializeToString(), folded) if folded else (data, 0)


def _fold(model: Any, onnx: Any, numpy_helper: Any) -> int:
    g = model.graph
    init = {i.name: i for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    cons: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}

    def const(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(init[name]) if name in init else None

    def only_consumer(tensor: str, node: Any) -> bool:
        return tensor not in graph_outputs and [id(c) for c in cons.get(tensor, [])] == [id(node)]

    remove: list[Any] = []
    folded = 0
    for relu in list(g.node):
        if relu.op_type != "Relu" or relu.output[0] in graph_outputs:
            continue
        qs = cons.get(relu.output[0], [])
        if not qs or any(q.op_type != "QuantizeLinear" or len(q.input) < 3 for q in qs):
            continue
        scales = [const(q.input[1]) for q in qs]
        zps = [const(q.input[2]) for q in qs]
        if any(s is None or s.size != 1 for s in scales) or any(
                z is None or z.dtype != np.int8 or z.size != 1 or int(z) != 0 for z in zps):
            continue
        sv = [float(s) for s in scales]  # type: ignore[arg-type]
        if max(sv) - min(sv) > _SCALE_RTOL * max(sv):
            continue
        dqs = [d for q in qs for d in cons.get(q.output[0], [])]
        if any(q.output[0] in graph_outputs for q in qs) or any(
                d.op_type != "DequantizeLinear" for d in dqs):
            continue
        # The Relu's input; skip a Q1 -> DQ1 pair in front of it (a second rounding).
        src = relu.input[0]
        dq1 = prod.get(src)
        if dq1 is not None and dq1.op_type == "DequantizeLinear" and only_consumer(src, relu):
            q1 = prod.get(dq1.input[0])
            if q1 is not None and q1.op_type == "QuantizeLinear" and only_consumer(
                    dq1.input[0], dq1):
                src = q1.input[0]
                remove += [dq1, q1]
        keep = qs[0]
        zp = keep.output[0] + "_relu_u8_zero_point"
        g.initializer.append(numpy_helper.from_array(np.array(0, np.uint8), zp))
        keep.input[0], keep.input[2] = src, zp
        for d in dqs:
            d.input[0], d.input[1], d.input[2] = keep.output[0], keep.input[1], zp
        remove += [relu] + qs[1:]
        folded += 1
    for n in remove:
        g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for i in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(i)
    return folded
