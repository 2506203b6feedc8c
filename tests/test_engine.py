"""TensorRT engine building: version dispatch, header framing, ONNX checks, the builder.

Nothing here has a GPU or TensorRT. The builder runs against ``tests/fake_tensorrt``, a
recording stand-in whose API surface per version (8.5, 8.6, 10.3, 11.4) follows NVIDIA's
documented Python API; see its docstring for what that proves (we call only names that
exist in each version, with the flags, profiles, caches and checks each version needs,
and we refuse engines whose recorded layer precisions do not match) and what it cannot
(real parsing of our Q/DQ placement, tactics, numerics). The ``gpu``-marked test at the
end builds and runs a real engine where TensorRT and a GPU exist.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from calibration.engine import build_engine
from calibration.onnx_meta import OnnxModelError
from calibration.quantize import quantize_onnx
from calibration.trt.builder import make_cache_calibrator, network_flags, parser_errors
from calibration.trt.calib_cache import (
    check_calibration_cache,
    decode_calibration_cache,
    encode_calibration_cache,
)
from calibration.trt.inspection import parse_inspector_json, precision_problems
from calibration.trt.onnx_checks import check_onnx, fold_int32_dequantize
from calibration.trt.versions import TensorRTError, UnsupportedTensorRT, profile_for, version_number
from edge.core.errors import SkelmtlError
from edge.core.metadata import MetadataError
from edge.engine.header import (
    EngineHeader,
    EngineHeaderError,
    check_engine_platform,
    encode_engine,
    read_engine,
    read_engine_header,
    write_engine,
)
from tests.fake_tensorrt import call_names, engine_blob, make_tensorrt
from tests.fake_tensorrt.onnx_models import qdq_model, save, tiny_meta, tiny_model, windows

VERSIONS = ("8.5.2.2", "8.6.2", "10.3.0", "11.4.1")


def _quiet(msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model in FP32, in Q/DQ INT8 with the heads quantized too (so that every
    compute layer of the engine is INT8) and with float heads (what calibrate writes by
    default), and its legacy calibration cache for TensorRT 8.5.2.

    With ``skelmtl calibrate``'s quantizer (onnxruntime >= 1.27) they are its output;
    without it (a Jetson, ``make test-oldest``) ``onnx_models.qdq_model`` writes the same
    layout, so the builder tests run there too."""
    from calibration.quantize import quantizer_missing

    d = tmp_path_factory.mktemp("models")
    meta = tiny_meta()
    fp32 = save(tiny_model(meta), d / "model.onnx")
    int8, heads, calib = d / "model.int8.onnx", d / "model.heads.int8.onnx", d / "model.calib"
    if quantizer_missing():
        q, scales = qdq_model(tiny_model(meta), windows(meta, 48), quantize_heads=True)
        save(q, int8)
        save(qdq_model(tiny_model(meta), windows(meta, 48), quantize_heads=False)[0], heads)
        calib.write_bytes(encode_calibration_cache(scales, "8.5.2"))
    else:
        quantize_onnx(fp32, int8, windows(meta, 48), method="minmax", trt_cache=calib,
                      trt_cache_version="8.5.2", quantize_heads=True, log=_quiet)
        quantize_onnx(fp32, heads, windows(meta, 48), method="minmax", trt_cache=None,
                      log=_quiet)
    return {"fp32": fp32, "int8": int8, "int8_float_heads": heads, "calib": calib, "dir": d}


# --- engine header ------------------------------------------------------------------------

def _header(**kw: object) -> EngineHeader:
    meta = tiny_meta().with_(precision="int8")
    args: dict[str, object] = dict(meta=meta, precision="int8", tensorrt="10.3.0",
                                   gpu="Orin sm_87 16SM | NVIDIA Jetson AGX Orin",
                                   build={"min_batch": 1, "opt_batch": 2, "max_batch": 8})
    args.update(kw)
    return EngineHeader(**args)  # type: ignore[arg-type]


