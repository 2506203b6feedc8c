"""Tiny skelmtl-shaped ONNX models built with onnx.helper (no torch), for builder tests.

``tiny_model`` mimics an exported network: input ``(N, C', T, 75)``, Conv + Relu,
global average pooling, one Gemm head per task and a task head, with our metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.metadata import INPUT_NAME, META_KEY, ModelMeta
from edge.preprocess import PreprocessConfig

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
