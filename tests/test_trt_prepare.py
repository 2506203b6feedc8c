"""The ONNX model build-engine hands each TensorRT version (calibration/trt_prepare.py).

What this proves: for the shipped INT8 model, the one shipped before it (stgcn_tiny, a
fixture) and a freshly calibrated one, the prepared
model follows the rules each version's parser and documentation state (no integer weight
feeding DequantizeLinear on 8.x, one quantizer per tensor, symmetric int8 zero points,
per-channel scales on the output-channel axis, no INT8 MatMul on 8.x, supported operators),
keeps the calibrated INT8 weights exactly, computes what the calibrated model computes in
ONNX Runtime, and builds with the stand-in of every version, while the unprepared model is
refused by the 8.x stand-in's parser as the real one refuses it. What it cannot prove: that
a real TensorRT picks INT8 kernels for it, or how fast they are (that is `skelmtl selfcheck`
on the device).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from calibration import trt_prepare as tp  # noqa: E402
from calibration.engine import build_engine  # noqa: E402
from calibration.trt.builder import use_strong_typing  # noqa: E402
from calibration.trt.inspection import (  # noqa: E402
    LayerInfo,
    is_opaque,
    layer_tokens,
    precision_problems,
)
from calibration.trt.versions import TensorRTError, profile_for  # noqa: E402
from edge.assets import assets_dir  # noqa: E402
from edge.engine.header import read_engine  # noqa: E402
from tests.fake_tensorrt import engine_blob, make_tensorrt  # noqa: E402
from tests.fake_tensorrt.onnx_models import save, tiny_meta, tiny_model, windows  # noqa: E402

# The model shipped until 2026-12-05 (stgcn_tiny), kept as a fixture for the rules that need
# a graph with a residual fork, tensors quantized twice and MatMuls; the shipped model
# (jcd_base) has none of these and is checked by the tests at the end.
STGCN = Path(__file__).parent / "fixtures" / "stgcn_tiny" / "model.int8.onnx"
SHIPPED = assets_dir() / "model" / "model.int8.onnx"  # a checkout's or the installed one
VERSIONS = ("8.5.2.2", "8.6.2", "10.3.0", "10.13.3", "11.4.1")


def _quiet(msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def stgcn() -> object:
    return onnx.load(str(STGCN))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly calibrated model with a residual fork (two readers of one tensor)."""
    from calibration.quantize import quantize_onnx, quantizer_missing

    if quantizer_missing():
        pytest.skip(str(quantizer_missing()))
    d = tmp_path_factory.mktemp("fresh")
    meta = tiny_meta()
    fp32 = save(tiny_model(meta, residual=True), d / "model.onnx")
    out = d / "model.int8.onnx"
    quantize_onnx(fp32, out, windows(meta, 48), method="minmax", trt_cache=None, log=_quiet)
    return out


def _prepared(model: object, version: str, **kw: str) -> tuple[object, tp.PrepareReport]:
    m = copy.deepcopy(model)
    report = tp.prepare_for_tensorrt(m, profile_for(version), tp.PrepareOptions(**kw))
    return m, report


def _dq_of_int_weight(model: object) -> list[str]:
    inits = {t.name: t for t in model.graph.initializer}  # type: ignore[attr-defined]
    return [n.name for n in model.graph.node  # type: ignore[attr-defined]
            if n.op_type == "DequantizeLinear" and n.input[0] in inits
            and inits[n.input[0]].data_type in (2, 3, 6)]


@pytest.mark.parametrize("version", VERSIONS)
def test_stgcn_model_follows_the_rules_once_prepared(stgcn: object, version: str) -> None:
    profile = profile_for(version)
    before = tp.prepared_problems(copy.deepcopy(stgcn), profile)
    m, report = _prepared(stgcn, version)
    assert tp.prepared_problems(m, profile) == []
    onnx.checker.check_model(m, full_check=True)
    # stgcn_tiny: 11 Conv biases, 3 tensors quantized twice, 8 output Q/DQ pairs in
    # front of a ReLU and 3 on the main branch of a residual Add, 4 MatMuls (graph
    # adjacency), 15 weights
    s = report.summary()
    assert (s["folded_biases"], s["merged_quantizers"], s["removed_output_qdq"]) == (11, 3, 11)
    assert report.removed_output_qdq[-3:] == [f"/model/trunk.{i}/tcn/Conv_output_0"
                                              for i in (1, 2, 3)]
    if version.startswith("8"):
        assert (s["weights"], s["matmul"]) == ("qdq", "float")
        assert (s["requantized_weights"], s["float_matmuls"]) == (11, 4)
        assert _dq_of_int_weight(m) == []
        assert sum("integer weight" in p for p in before) == 15 + 11  # weights + biases
        assert sum("MatMul" in p and "no INT8 MatMul" in p for p in before) == 4
    else:
        assert (s["weights"], s["matmul"]) == ("int8", "int8")
        assert len(_dq_of_int_weight(m)) == 15
    assert sum("has 2 quantizers" in p for p in before) == 3
    # every zero point is int8 0 and per-channel weights sit on axis 0 of the Conv weights
    qs = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qs and all(len(n.input) == 3 for n in qs)