def test_header_round_trip(tmp_path: Path) -> None:
    engine = b"\x00\x01plan-bytes" * 100
    path = write_engine(tmp_path / "m.engine", _header(), engine)
    raw = path.read_bytes()
    magic, version, n = struct.unpack("<8sII", raw[:16])
    assert (magic, version) == (b"SKMTLTRT", 1)
    assert raw[16 + n:] == engine
    h, e = read_engine(path)
    assert e == engine
    assert h.engine_size == len(engine) and h.precision == "int8"
    assert h.meta.labels == tiny_meta().labels and h.batch_range == (1, 2, 8)
    assert read_engine_header(path).engine_sha256 == h.engine_sha256


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"NOTOURS!" + b[8:], "not a skelmtl engine file"),
    (lambda b: b[:-5], "truncated or appended"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "SHA-256"),
    (lambda b: b[:8] + struct.pack("<I", 7) + b[12:], "header format 7"),
    (lambda b: b[:20], "truncated engine header"),
])
def test_header_refuses_bad_files(tmp_path: Path, mutate: object, message: str) -> None:
    good = encode_engine(_header(), b"engine" * 10)
    p = tmp_path / "bad.engine"
    p.write_bytes(mutate(good))  # type: ignore[operator]
    with pytest.raises(EngineHeaderError, match=message):
        read_engine(p)


def test_header_refuses_foreign_metadata(tmp_path: Path) -> None:
    d = _header().to_dict()
    d["meta"]["preprocess"]["version"] = 999
    blob = json.dumps(d).encode()
    p = tmp_path / "m.engine"
    p.write_bytes(struct.pack("<8sII", b"SKMTLTRT", 1, len(blob)) + blob + b"x")
    with pytest.raises(MetadataError, match="preprocessing version 999"):
        read_engine_header(p)


def test_header_precision_must_match_meta() -> None:
    with pytest.raises(EngineHeaderError, match="says fp16 but its model metadata says int8"):
        _header(precision="fp16")


@pytest.mark.parametrize("trt, gpu, message", [
    ("10.3.0", "Orin sm_87 16SM", None),
    ("10.3.0.0", "Orin sm_87 16SM | NVIDIA Jetson AGX Orin 64GB", None),
    # the build number counts: TensorRT refuses a plan from another build
    ("10.3.0.30", None, "built by TensorRT 10.3.0, this is TensorRT 10.3.0.30"),
    ("10.3.1", None, "built by TensorRT 10.3.0, this is TensorRT 10.3.1"),
    ("8.6.2", None, "built by TensorRT 10.3.0"),
    ("10.3.0", "NVIDIA H100 sm_90", "built on GPU 'Orin sm_87 16SM', this GPU is"),
    ("10.3.0", "unknown", None),
    ("10.3.0", "Orin sm_87", None),  # nvidia-smi's description has no SM count
    ("10.3.0", "Orin sm_87 8SM", "built on GPU 'Orin sm_87 16SM', this GPU is 'Orin sm_87 8SM'"),
    ("10.3.0", "Orin sm_72 16SM", "this GPU is 'Orin sm_72 16SM'"),
])
def test_platform_check(trt: str, gpu: str | None, message: str | None) -> None:
    h = _header()
    if message is None:
        check_engine_platform(h, tensorrt=trt, gpu=gpu)
    else:
        with pytest.raises(EngineHeaderError, match=message):
            check_engine_platform(h, tensorrt=trt, gpu=gpu)


def _runtime_stand_in(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    import sys
    import types

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", trt)


@pytest.mark.parametrize("version, gpu, message", [
    ("10.3.0", "NVIDIA H100 80GB sm_90 132SM", "built on GPU 'Orin sm_87 16SM', this GPU is "
                                                "'NVIDIA H100 80GB sm_90 132SM'"),
    ("10.3.0.30", "Orin sm_87 16SM", "built by TensorRT 10.3.0, this is TensorRT 10.3.0.30"),
])
def test_backend_checks_gpu_and_full_version_before_loading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, gpu: str,
        message: str) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    _runtime_stand_in(monkeypatch, version)
    path = write_engine(tmp_path / "m.engine", _header(gpu="Orin sm_87 16SM"), b"plan")
    with pytest.raises(EngineHeaderError, match=message):
        TensorRTBackend(path, gpu=gpu)
    # the GPU comes from SKELMTL_GPU (or pycuda / nvidia-smi) when not given
    monkeypatch.setenv("SKELMTL_GPU", gpu)
    with pytest.raises(EngineHeaderError, match=message):
        TensorRTBackend(path)


