"""FLOPs and parameters per window, counted from an ONNX graph, and the window copies of
the sweep (:func:`window_copy`).

FLOPs and parameters per window (:func:`count_onnx`) are counted from the FP32 ONNX
graph: multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul and Einsum nodes, with
every tensor's shape taken from one ONNX Runtime run; FLOPs = 2 x MACs; parameters =
elements of floating-point initializers (batch norm folded by the exporter).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.options import BenchError, _optional, _short
from edge.core.preprocess import PreprocessConfig

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

    from edge.core.metadata import META_KEY, ModelMeta

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