def test_requantized_weights_keep_the_calibrated_int8_values(stgcn: object) -> None:
    from onnx import numpy_helper

    m, _ = _prepared(stgcn, "8.5.2.2")
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    orig = {t.name: numpy_helper.to_array(t) for t in stgcn.graph.initializer}  # type: ignore[attr-defined]
    checked = 0
    for q in m.graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] not in inits:
            continue
        w, scale = inits[q.input[0]], inits[q.input[1]]
        shape = [1] * w.ndim
        shape[0] = scale.size
        requant = np.clip(np.round(w / scale.reshape(shape)), -128, 127).astype(np.int8)
        name = q.input[0]  # the weight's own name, less "_float" (str.removesuffix is 3.9's)
        assert np.array_equal(requant, orig[name[:-6] if name.endswith("_float") else name])
        checked += 1
    assert checked == 11


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_prepared_model_computes_what_the_calibrated_one_does(stgcn: object,
                                                              version: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    m, _ = _prepared(stgcn, version)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (16, 7, 32, 75)).astype(np.float32)
    shape = [d.dim_value for d in stgcn.graph.input[0].type.tensor_type.shape.dim]  # type: ignore[attr-defined]
    x = rng.normal(0, 1, (16, *shape[1:])).astype(np.float32)

    def run(model: object) -> list[np.ndarray]:
        s = ort.InferenceSession(model.SerializeToString(),  # type: ignore[attr-defined]
                                 providers=["CPUExecutionProvider"])
        return s.run(None, {"input": x})

    a, b = run(stgcn), run(m)
    for la, lb in zip(a, b):
        # removing output quantization and float MatMuls changes rounding, not the answer
        assert np.mean(la.argmax(1) == lb.argmax(1)) >= 0.9
        assert np.max(np.abs(la - lb)) < 0.25 * max(1.0, float(np.max(np.abs(la))))


def test_as_calibrated_keeps_the_placement_but_merges_nothing_else(stgcn: object) -> None:
    m, report = _prepared(stgcn, "10.3.0", placement="as-calibrated")
    assert report.removed_output_qdq == [] and len(report.merged_quantizers) == 3
    assert tp.prepared_problems(m, profile_for("10.3.0"),
                                tp.PrepareOptions(placement="as-calibrated")) == []


def test_duplicates_with_really_different_scales_are_kept_and_reported(stgcn: object) -> None:
    from onnx import numpy_helper

    m = copy.deepcopy(stgcn)
    for t in m.graph.initializer:  # type: ignore[attr-defined]
        if t.name == "/model/trunk.0/Relu_1_output_0_scale_pair1":
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 2, t.name))
    report = tp.prepare_for_tensorrt(m, profile_for("10.3.0"))
    assert report.kept_duplicates == ["/model/trunk.0/Relu_1_output_0"]
    problems = tp.prepared_problems(m, profile_for("10.3.0"))
    assert problems == ["tensor '/model/trunk.0/Relu_1_output_0' has 2 quantizers "
                        "(/model/trunk.0/Relu_1_output_0_QuantizeLinear_1, "
                        "/model/trunk.0/Relu_1_output_0_QuantizeLinear_2); TensorRT wants one "
                        "scale per tensor"]


def test_rules_catch_asymmetric_and_misplaced_axes(stgcn: object) -> None:
    from onnx import numpy_helper

    m, _ = _prepared(stgcn, "10.3.0")
    for n in m.graph.node:
        if n.name == "onnx::Conv_133_DequantizeLinear":
            n.attribute[0].i = 1  # per-channel scales on the input channels
    for t in m.graph.initializer:
        if t.name == "input_zero_point":
            t.CopyFrom(numpy_helper.from_array(np.array(3, np.int8), t.name))
    problems = tp.prepared_problems(m, profile_for("10.3.0"))
    assert "DequantizeLinear 'onnx::Conv_133_DequantizeLinear': 24 scales for axis 1 of size 7" \
        in problems
    assert any(p.startswith("QuantizeLinear 'input_QuantizeLinear': zero point must be int8 0 "
                            "(symmetric), got int8 [3]") for p in problems)