def test_backend_refuses_an_engine_others_can_write(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.backends.base import BackendError
    from edge.backends.tensorrt import TensorRTBackend

    _runtime_stand_in(monkeypatch, "10.3.0")
    path = write_engine(tmp_path / "m.engine", _header(), b"plan")
    path.chmod(0o664)
    with pytest.raises(EngineHeaderError, match=r"m.engine: engine file is writable by group "
                                                r"or others \(mode 0664\)"):
        TensorRTBackend(path, gpu="Orin sm_87 16SM")
    path.chmod(0o644)
    tmp_path.chmod(0o775)  # writable by our own group (user private groups): fine
    os.chown(tmp_path, -1, os.getgid())
    with pytest.raises(BackendError):  # passes the trust check, then needs CUDA bindings
        TensorRTBackend(path, gpu="Orin sm_87 16SM", cuda="pycuda")
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(EngineHeaderError, match="folder holding the engine is writable by "
                                                    "group or others"):
            TensorRTBackend(path, gpu="Orin sm_87 16SM")
    finally:
        tmp_path.chmod(0o700)


# --- version dispatch ------------------------------------------------------------------------

@pytest.mark.parametrize("version, family, jetpack, strong, flags, calib, number", [
    ("8.5.2.2", "8.5", "5.1", False, True, True, 8502),
    ("8.6.2", "8.6", "6.0", False, True, True, 8602),  # JetPack 6.0 DP, not 5.1
    ("10.3.0", "10", "6", False, True, True, 100300),
    ("10.13.3", "10", "7", False, True, True, 101303),
    ("11.4.1", "11", "7.2.2", True, False, False, 110401),
])
def test_profiles(version: str, family: str, jetpack: str, strong: bool, flags: bool,
                  calib: bool, number: int) -> None:
    p = profile_for(version)
    assert (p.family, p.jetpack, p.strongly_typed, p.precision_flags, p.legacy_calibrator) == \
        (family, jetpack, strong, flags, calib)
    assert version_number(version) == number


@pytest.mark.parametrize("version", ["7.1.3", "8.4.1", "9.2.0", "nonsense"])
def test_unsupported_versions(version: str) -> None:
    with pytest.raises(UnsupportedTensorRT):
        profile_for(version)


@pytest.mark.parametrize("version, expected", [("8.5.2", 1), ("10.3.0", 0), ("11.4.1", 2)])
def test_network_flags(version: str, expected: int) -> None:
    trt = make_tensorrt(version)
    assert network_flags(trt, profile_for(version)) == expected


# --- ONNX checks ----------------------------------------------------------------------------

def _errors(model: onnx.ModelProto, version: str, precision: str, **kw: bool) -> list[str]:
    return [i.message for i in check_onnx(model, profile_for(version), precision, **kw)
            if i.severity == "error"]


@pytest.mark.parametrize("version, errors", [("8.5.2", 1), ("8.6.2", 0), ("10.3.0", 0)])
def test_layernorm_only_rejected_by_85(version: str, errors: int) -> None:
    ln = helper.make_node("LayerNormalization", ["f", "g", "b"], ["ln"], name="/ln")
    m = tiny_model()
    m.graph.node.append(ln)
    found = _errors(m, version, "fp32")
    assert len(found) == errors
    if errors:
        assert "LayerNormalization" in found[0] and "8.5" in found[0]


def test_checks_opset_einsum_and_domains() -> None:
    m = tiny_model(opset=18)
    m.graph.node.append(helper.make_node("Einsum", ["a", "b"], ["c"], name="/e",
                                         equation="...ij,jk->...ik"))
    m.graph.node.append(helper.make_node("Einsum", ["a", "b"], ["d"], name="/diag",
                                         equation="ii,ij->ij"))
    m.graph.node.append(helper.make_node("QGemm", ["a"], ["q"], name="/q", domain="com.microsoft"))
    errs = _errors(m, "8.5.2", "fp32")
    assert any("opset 18 is above the 17" in e for e in errs)
    assert any("ellipsis" in e for e in errs) and any("diagonal" in e for e in errs)
    assert any("QGemm (com.microsoft)" in e for e in errs)
    # 10.x documents a higher opset and parses Einsum fully: only the domain is an error
    assert len(_errors(m, "10.3.0", "fp32")) == 1


def test_checks_precision_against_model(models: dict[str, Path]) -> None:
    fp32, int8 = onnx.load(str(models["fp32"])), onnx.load(str(models["int8"]))
    assert _errors(int8, "10.3.0", "int8") == [] or all("int32" in e for e in
                                                      _errors(int8, "10.3.0", "int8"))
    assert any("needs a Q/DQ model" in e for e in _errors(fp32, "11.4.1", "int8"))
    assert any("--calib-cache" in e for e in _errors(fp32, "8.5.2", "int8"))
    assert any("would compute those layers in INT8" in e
               for e in _errors(int8, "10.3.0", "fp16"))
    assert any("strongly typed" in e for e in _errors(fp32, "11.4.1", "fp16"))
    assert _errors(fp32, "10.3.0", "fp16") == []
    assert any("no INT8 calibrators" in e
               for e in _errors(fp32, "11.4.1", "int8", calibration_cache=True))
    assert any("cannot be combined with a Q/DQ model" in e
               for e in _errors(int8, "8.5.2", "int8", calibration_cache=True))


def test_checks_quantization_parameters(models: dict[str, Path]) -> None:
    m = onnx.load(str(models["int8"]))
    errs = _errors(m, "10.3.0", "int8")
    assert any("int32" in e for e in errs)  # the quantized biases, before folding
    assert fold_int32_dequantize(m) == 5
    assert _errors(m, "10.3.0", "int8") == []
    zp = next(t for t in m.graph.initializer if t.name.endswith("zero_point"))
    arr = onnx.numpy_helper.to_array(zp).copy()
    arr[...] = 3
    zp.CopyFrom(onnx.numpy_helper.from_array(arr, zp.name))
    assert any("non-zero zero point" in e for e in _errors(m, "10.3.0", "int8"))


def test_bias_folding_keeps_values(models: dict[str, Path]) -> None:
    import onnxruntime as ort

    m = onnx.load(str(models["int8"]))
    x = windows(tiny_meta(), 4, seed=3)
    before = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    fold_int32_dequantize(m)
    after = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    a, b = before.run(None, {"input": x}), after.run(None, {"input": x})
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, atol=1e-4)


