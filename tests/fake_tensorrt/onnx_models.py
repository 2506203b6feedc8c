"""Tiny skelmtl-shaped ONNX models built with onnx.helper (no torch), for builder tests.

``tiny_model`` mimics an exported network: input ``(N, C', T, 75)``, Conv + Relu,
global average pooling, one Gemm head per task and a task head, with our metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.core.metadata import INPUT_NAME, META_KEY, ModelMeta
from edge.core.preprocess import PreprocessConfig

TASKS = ("action", "gesture")
LABELS = {"action": ("raise", "sweep", "push"), "gesture": ("curl_index", "curl_middle",
                                                            "curl_pinky")}


def tiny_meta(window: int = 8) -> ModelMeta:
    return ModelMeta(preprocess=PreprocessConfig(window=window), tasks=TASKS, labels=LABELS,
                     model_name="tiny", model_args={"hidden": 8})


def tiny_model(meta: ModelMeta | None = None, *, hidden: int = 8, seed: int = 0,
               opset: int = 17, extra_nodes: list[onnx.NodeProto] | None = None,
               residual: bool = False) -> onnx.ModelProto:
    """The tiny network; ``residual`` adds a ResNet/ST-GCN style fork: the first block's
    output feeds both the second convolution and a 1x1 residual convolution, summed."""
    meta = meta or tiny_meta()
    rng = np.random.default_rng(seed)
    c, t = meta.preprocess.channels, meta.preprocess.window
    init = [numpy_helper.from_array(rng.normal(0, 0.3, (hidden, c, 3, 1)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(0, 0.1, (hidden,)).astype(np.float32), "b1"),
            numpy_helper.from_array(rng.normal(0, 0.3, (hidden, hidden, 1, 1)).astype(np.float32), "w2"),
            numpy_helper.from_array(rng.normal(0, 0.1, (hidden,)).astype(np.float32), "b2")]
    nodes = [helper.make_node("Conv", [INPUT_NAME, "w1", "b1"], ["c1"], name="/conv1/Conv",
                              pads=[1, 0, 1, 0]),
             helper.make_node("Relu", ["c1"], ["r1"], name="/relu1/Relu"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="/conv2/Conv")]
    if residual:
        init += [numpy_helper.from_array(rng.normal(0, 0.3, (hidden, hidden, 1, 1)).astype(
            np.float32), "wr"), numpy_helper.from_array(np.zeros(hidden, np.float32), "br")]
        nodes += [helper.make_node("Conv", ["r1", "wr", "br"], ["cr"], name="/res/Conv"),
                  helper.make_node("Add", ["c2", "cr"], ["c2r"], name="/Add"),
                  helper.make_node("Relu", ["c2r"], ["r2"], name="/relu2/Relu")]
    else:
        nodes.append(helper.make_node("Relu", ["c2"], ["r2"], name="/relu2/Relu"))
    nodes += [helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="/pool/GlobalAveragePool"),
              helper.make_node("Flatten", ["p"], ["f"], name="/Flatten", axis=1)]
    outputs = []
    heads = [(f"logits_{task}", len(meta.labels[task])) for task in meta.graph_tasks]
    if meta.has_task_head:
        heads.append(("task_logits", len(meta.tasks)))
    for name, k in heads:
        init += [numpy_helper.from_array(rng.normal(0, 0.3, (k, hidden)).astype(np.float32), f"{name}.W"),
                 numpy_helper.from_array(rng.normal(0, 0.1, (k,)).astype(np.float32), f"{name}.b")]
        nodes.append(helper.make_node("Gemm", ["f", f"{name}.W", f"{name}.b"], [name],
                                      name=f"/{name}/Gemm", transB=1))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", k]))
    nodes += extra_nodes or []
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        INPUT_NAME, TensorProto.FLOAT, ["N", c, t, 75])], outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="skelmtl-tests")
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, meta.to_json()
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def windows(meta: ModelMeta, n: int, seed: int = 1) -> np.ndarray:
    """Random but structured calibration windows ``(n, C', T, 75)``."""
    rng = np.random.default_rng(seed)
    p = meta.preprocess
    return rng.normal(0, 1, (n, p.channels, p.window, 75)).astype(np.float32)


def activation_scales(model: onnx.ModelProto, x: np.ndarray) -> dict[str, float]:
    """Symmetric INT8 steps (``max |t| / 127``, min-max calibration) of every float tensor
    a node of ``model`` computes, and of its input, over the windows ``x`` (ONNX Runtime)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for t in n.output:
            if t not in known:
                m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, {INPUT_NAME: x})))
    values[INPUT_NAME] = x
    return {k: float(np.abs(v).max()) / 127 for k, v in values.items()}


def qdq_model(model: onnx.ModelProto, x: np.ndarray, *, quantize_heads: bool = True
              ) -> tuple[onnx.ModelProto, dict[str, float]]:
    """:func:`tiny_model` in the Q/DQ form ``skelmtl calibrate`` writes for it, without a
    quantizer (onnxruntime >= 1.27 is not on a Jetson nor in ``make test-oldest``).

    The layout and names are ONNX Runtime's static quantizer's in QDQ format (symmetric,
    min-max over ``x``): per-channel int8 weights behind ``DequantizeLinear`` (axis 0),
    int32 biases with ``input scale x weight scale``, a QuantizeLinear/DequantizeLinear
    pair on the input and on each Conv's output and input, and, with ``quantize_heads``, on
    the heads' shared input and their outputs (one pair, where ONNX Runtime writes one per
    head). Returns the model and the activation scales (for a calibration cache).
    """
    scales = activation_scales(model, x)
    src = onnx.ModelProto()
    src.CopyFrom(model)  # the Relus are rewired below: leave the caller's model alone
    model = src
    g = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    kinds = ("Conv", "Gemm") if quantize_heads else ("Conv",)
    quantized = [n for n in g.node if n.op_type in kinds]
    new_init: list[onnx.TensorProto] = []
    pre: list[onnx.NodeProto] = []
    pairs: dict[str, str] = {}  # tensor -> its dequantized name

    def act(tensor: str) -> str:
        if tensor not in pairs:
            s, z = f"{tensor}_scale", f"{tensor}_zero_point"
            new_init.extend([numpy_helper.from_array(np.array(scales[tensor], np.float32), s),
                             numpy_helper.from_array(np.array(0, np.int8), z)])
            pre.extend([
                helper.make_node("QuantizeLinear", [tensor, s, z], [f"{tensor}_QuantizeLinear_Output"],
                                 name=f"{tensor}_QuantizeLinear"),
                helper.make_node("DequantizeLinear", [f"{tensor}_QuantizeLinear_Output", s, z],
                                 [f"{tensor}_DequantizeLinear_Output"],
                                 name=f"{tensor}_DequantizeLinear")])
            pairs[tensor] = f"{tensor}_DequantizeLinear_Output"
        return pairs[tensor]

    nodes: list[onnx.NodeProto] = []
    dropped: set[str] = set()
    for n in g.node:
        if n not in quantized:
            nodes.append(n)
            continue
        x_in, w_name, b_name = n.input[0], n.input[1], n.input[2]
        w = init[w_name]
        w_scale = (np.abs(w.reshape(len(w), -1)).max(axis=1) / 127).astype(np.float32)
        wq = np.clip(np.rint(w / w_scale.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127)
        b_scale = (np.float32(scales[x_in]) * w_scale).astype(np.float32)
        bq = np.rint(init[b_name] / b_scale).astype(np.int32)
        new_init += [numpy_helper.from_array(wq.astype(np.int8), f"{w_name}_quantized"),
                     numpy_helper.from_array(w_scale, f"{w_name}_scale"),
                     numpy_helper.from_array(np.zeros(len(w), np.int8), f"{w_name}_zero_point"),
                     numpy_helper.from_array(bq, f"{b_name}_quantized"),
                     numpy_helper.from_array(b_scale, f"{b_name}_quantized_scale"),
                     numpy_helper.from_array(np.zeros(len(bq), np.int32),
                                             f"{b_name}_quantized_zero_point")]
        pre += [helper.make_node("DequantizeLinear", [f"{w_name}_quantized", f"{w_name}_scale",
                                                      f"{w_name}_zero_point"],
                                 [f"{w_name}_DequantizeLinear_Output"],
                                 name=f"{w_name}_DequantizeLinear", axis=0),
                helper.make_node("DequantizeLinear", [f"{b_name}_quantized",
                                                      f"{b_name}_quantized_scale",
                                                      f"{b_name}_quantized_zero_point"],
                                 [b_name], name=f"{b_name}_DequantizeLinear", axis=0)]
        dropped |= {w_name, b_name}
        out = n.output[0]
        is_output = out in {o.name for o in g.output}
        q_in = f"{out}_QuantizeLinear_Input" if is_output else out
        node = helper.make_node(n.op_type, [act(x_in), f"{w_name}_DequantizeLinear_Output",
                                            b_name], [q_in], name=n.name)
        node.attribute.extend(n.attribute)
        nodes.append(node)
        if is_output:  # the head's output pair, written under the graph output's name
            s, z = f"{out}_scale", f"{out}_zero_point"
            new_init += [numpy_helper.from_array(np.array(scales[out], np.float32), s),
                         numpy_helper.from_array(np.array(0, np.int8), z)]
            nodes += [helper.make_node("QuantizeLinear", [q_in, s, z],
                                       [f"{out}_QuantizeLinear_Output"],
                                       name=f"{out}_QuantizeLinear"),
                      helper.make_node("DequantizeLinear", [f"{out}_QuantizeLinear_Output", s, z],
                                       [out], name=f"{out}_DequantizeLinear")]
        elif n.op_type == "Conv":  # its output quantized for the next node, as ORT does
            act(out)
            for later in g.node:
                for i, t in enumerate(later.input):
                    if t == out and later not in quantized:
                        later.input[i] = pairs[out]
    q = onnx.ModelProto()
    q.CopyFrom(model)
    del q.graph.node[:]
    q.graph.node.extend(pre + nodes)
    keep = [t for t in model.graph.initializer if t.name not in dropped]
    del q.graph.initializer[:]
    q.graph.initializer.extend(keep + new_init)
    meta = ModelMeta.from_json(next(p.value for p in model.metadata_props if p.key == META_KEY))
    del q.metadata_props[:]
    entry = q.metadata_props.add()
    entry.key, entry.value = META_KEY, meta.with_(precision="int8").to_json()
    _toposort(q.graph)
    onnx.checker.check_model(q, full_check=True)
    return q, scales


def _toposort(graph: onnx.GraphProto) -> None:
    """Order the nodes so that each runs after what it reads (in place)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    todo, done = list(graph.node), []
    while todo:
        rest = []
        for n in todo:
            if all(i in ready for i in n.input):
                done.append(n)
                ready |= set(n.output)
            else:
                rest.append(n)
        if len(rest) == len(todo):
            raise ValueError(f"cycle or missing input at {[n.name for n in rest]}")
        todo = rest
    del graph.node[:]
    graph.node.extend(done)