@pytest.mark.parametrize("version", VERSIONS)
def test_stgcn_model_builds_with_every_stand_in(stgcn: object, tmp_path: Path,
                                                  version: str) -> None:
    saved = tmp_path / "prepared.onnx"
    h = build_engine(STGCN, tmp_path / "m.engine", "int8", trt=make_tensorrt(version),
                     gpu="g", save_prepared=saved, log=_quiet)
    prepared = onnx.load(str(saved))
    assert tp.prepared_problems(prepared, profile_for(version)) == []
    assert h.build["prepared"]["placement"] == "tensorrt"
    assert h.build["precision_check"] == "passed"
    blob = engine_blob(read_engine(tmp_path / "m.engine")[1])
    prec = {lay["onnx"]: lay["prec"] for lay in blob["layers"] if "onnx" in lay}
    convs = [k for k in prec if k.endswith("Conv")]
    assert len(convs) == 11 and all(prec[c] == "Int8" for c in convs)
    # the main branch's Conv fuses with the residual Add and the ReLU, as TensorRT does
    assert any(lay["name"].endswith(" + /model/trunk.1/tcn/Conv + /model/trunk.1/Add + "
                                    "/model/trunk.1/Relu_1") for lay in blob["layers"])
    mm = [prec[k] for k in prec if k.endswith("MatMul")]
    # 8.x: float MatMul (FP16 islands); 10.x INT8 MatMul
    assert mm == (["Half"] * 4 if version.startswith("8") else ["Int8"] * 4)
    if version == "10.13.3":  # 10.12+: strongly typed, no precision flags (NVIDIA's advice)
        assert h.build["strongly_typed"] is True and h.build["builder_flags"] == []


def test_unprepared_int8_weights_are_refused_by_the_85_parser(stgcn: object,
                                                               tmp_path: Path) -> None:
    # weights=int8 on 8.x is what calibrate writes; the prepared-model rules stop it before
    # the parser, and the stand-in's parser refuses it the way TensorRT 8.x does
    with pytest.raises(TensorRTError, match="(?s)integer weight 'onnx::Conv_133_quantized' "
                                               "feeds it directly; TensorRT 8.5.2 wants float"):
        build_engine(STGCN, tmp_path / "m.engine", "int8", weights="int8",
                     trt=make_tensorrt("8.5.2.2"), gpu="g", log=_quiet)
    m, _ = _prepared(stgcn, "8.5.2.2", weights="int8")
    trt = make_tensorrt("8.5.2.2")
    logger = trt.Logger()
    net = trt.Builder(logger).create_network(1)
    parser = trt.OnnxParser(net, logger)
    assert not parser.parse(m.SerializeToString())
    assert "onnx::Conv_133_quantized is an integer initializer" in parser.get_error(0).desc()


def test_85_int8_matmul_forced_is_not_demanded(stgcn: object, tmp_path: Path) -> None:
    # --matmul int8 on 8.5: the stand-in runs the MatMuls in float, as onnx-tensorrt 8.5
    # documents; the engine is still written (the old check refused it: a crash loop).
    h = build_engine(STGCN, tmp_path / "m.engine", "int8", matmul="int8",
                     trt=make_tensorrt("8.5.2.2"), gpu="g", log=_quiet)
    assert h.build["precision_check"] == "passed"
    assert h.build["prepared"]["matmul"] == "int8"


def test_fresh_model_follows_the_rules(fresh: Path, tmp_path: Path) -> None:
    model = onnx.load(str(fresh))
    for version in VERSIONS:
        m, report = _prepared(model, version)
        assert tp.prepared_problems(m, profile_for(version)) == [], version
        assert report.summary()["weights"] == ("qdq" if version[0] == "8" else "int8")
        build_engine(fresh, tmp_path / f"{version}.engine", "int8", trt=make_tensorrt(version),
                     gpu="g", log=_quiet)


def test_unknown_modes_refused() -> None:
    with pytest.raises(TensorRTError, match="unknown weights mode 'int4'"):
        tp.PrepareOptions(weights="int4").resolve(profile_for("10.3.0"))
    with pytest.raises(TensorRTError, match="TensorRT 8.5.2 has no strongly typed"):
        use_strong_typing(profile_for("8.5.2"), "int8", True, "strong")
    with pytest.raises(TensorRTError, match="strongly typed networks only"):
        use_strong_typing(profile_for("11.4.1"), "int8", True, "weak")