# --- calibration cache --------------------------------------------------------------------

def test_calibration_cache_format() -> None:
    data = encode_calibration_cache({"input": 0.0208, "c1": 2.5 / 127, "zero": 0.0},
                                    "8.5.2.2")
    lines = data.decode().splitlines()
    assert lines[0] == "TRT-8502-EntropyCalibration2"
    assert lines[1] == f"c1: {struct.pack('>f', 2.5 / 127).hex()}"
    assert len(lines) == 3  # the zero scale is dropped
    cache = decode_calibration_cache(data)
    assert cache.version == 8502 and cache.algorithm == "EntropyCalibration2"
    assert cache.scales["input"] == pytest.approx(0.0208, rel=1e-6)
    # a line as TensorRT itself writes it
    real = decode_calibration_cache(b"TRT-8401-EntropyCalibration2\ninput: 3caa54fc\n")
    assert real.scales["input"] == pytest.approx(0.020792, rel=1e-4)


def test_calibration_cache_version_checked(tmp_path: Path) -> None:
    p = tmp_path / "c.calib"
    p.write_bytes(encode_calibration_cache({"input": 0.1}, "8.6.1"))
    with pytest.raises(TensorRTError, match="written for TensorRT version 8601, this is 8.5.2"):
        check_calibration_cache(p, profile_for("8.5.2"))
    p.write_bytes(b"\x89PNG...")
    with pytest.raises(TensorRTError, match="not a TensorRT calibration cache"):
        check_calibration_cache(p, profile_for("8.5.2"))


# --- the inspector's JSON, both schemas ---------------------------------------------------------

def test_inspector_schemas() -> None:
    old = json.dumps({"Layers": [
        {"Name": "/conv1/Conv + /relu1/Relu", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "in", "Format/Datatype":
                     "Thirty-two wide channel vectorized row major Int8 format"}],
         "Outputs": [{"Name": "out", "Format/Datatype": "Channel major FP16 format"}]}],
        "Bindings": ["input", "logits_action"]})
    new = json.dumps({"Layers": [
        {"Name": "/conv1/Conv", "LayerType": "Convolution",
         "Inputs": [{"Name": "in", "Format": "kLINEAR", "DataType": "Int8"}],
         "Outputs": [{"Name": "out", "Format": "kLINEAR", "DataType": "Float"}]}],
        "I/O Tensors": [{"Name": "input"}]})
    a = parse_inspector_json(old, profile_for("10.3.0"))
    b = parse_inspector_json(new, profile_for("11.4.1"))
    assert a[0].dtypes == {"int8", "fp16"} and b[0].dtypes == {"int8", "fp32"}
    names = parse_inspector_json(json.dumps({"Layers": ["a", "b"]}), profile_for("10.3.0"))
    assert precision_problems(names, "int8") and "DETAILED" in \
        precision_problems(names, "int8")[0]


