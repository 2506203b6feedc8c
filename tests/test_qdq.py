"""The CPU-only Relu fold of Q/DQ models (edge/backends/qdq.py): exact outputs on a hand-built graph,
the patterns it must leave alone, and the bundled INT8 model before and after."""
from __future__ import annotations

import builtins
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge.backends.qdq import fold_relu_for_cpu  # noqa: E402

S1, S2 = 0.05, 0.03  # Q1 (before the Relu) and Q2 (after it) scales; 127 * S2 < max x < 255 * S2


def _model(*, zp2: int = 0, s2b: float = S2, relu_to_output: bool = False,
           extra_consumer: bool = False) -> bytes:
    """x -> Mul(w) -> Q1 -> DQ1 -> Relu -> {Q2a -> DQ2a, Q2b -> DQ2b} -> Add -> y.

    Two quantisers after the Relu, as ONNX Runtime's quantiser writes one per consumer.
    """
    init = [numpy_helper.from_array(np.array(v, dt), n) for n, v, dt in [
        ("w", 1.5, np.float32), ("s1", S1, np.float32), ("s2a", S2, np.float32),
        ("s2b", s2b, np.float32), ("z", 0, np.int8), ("z2", zp2, np.int8)]]
    nodes = [helper.make_node("Mul", ["x", "w"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "s1", "z"], ["q1"]),
             helper.make_node("DequantizeLinear", ["q1", "s1", "z"], ["d1"]),
             helper.make_node("Relu", ["d1"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s2a", "z2"], ["qa"]),
             helper.make_node("QuantizeLinear", ["r", "s2b", "z2"], ["qb"]),
             helper.make_node("DequantizeLinear", ["qa", "s2a", "z2"], ["da"]),
             helper.make_node("DequantizeLinear", ["qb", "s2b", "z2"], ["db"]),
             helper.make_node("Add", ["da", "db"], ["y"])]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])]
    if relu_to_output:
        outs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 64]))
    if extra_consumer:
        nodes.append(helper.make_node("Neg", ["r"], ["n"]))
        outs.append(helper.make_tensor_value_info("n", TensorProto.FLOAT, [1, 64]))
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, 64])], outs, init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(
        ["y"], {"x": x})[0]


def _ops(data: bytes) -> Counter[str]:
    return Counter(n.op_type for n in onnx.load_from_string(data).graph.node)


X = np.linspace(-4, 4, 64, dtype=np.float32)[None]


def test_fold_gives_the_single_rounding_relu_exactly() -> None:
    data = _model()
    out, n = fold_relu_for_cpu(data)
    assert n == 1
    assert _ops(out) == {"Mul": 1, "QuantizeLinear": 1, "DequantizeLinear": 2, "Add": 1}
    onnx.checker.check_model(onnx.load_from_string(out), full_check=True)
    m = 1.5 * X
    # Before: two roundings (S1, then S2) and the int8 ceiling of 127 steps.
    twice = np.clip(np.round(np.maximum(np.clip(np.round(m / S1), -127, 127) * S1, 0) / S2),
                    0, 127) * S2
    np.testing.assert_allclose(_run(data, X), 2 * twice, atol=1e-6)
    # After: one uint8 rounding; zero point 0 clamps negatives, i.e. the Relu.
    once = np.clip(np.round(m / S2), 0, 255) * S2
    np.testing.assert_allclose(_run(out, X), 2 * once, atol=1e-6)
    assert np.abs(_run(out, X) - 2 * np.maximum(m, 0)).max() <= S2 + 1e-6  # half a step each


@pytest.mark.parametrize("kwargs", [
    {"zp2": 3},                     # an asymmetric quantiser: already foldable by ORT itself
    {"s2b": 2 * S2},                # consumers quantise differently: not one tensor
    {"relu_to_output": True},       # the Relu's float output is a graph output
    {"extra_consumer": True},       # a float consumer of the Relu
], ids=["zero-point", "two-scales", "graph-output", "float-consumer"])
def test_patterns_left_alone(kwargs: dict[str, Any]) -> None:
    data = _model(**kwargs)
    out, n = fold_relu_for_cpu(data)
    assert (n, out) == (0, data)


def test_float_models_and_non_onnx_bytes_pass_through() -> None:
    from edge.assets import bundled_model

    fp32 = bundled_model("fp32").read_bytes()
    assert fold_relu_for_cpu(fp32) == (fp32, 0)
    assert fold_relu_for_cpu(b"not a model") == (b"not a model", 0)  # ORT names the file


def test_without_onnx_the_model_loads_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_onnx(name: str, *a: Any, **k: Any) -> Any:
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    data = _model()
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert fold_relu_for_cpu(data) == (data, 0)


@pytest.mark.parametrize(("folder", "relus"), [
    # the shipped jcd_base: 34 Relus, 20 feed quantisers (the others feed pooling or
    # heads in float)
    ("shipped", 20),
    # stgcn_tiny, shipped until 2026-12-05: 8 Relus, 7 feed quantisers; the last feeds
    # the float pooling
    ("fixtures/stgcn_tiny", 7)])
def test_int8_models_fold_on_cpu_only(folder: str, relus: int) -> None:
    from edge.assets import assets_dir, bundled_clips
    from edge.backends import load_backend
    from edge.core.recording import load_recording
    from edge.runtime.pipeline import batch_inputs

    # the shipped one where the package is installed (the Jetson image runs this test)
    root = assets_dir() / "model" if folder == "shipped" else Path(__file__).parent / folder
    path = root / "model.int8.onnx"
    folded = load_backend(path, "onnxruntime", intra_op_threads=1)
    plain = load_backend(path, "onnxruntime", intra_op_threads=1, fold_relu=False)
    fp32 = load_backend(root / "model.onnx", "onnxruntime", intra_op_threads=1)
    assert (folded.relus_folded, plain.relus_folded) == (relus, 0)  # type: ignore[attr-defined]
    meta = folded.meta
    x = np.concatenate([batch_inputs(r.frames, r.mask, meta.preprocess, meta.stride, True)
                        for r in map(load_recording, bundled_clips())])
    out = {k: b.infer(x) for k, b in [("folded", folded), ("plain", plain), ("fp32", fp32)]}
    for name in ("logits_gesture", "task_logits"):
        ref = out["fp32"][name]
        err = {k: float(np.abs(out[k][name] - ref).max()) for k in ("folded", "plain")}
        assert err["folded"] < 1.0, (name, err)
        assert (out["folded"][name].argmax(1) == ref.argmax(1)).mean() >= 0.95, name
    for b in (folded, plain, fp32):
        b.close()