def test_strong_typing_rejects_precision_flags_in_the_stand_in(tmp_path: Path,
                                                               stgcn: object) -> None:
    trt = make_tensorrt("10.3.0")
    logger = trt.Logger()
    b = trt.Builder(logger)
    net = b.create_network(1 << 1)  # STRONGLY_TYPED
    trt.OnnxParser(net, logger).parse(_prepared(stgcn, "10.3.0")[0].SerializeToString())
    config = b.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    assert b.build_serialized_network(net, config) is None
    assert "not allowed for a strongly typed network" in logger.messages[-1][1]
    weak = b.create_network(0)
    trt.OnnxParser(weak, logger).parse(_prepared(stgcn, "10.3.0")[0].SerializeToString())
    assert b.build_serialized_network(weak, b.create_builder_config()) is None
    assert "INT8 builder flag is not set" in logger.messages[-1][1]


def test_layer_tokens_match_whole_names() -> None:
    assert layer_tokens("w1 + QuantizeLinear_342_quantize_scale_node + Conv_344 + "
                        "Relu_346") == {"w1", "QuantizeLinear_342", "Conv_344", "Relu_346"}
    assert layer_tokens("PWN(/a/Relu, /a/Add)") == {"/a/Relu", "/a/Add"}
    # substring matching used to find '/conv1/Conv' inside this float layer and refuse
    layers = [LayerInfo("/conv1/Conv_1", "Conv", frozenset({"fp32"})),
              LayerInfo("w + /conv1/Conv", "Conv", frozenset({"int8"}))]
    assert precision_problems(layers, "int8", ["/conv1/Conv"],
                              ["/conv1/Conv", "/conv1/Conv_1"]) == []
    only_q = [LayerInfo("input_QuantizeLinear_quantize_scale_node", "Scale",
                        frozenset({"fp32", "int8"})),
           LayerInfo("w + /conv1/Conv", "Conv", frozenset({"fp32"}))]
    assert precision_problems(only_q, "int8", [], ["/conv1/Conv"])[0].startswith(
        "no computing layer of the engine runs in INT8")


def test_opaque_regions_are_not_refused_but_noted() -> None:
    # TensorRT 10 may compile the whole graph as one Myelin region whose boundary is FP32:
    # refusing it would rebuild and refuse at every start (a crash loop)
    region = LayerInfo("{ForeignNode[/model/trunk.0/gcn/mm/MatMul.../model/task_head/Gemm]}",
                       "Myelin", frozenset({"fp32"}))
    notes: list[str] = []
    assert is_opaque(region) and layer_tokens(region.name) == {
        "/model/trunk.0/gcn/mm/MatMul.../model/task_head/Gemm"}
    assert precision_problems([region], "int8", ["/model/trunk.0/gcn/conv/Conv"],
                              ["/model/trunk.0/gcn/conv/Conv"], notes) == []
    assert notes and "cannot be verified" in notes[0]
    # a visible FP32 Conv beside the region is still refused
    conv = LayerInfo("w + /model/trunk.0/gcn/conv/Conv", "Conv", frozenset({"fp32"}))
    assert precision_problems([region, conv], "int8", ["/model/trunk.0/gcn/conv/Conv"],
                              ["/model/trunk.0/gcn/conv/Conv"]) == [
     "no computing layer of the engine runs in INT8 (only quantize/dequantize or reformat "
     "layers, if any)",
     "quantized node '/model/trunk.0/gcn/conv/Conv' runs in fp32, not INT8 (layer "
     "'w + /model/trunk.0/gcn/conv/Conv')"]


@pytest.fixture(scope="module")
def shipped() -> object:
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} is not in this checkout")
    return onnx.load(str(SHIPPED))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_shipped_model_is_prepared_and_builds_in_int8_with_every_stand_in(
        shipped: object, tmp_path: Path, version: str) -> None:
    convs = [n.name for n in shipped.graph.node if n.op_type == "Conv"]  # type: ignore[attr-defined]
    assert len(convs) == 30  # jcd_base, per head's joints: embeddings and trunk
    m, report = _prepared(shipped, version)
    assert tp.prepared_problems(m, profile_for(version)) == []
    onnx.checker.check_model(m, full_check=True)
    s = report.summary()
    # the biases of the 30 Convs and of the 4 quantized Gemms (the 3 that write logits
    # stay float, calibrate's default)
    assert s["folded_biases"] == 34
    assert s["requantized_weights"] == (34 if version.startswith("8") else 0)
    h = build_engine(SHIPPED, tmp_path / "m.engine", "int8", trt=make_tensorrt(version),
                     gpu="g", log=_quiet)
    assert h.build["precision_check"] == "passed"
    blob = engine_blob(read_engine(tmp_path / "m.engine")[1])
    prec = {lay["onnx"]: lay["prec"] for lay in blob["layers"] if "onnx" in lay}
    assert [prec.get(c) for c in convs] == ["Int8"] * len(convs)  # every Conv, in INT8