# --- the builder against the stand-in --------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_build_int8_from_qdq(models: dict[str, Path], tmp_path: Path, version: str) -> None:
    trt = make_tensorrt(version)
    out = tmp_path / "m.engine"
    h = build_engine(models["int8"], out, "int8", min_batch=1, opt_batch=4, max_batch=16,
                     timing_cache=tmp_path / "t.cache", trt=trt, gpu="Orin sm_87", log=_quiet)
    calls = trt.calls
    names = call_names(trt)
    profile = profile_for(version)
    net_flags = next(a[0] for n, a in calls if n == "Builder.create_network")
    set_flags = [a[0] for n, a in calls if n == "IBuilderConfig.set_flag"]
    if profile.strongly_typed:
        assert net_flags == 1 << 1 and set_flags == []
    else:
        # FP16 too: the float islands may run FP16 (--float-islands fp32 keeps them FP32)
        assert set_flags == ["INT8", "FP16"]
        assert net_flags == (1 if version.startswith("8") else 0)
    assert ("IOptimizationProfile.set_shape", ("input", (1, 7, 8, 75), (4, 7, 8, 75),
                                                (16, 7, 8, 75))) in calls
    assert names.index("IBuilderConfig.set_timing_cache") < \
        names.index("Builder.build_serialized_network")
    assert "IBuilderConfig.int8_calibrator" not in names
    assert (tmp_path / "t.cache").read_bytes().startswith(b"FAKETC")

    header, engine = read_engine(out)
    assert header == h and header.precision == "int8" and header.meta.precision == "int8"
    assert header.tensorrt == version and header.gpu == "Orin sm_87"
    assert header.build["strongly_typed"] == profile.strongly_typed
    assert header.meta.producer["tensorrt"] == version
    blob = engine_blob(engine)
    conv = {lay["onnx"]: lay["prec"] for lay in blob["layers"] if "onnx" in lay}
    assert conv["/conv1/Conv"] == conv["/logits_action/Gemm"] == "Int8"
    # TensorRT's names: weight + its quantizer + the node + the fused ReLU
    names = [lay["name"] for lay in blob["layers"]]
    assert any(n.endswith(" + /conv1/Conv + /relu1/Relu") for n in names)
    assert "input_QuantizeLinear_quantize_scale_node" in names


@pytest.mark.parametrize("version, islands, head", [
    ("8.5.2.2", "fp16", "Half"), ("8.5.2.2", "fp32", "Float"), ("10.3.0", "fp16", "Half"),
    ("10.3.0", "fp32", "Float"), ("11.4.1", "fp16", "Float"),  # strongly typed: ONNX types
])
def test_float_heads_build_in_float(models: dict[str, Path], tmp_path: Path,
                                    version: str, islands: str, head: str) -> None:
    h = build_engine(models["int8_float_heads"], tmp_path / "m.engine", "int8",
                     float_islands=islands, trt=make_tensorrt(version), gpu="g", log=_quiet)
    _, engine = read_engine(tmp_path / "m.engine")
    prec = {lay["onnx"]: lay["prec"] for lay in engine_blob(engine)["layers"]
            if lay["type"] in ("Conv", "Gemm")}
    assert prec == {"/conv1/Conv": "Int8", "/conv2/Conv": "Int8", "/logits_action/Gemm": head,
                    "/logits_gesture/Gemm": head, "/task_logits/Gemm": head}
    # recorded only when the FP16 flag let float layers run FP16 (weak typing)
    assert h.build["float_islands"] == ("fp16" if head == "Half" else None)
    assert ("FP16" in h.build["builder_flags"]) == (head == "Half")


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0", "11.4.1"])
def test_timing_cache_reused(models: dict[str, Path], tmp_path: Path, version: str) -> None:
    cache = tmp_path / "t.cache"
    for _ in range(2):
        build_engine(models["int8"], tmp_path / "m.engine", "int8", timing_cache=cache,
                     trt=make_tensorrt(version), gpu="g", log=_quiet)
    n = len(engine_blob(read_engine(tmp_path / "m.engine")[1])["layers"])
    assert n >= 9 and json.loads(cache.read_bytes()[6:])["entries"] == 2 * n
    # a cache from another TensorRT is replaced, not trusted
    build_engine(models["int8"], tmp_path / "m.engine", "int8", timing_cache=cache,
                 trt=make_tensorrt("10.4.0"), gpu="g", log=_quiet)
    n = len(engine_blob(read_engine(tmp_path / "m.engine")[1])["layers"])
    assert json.loads(cache.read_bytes()[6:]) == {"version": "10.4.0", "entries": n}


@pytest.mark.parametrize("blob", [b"garbage", b"FAKETC{not json", b""])
def test_corrupt_timing_cache_starts_empty(models: dict[str, Path], tmp_path: Path,
                                           blob: bytes) -> None:
    # The real create_timing_cache returns None for a corrupt blob and set_timing_cache(None)
    # raises (issue 14, item 8): the build must go on from an empty cache.
    cache = tmp_path / "t.cache"
    cache.write_bytes(blob)
    lines: list[str] = []
    trt = make_tensorrt("10.3.0")
    assert trt.Builder(trt.Logger()).create_builder_config().create_timing_cache(b"garbage") \
        is None
    build_engine(models["int8"], tmp_path / "m.engine", "int8", timing_cache=cache, trt=trt,
                 gpu="g", log=lines.append)
    n = len(engine_blob(read_engine(tmp_path / "m.engine")[1])["layers"])
    assert json.loads(cache.read_bytes()[6:]) == {"version": "10.3.0", "entries": n}
    if blob:
        assert f"timing cache {cache} is corrupt (TensorRT could not read it); starting " \
            "from an empty one" in lines


@pytest.mark.parametrize("version, flags", [("8.6.2", ["FP16"]), ("10.3.0", ["FP16"]),
                                            ("11.4.1", [])])
def test_build_fp16(models: dict[str, Path], tmp_path: Path, version: str,
                    flags: list[str]) -> None:
    trt = make_tensorrt(version)
    h = build_engine(models["fp32"], tmp_path / "m.engine", "fp16", trt=trt, gpu="g",
                     log=_quiet)
    assert [a[0] for n, a in trt.calls if n == "IBuilderConfig.set_flag"] == flags
    assert h.precision == "fp16" and h.meta.precision == "fp16"
    _, engine = read_engine(tmp_path / "m.engine")
    compute = [lay["prec"] for lay in engine_blob(engine)["layers"]
               if lay["type"] in ("Conv", "Gemm")]
    assert compute == ["Half"] * 5


@pytest.mark.parametrize("version", ["8.5.2.2", "11.4.1"])
def test_build_fp32_clears_tf32(models: dict[str, Path], tmp_path: Path, version: str) -> None:
    trt = make_tensorrt(version)
    build_engine(models["fp32"], tmp_path / "m.engine", "fp32", trt=trt, gpu="g", log=_quiet)
    assert ("IBuilderConfig.clear_flag", ("TF32",)) in trt.calls
    assert not [n for n, _ in trt.calls if n == "IBuilderConfig.set_flag"]


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_legacy_calibrator_from_cache(models: dict[str, Path], tmp_path: Path,
                                      version: str) -> None:
    trt = make_tensorrt(version)
    cache = tmp_path / "model.calib"

    scales = decode_calibration_cache(models["calib"].read_bytes()).scales
    cache.write_bytes(encode_calibration_cache(scales, version))
    h = build_engine(models["fp32"], tmp_path / "m.engine", "int8", calib_cache=cache, trt=trt,
                     gpu="g", log=_quiet)
    names = call_names(trt)
    assert "IBuilderConfig.int8_calibrator" in names
    assert "IBuilderConfig.set_calibration_profile" in names
    assert ("IInt8Calibrator.__init__", ("CacheCalibrator",)) in trt.calls
    assert h.build["calibration"] == "legacy-cache:model.calib"
    _, engine = read_engine(tmp_path / "m.engine")
    precs = {lay["onnx"]: lay["prec"] for lay in engine_blob(engine)["layers"] if "onnx" in lay}
    assert precs["/conv1/Conv"] == "Int8"


def test_legacy_cache_for_other_version_refused(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TensorRTError, match="written for TensorRT version 8502, this is 8.6.2"):
        build_engine(models["fp32"], tmp_path / "m.engine", "int8", calib_cache=models["calib"],
                     trt=make_tensorrt("8.6.2"), gpu="g", log=_quiet)


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_no_fast_int8_fails_loudly(models: dict[str, Path], tmp_path: Path, version: str) -> None:
    trt = make_tensorrt(version, fast_int8=False)
    with pytest.raises(TensorRTError, match="no fast INT8"):
        build_engine(models["int8"], tmp_path / "m.engine", "int8", trt=trt, gpu="g", log=_quiet)
    assert "Builder.build_serialized_network" not in call_names(trt)
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize("version", ["10.3.0", "11.4.1"])
def test_layer_precision_mismatch_fails(models: dict[str, Path], tmp_path: Path,
                                        version: str) -> None:
    # TensorRT 11 cannot be asked about fast INT8: only the built engine tells.
    trt = make_tensorrt(version, int8_kernels=False)
    # The standalone quantize layers still output INT8: the old check ("some layer runs
    # INT8") passed on them; computing layers are what counts.
    low = "fp16" if version.startswith("10") else "fp32"  # FP16 float islands on 10.x
    with pytest.raises(TensorRTError, match="(?s)does not compute in int8.*no computing "
                                               "layer of the engine runs in INT8.*"
                                               f"'/conv1/Conv' runs in {low}, not INT8"):
        build_engine(models["int8"], tmp_path / "m.engine", "int8", trt=trt, gpu="g", log=_quiet)
    assert not (tmp_path / "m.engine").exists()
    # the override writes it, and says so in the header
    lines: list[str] = []
    h = build_engine(models["int8"], tmp_path / "m.engine", "int8", trt=trt, gpu="g",
                     allow_precision_mismatch=True, log=lines.append)
    assert h.build["precision_check"].startswith("overridden: no computing layer")
    assert any(ln.startswith("warning: ") and "--allow-precision-mismatch" in ln for ln in lines)


def test_fp16_without_fast_fp16(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TensorRTError, match="no fast FP16"):
        build_engine(models["fp32"], tmp_path / "m.engine", "fp16",
                     trt=make_tensorrt("10.3.0", fast_fp16=False), gpu="g", log=_quiet)


def test_parser_errors_listed(tmp_path: Path) -> None:
    m = tiny_model()
    # caught by our check before TensorRT's parser sees it
    m.graph.node.append(helper.make_node("Hardmax", ["f"], ["h"], name="/hardmax"))
    p = save(m, tmp_path / "m.onnx")
    with pytest.raises(TensorRTError, match=r"TensorRT 8.6.2 does not support: Hardmax"):
        build_engine(p, tmp_path / "m.engine", "fp32", trt=make_tensorrt("8.6.2"), gpu="g",
                     log=_quiet)
    # the parser's own report, with node names on 10.x
    parser_trt = make_tensorrt("10.3.0")
    net = parser_trt.Builder(parser_trt.Logger()).create_network(0)
    parser = parser_trt.OnnxParser(net, parser_trt.Logger())
    bad = tiny_model()
    bad.graph.node.append(helper.make_node("QLinearConv", ["f"], ["q"], name="/qconv"))
    assert not parser.parse(bad.SerializeToString())
    assert parser_errors(parser) == ["No importer registered for op: QLinearConv "
                                     "(node '/qconv', op QLinearConv)"]


@pytest.mark.parametrize("version, has, lacks", [
    ("8.5.2.2", {"UINT8"}, {"FP8", "BF16", "INT64"}),
    ("8.6.2", {"UINT8", "FP8"}, {"BF16", "INT64"}),
    ("10.3.0", {"FP8", "BF16", "INT64", "INT4"}, {"FP4"}),
    ("11.4.1", {"BF16", "INT64", "FP4"}, set()),
])
def test_stand_in_enums_follow_each_release(version: str, has: set[str], lacks: set[str]) -> None:
    trt = make_tensorrt(version)
    names = set(trt.DataType.__members__)
    assert has <= names and not lacks & names
    assert int(trt.DataType.FLOAT) == 0 and int(trt.DataType.INT8) == 2
    flags = set(trt.BuilderFlag.__members__)
    assert ("VERSION_COMPATIBLE" in flags) == (version != "8.5.2.2")
    assert ("STRICT_TYPES" in flags) == version.startswith("8")


def test_removed_apis_absent_in_11() -> None:
    trt = make_tensorrt("11.4.1")
    for name in ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"):
        assert not hasattr(trt.BuilderFlag, name)
    assert not hasattr(trt, "IInt8EntropyCalibrator2")
    assert not hasattr(trt.Builder(trt.Logger()), "platform_has_fast_int8")
    with pytest.raises(TensorRTError, match="no INT8 calibrators"):
        make_cache_calibrator(trt, profile_for("11.4.1"), b"")


@pytest.mark.parametrize("content, error", [
    (b"garbage", OnnxModelError),
    (None, MetadataError),
])
def test_bad_models(tmp_path: Path, content: bytes | None, error: type[Exception]) -> None:
    p = tmp_path / "m.onnx"
    if content is None:
        m = tiny_model()
        del m.metadata_props[:]
        onnx.save(m, str(p))
    else:
        p.write_bytes(content)
    with pytest.raises(error):
        build_engine(p, tmp_path / "m.engine", "fp32", trt=make_tensorrt("10.3.0"), gpu="g",
                     log=_quiet)


def test_outputs_that_are_inputs_are_refused(models: dict[str, Path], tmp_path: Path) -> None:
    before = models["int8"].read_bytes()
    for kw, option in ((dict(out=models["int8"]), "-o/--output"),
                       (dict(save_prepared=models["int8"]), "--save-prepared"),
                       (dict(timing_cache=models["int8"]), "--timing-cache")):
        out = kw.pop("out", tmp_path / "m.engine")
        with pytest.raises(TensorRTError, match=f"{option} is an input of this build"):
            build_engine(models["int8"], out, "int8", trt=make_tensorrt("10.3.0"), gpu="g",
                         log=_quiet, **kw)  # type: ignore[arg-type]
    assert models["int8"].read_bytes() == before


def test_batch_profile_validated(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TensorRTError, match="min-batch <= opt-batch <= max-batch"):
        build_engine(models["int8"], tmp_path / "m.engine", "int8", min_batch=4, opt_batch=2,
                     trt=make_tensorrt("10.3.0"), log=_quiet)


def test_cli_without_tensorrt(models: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    from skelmtl.cli import main

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    rc = main(["build-engine", str(models["int8"]), "-o", str(tmp_path / "m.engine")])
    assert rc == 2
    assert "TensorRT's Python bindings are not importable" in capsys.readouterr().err


def test_errors_are_skelmtl_errors() -> None:
    assert issubclass(TensorRTError, SkelmtlError)
    assert issubclass(EngineHeaderError, SkelmtlError)


# --- real TensorRT -----------------------------------------------------------------------

@pytest.mark.gpu
def test_real_engine_matches_onnxruntime(models: dict[str, Path], tmp_path: Path) -> None:
    """Build FP32 and INT8 engines with the installed TensorRT and compare with ORT."""
    trt = pytest.importorskip("tensorrt", reason="needs TensorRT")
    cudart = pytest.importorskip("cuda.bindings.runtime", reason="needs cuda-python")
    import onnxruntime as ort

    x = windows(tiny_meta(), 4, seed=5)
    for precision, model, tol in (("fp32", models["fp32"], 1e-3), ("int8", models["int8"], 0.1)):
        out = tmp_path / f"m.{precision}.engine"
        build_engine(model, out, precision, max_batch=8)
        header, engine_bytes = read_engine(out)
        check_engine_platform(header, tensorrt=trt.__version__)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(engine_bytes)
        ctx = engine.create_execution_context()
        ctx.set_input_shape("input", x.shape)
        bufs, host = {}, {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(ctx.get_tensor_shape(name))
            host[name] = x if name == "input" else np.zeros(shape, np.float32)
            err, ptr = cudart.cudaMalloc(host[name].nbytes)
            bufs[name] = ptr
            ctx.set_tensor_address(name, ptr)
        cudart.cudaMemcpy(bufs["input"], x.ctypes.data, x.nbytes,
                          cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
        ctx.execute_async_v3(0)
        cudart.cudaDeviceSynchronize()
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
        for name, want in ref.items():
            cudart.cudaMemcpy(host[name].ctypes.data, bufs[name], host[name].nbytes,
                              cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)
            np.testing.assert_allclose(host[name], want, atol=tol)
        for ptr in bufs.values():
            cudart.cudaFree(ptr)
