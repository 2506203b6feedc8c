"""INT8 calibration: the stratified calibration set, the Q/DQ model, the legacy TensorRT
cache and the FP32 vs INT8 report.

Models here are tiny hand-built ONNX graphs (``tests/fake_tensorrt/onnx_models.py``) and
the clips come from the synthetic store of ``tests/synth.py``, so the tests run in
seconds; the measured bar on a trained model is in ``docs/calibration.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from calibration.calibset import draw_calibration_set, load_split
from calibration.onnx_meta import read_meta
from calibration.quantize import (
    DEFAULT_OP_TYPES,
    QuantizeError,
    calibrate,
    prune_opset_imports,
    quantize_onnx,
    quantizer_missing,
)
from calibration.report import compare_models, format_report, head_accuracy
from calibration.trt.calib_cache import decode_calibration_cache
from calibration.trt.onnx_checks import check_onnx, qdq_nodes
from calibration.trt.versions import profile_for
from edge.core.clipstore import Clip, StoreError, write_store
from edge.core.metadata import MetadataError
from tests import synth
from tests.fake_tensorrt.onnx_models import save, tiny_meta, tiny_model, windows


def _quiet(msg: str) -> None:
    pass

# Making Q/DQ models needs onnxruntime >= 1.27; with an older one (the oldest-dependency run
# of docs/jetson.md) these tests skip and test_old_onnxruntime_is_refused_clearly runs.
needs_quantizer = pytest.mark.skipif(quantizer_missing() is not None,
                                     reason=str(quantizer_missing()))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.make_store(tmp_path_factory.mktemp("s") / "store", n_per_class=8)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(tiny_model(), tmp_path_factory.mktemp("m") / "model.onnx")


# --- calibration set ----------------------------------------------------------------------

def test_calibration_set_is_stratified(store: Path) -> None:
    meta = tiny_meta()
    cal = draw_calibration_set([store], meta, size=12, seed=0)
    assert cal.x.shape == (12, meta.preprocess.channels, 8, 75) and cal.x.dtype == np.float32
    counts = cal.counts()
    assert {t: sorted(v.values()) for t, v in counts.items()} == {
        "action": [2, 2, 2], "gesture": [2, 2, 2]}
    assert all(cid.startswith("store:") for cid in cal.clip_id)
    # only train clips (synth: every 4th clip is test)
    assert all(not cid.endswith(("/3", "/7")) for cid in cal.clip_id)
    again = draw_calibration_set([store], meta, size=12, seed=0)
    assert again.clip_id == cal.clip_id and np.array_equal(again.x, cal.x)
    # more than there is: every train clip once
    everything = draw_calibration_set([store], meta, size=10_000)
    assert len(everything) == 6 * 6 and len(set(everything.clip_id)) == 36


def test_calibration_uses_the_runtime_preprocessing(store: Path) -> None:
    from edge.core.clipstore import ClipStore
    from edge.core.preprocess import preprocess

    meta = tiny_meta()
    cal = draw_calibration_set([store], meta, size=3)
    s = ClipStore(store)
    ids = s.column("clip_id")
    i = ids.index(cal.clip_id[0].split(":", 1)[1])
    clip = s[i]
    want = preprocess(np.asarray(clip.frames)[..., :2], np.asarray(clip.mask), meta.preprocess)
    np.testing.assert_array_equal(cal.x[0], want)


def test_calibration_set_refuses_wrong_data(tmp_path: Path, store: Path) -> None:
    meta = tiny_meta()
    flat = [Clip(frames=np.zeros((5, 75, 2), np.float32), mask=np.ones((5, 75), bool),
                 label="raise", task="action", split="train", clip_id=f"c{i}")
            for i in range(2)]
    two_d = write_store(flat, tmp_path / "two_d")
    with pytest.raises(StoreError, match="holds 2D clips but the model needs 3D"):
        draw_calibration_set([two_d], meta.with_(preprocess=meta.preprocess.__class__(
            window=8, dims=3)))
    other = write_store([Clip(frames=np.zeros((5, 75, 2), np.float32),
                              mask=np.ones((5, 75), bool), label="x", task="dance",
                              split="train", clip_id="d")], tmp_path / "other")
    with pytest.raises(StoreError, match=r"tasks \['dance'\], the model has"):
        draw_calibration_set([other], meta)
    with pytest.raises(StoreError, match="no clips of the model's tasks in split 'val'"):
        draw_calibration_set([store], meta, split="val")
    # same task name, classes of another dataset: not this model's data (issue 15)
    strangers = write_store([Clip(frames=np.zeros((5, 75, 2), np.float32),
                                  mask=np.ones((5, 75), bool), label=lab, task="action",
                                  split="train", clip_id=f"s{i}")
                             for i, lab in enumerate(("salsa", "tango"))], tmp_path / "dance")
    with pytest.raises(StoreError, match=r"task 'action' holds the classes \['salsa', 'tango'\], "
                                         r"none of the model's \['raise', 'sweep', 'push'\]: "
                                         "these clips are not this model's data"):
        draw_calibration_set([strangers], meta)
    with pytest.raises(StoreError, match="none of the model's"):
        load_split([strangers], meta, split="train")
    with pytest.raises(StoreError, match="not a clip store"):
        draw_calibration_set([tmp_path], meta)


# --- quantization -----------------------------------------------------------------------

def _inits(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


@needs_quantizer
@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_qdq_model_is_what_tensorrt_needs(fp32: Path, tmp_path: Path, method: str) -> None:
    meta = tiny_meta()
    x = windows(meta, 64)
    res = quantize_onnx(fp32, tmp_path / "m.int8.onnx", x, method=method,
                        keep_float=["/task_logits/Gemm"], quantize_heads=True,
                        trt_cache=tmp_path / "m.calib", log=_quiet)
    m = onnx.load(str(res.path))
    onnx.checker.check_model(m, full_check=True)
    qmeta = read_meta(m, res.path)
    assert qmeta.precision == "int8" and qmeta.labels == meta.labels
    assert qmeta.producer["calibration"]["method"] == method
    assert res.float_nodes == ["/task_logits/Gemm"]
    assert sorted(res.quantized_nodes) == ["/conv1/Conv", "/conv2/Conv", "/logits_action/Gemm",
                                           "/logits_gesture/Gemm"]
    inits = _inits(m)
    qdq = qdq_nodes(m)
    assert qdq
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.dtype in (np.int8, np.int32) and not zp.any(), n.name  # symmetric int8
    # per-channel weights: one scale per output channel of each convolution
    conv_w = [n for n in m.graph.node if n.op_type == "DequantizeLinear"
              and inits.get(n.input[0]) is not None and inits[n.input[0]].dtype == np.int8
              and inits[n.input[0]].ndim == 4]
    assert {inits[n.input[1]].shape for n in conv_w} == {(8,)}
    assert all(np.abs(inits[n.input[0]]).max() <= 127 for n in conv_w)
    # the model the CPU runs and the one TensorRT builds agree
    issues = check_onnx(m, profile_for("10.3.0"), "int8")
    assert [i.message for i in issues if "int32" not in i.message and i.severity == "error"] == []
    # and INT8 stays close to FP32 on these windows
    s32 = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    a, b = s32.run(None, {"input": x}), s8.run(None, {"input": x})
    for u, v in zip(a, b):
        assert np.abs(u - v).max() < 0.25 * np.abs(u).max()
    # the float head keeps its float weights (its input is the shared quantized activation)
    head = next(n for n in m.graph.node if n.name == "/task_logits/Gemm")
    assert inits[head.input[1]].dtype == np.float32
    np.testing.assert_allclose(a[2], b[2], atol=0.02)
    cache = decode_calibration_cache((tmp_path / "m.calib").read_bytes())
    assert cache.version == 8502 and cache.algorithm == "EntropyCalibration2"
    assert {"input", "c1", "r1", "r2", "f"} <= set(cache.scales)
    assert cache.scales["input"] == pytest.approx(np.abs(x).max() / 127, rel=0.5)


_FAKE_MODELOPT = """
__version__ = "0.47.0"
"""
_FAKE_QUANTIZE = """
import json, os, shutil

def quantize(onnx_path, quantize_mode="int8", **kw):
    # records its arguments (the data as a shape) and writes the prepared model as output
    kw["calibration_data"] = {k: list(v.shape) for k, v in kw["calibration_data"].items()}
    with open(os.environ["FAKE_MODELOPT_CALLS"], "a") as f:
        f.write(json.dumps({"onnx_path": onnx_path, "quantize_mode": quantize_mode, **kw}) + "\\n")
    if os.environ.get("FAKE_MODELOPT_SOURCE"):
        shutil.copyfile(os.environ["FAKE_MODELOPT_SOURCE"], kw["output_path"])
    if os.environ.get("FAKE_MODELOPT_FAIL"):
        raise RuntimeError(os.environ["FAKE_MODELOPT_FAIL"])
"""


def _stand_in_modelopt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                       qdq_source: Path | None) -> Path:
    """A recording stand-in package ``modelopt`` (``modelopt.onnx.quantization.quantize``
    with ModelOpt 0.47's signature), importable by this process and the child process
    that calibrate starts. It records its arguments and writes ``qdq_source`` as its
    output. It proves our side (arguments, child process, metadata, checks, errors), not
    what ModelOpt computes; ``test_modelopt_quantizer_for_real`` runs the real one where
    it is installed. Returns the file the calls are recorded in (JSON lines)."""
    root = tmp_path / "fake_modelopt"
    pkg = root / "modelopt" / "onnx" / "quantization"
    pkg.mkdir(parents=True)
    (root / "modelopt" / "__init__.py").write_text(_FAKE_MODELOPT)
    (root / "modelopt" / "onnx" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text(_FAKE_QUANTIZE)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.syspath_prepend(str(root))
    repo = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), repo]))
    monkeypatch.setenv("FAKE_MODELOPT_CALLS", str(calls))
    monkeypatch.setenv("FAKE_MODELOPT_SOURCE", str(qdq_source) if qdq_source else "")
    return calls


@needs_quantizer
def test_modelopt_quantizer_arguments_and_metadata(fp32: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    meta = tiny_meta()
    x = windows(meta, 48)
    ours = quantize_onnx(fp32, tmp_path / "ours.onnx", x, method="minmax", trt_cache=None,
                         log=_quiet)
    calls = _stand_in_modelopt(monkeypatch, tmp_path, ours.path)
    res = quantize_onnx(fp32, tmp_path / "mo.onnx", x, method="minmax", quantizer="modelopt",
                        trt_cache=tmp_path / "mo.calib", log=_quiet)
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call["quantize_mode"] == "int8" and call["calibration_method"] == "max"
    assert call["calibration_eps"] == ["cpu"] and call["high_precision_dtype"] == "fp32"
    # 48 windows in batches of 24, the largest size up to 32 that drops none
    assert call["calibration_shapes"] == "input:24x7x8x75"
    assert call["calibration_data"] == {"input": [48, 7, 8, 75]}
    assert call["op_types_to_quantize"] == list(DEFAULT_OP_TYPES)
    assert sorted(call["nodes_to_exclude"]) == ["/logits_action/Gemm", "/logits_gesture/Gemm",
                                                "/task_logits/Gemm"]
    cal = read_meta(onnx.load(str(res.path)), res.path).producer["calibration"]
    assert cal["quantizer"] == "modelopt" and cal["modelopt"] == "0.47.0"
    assert res.quantized_nodes == ours.quantized_nodes
    # the legacy TensorRT cache still comes from our own calibration pass
    cache = decode_calibration_cache((tmp_path / "mo.calib").read_bytes())
    assert {"input", "c1", "r1", "r2", "f"} <= set(cache.scales)


@needs_quantizer
def test_modelopt_quantizer_errors(fp32: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    x = windows(tiny_meta(), 16)
    real_find_spec = importlib.util.find_spec
    with monkeypatch.context() as m:  # not installed
        m.setattr(importlib.util, "find_spec",
                  lambda name, *a: None if name == "modelopt" else real_find_spec(name, *a))
        with pytest.raises(QuantizeError, match=r"pip install 'nvidia-modelopt\[onnx\]'"):
            quantize_onnx(fp32, tmp_path / "a.onnx", x, quantizer="modelopt", trt_cache=None,
                          log=_quiet)
    _stand_in_modelopt(monkeypatch, tmp_path, None)
    with pytest.raises(QuantizeError, match=r"calibrates with \['entropy', 'minmax'\], "
                                            "not 'percentile'"):
        quantize_onnx(fp32, tmp_path / "b.onnx", x, method="percentile", quantizer="modelopt",
                      trt_cache=None, log=_quiet)
    with pytest.raises(QuantizeError, match="ModelOpt's quantizer wrote no model"):
        quantize_onnx(fp32, tmp_path / "c.onnx", x, quantizer="modelopt", trt_cache=None,
                      log=_quiet)
    monkeypatch.setenv("FAKE_MODELOPT_FAIL", "graph has a cycle")
    with pytest.raises(QuantizeError, match="ModelOpt's quantizer failed .*graph has a cycle"):
        quantize_onnx(fp32, tmp_path / "c.onnx", x, quantizer="modelopt", trt_cache=None,
                      log=_quiet)
    assert not (tmp_path / "c.onnx").exists()
    with pytest.raises(QuantizeError, match="unknown quantizer 'tflite'"):
        quantize_onnx(fp32, tmp_path / "d.onnx", x, quantizer="tflite", log=_quiet)


@needs_quantizer
def test_modelopt_quantizer_for_real(fp32: Path, tmp_path: Path) -> None:
    pytest.importorskip("modelopt.onnx.quantization",
                        reason="NVIDIA ModelOpt is not installed (pip install "
                               "'nvidia-modelopt[onnx]')")
    meta = tiny_meta()
    x = windows(meta, 64)
    res = quantize_onnx(fp32, tmp_path / "mo.onnx", x, method="entropy", quantizer="modelopt",
                        trt_cache=None, log=_quiet)
    m = onnx.load(str(res.path))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 19
    # ModelOpt decides with its own rules which convolutions to quantize (0.47 left the
    # second one, which feeds only the pooling, in float); the heads stay float as asked
    assert "/conv1/Conv" in res.quantized_nodes
    assert not [n for n in res.quantized_nodes if n.endswith("/Gemm")]
    s32 = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    for u, v in zip(s32.run(None, {"input": x}), s8.run(None, {"input": x})):
        assert np.abs(u - v).max() < 0.25 * np.abs(u).max()
    # ModelOpt ran in a child process: this process's quantizer is still ONNX Runtime's own
    again = quantize_onnx(fp32, tmp_path / "ort.onnx", x, trt_cache=None, log=_quiet)
    assert sorted(again.quantized_nodes) == ["/conv1/Conv", "/conv2/Conv"]


@needs_quantizer
def test_heads_stay_float_by_default(fp32: Path, tmp_path: Path) -> None:
    meta = tiny_meta()
    x = windows(meta, 64)
    # the pool quantized too (not a default): a one-input operator counts as INT8
    res = quantize_onnx(fp32, tmp_path / "m.int8.onnx", x, method="entropy", trt_cache=None,
                        op_types=DEFAULT_OP_TYPES + ("GlobalAveragePool",), log=_quiet)
    heads = ["/logits_action/Gemm", "/logits_gesture/Gemm", "/task_logits/Gemm"]
    assert res.float_nodes == heads
    assert sorted(res.quantized_nodes) == ["/conv1/Conv", "/conv2/Conv",
                                           "/pool/GlobalAveragePool"]
    m = onnx.load(str(res.path))
    cal = read_meta(m, res.path).producer["calibration"]
    assert cal["float_heads"] == heads and cal["keep_float"] == []
    assert "GlobalAveragePool" in cal["op_types"]
    inits = _inits(m)
    for n in m.graph.node:
        if n.name in heads:  # float weights, and no Q/DQ between the head and its output
            assert inits[n.input[1]].dtype == np.float32
            assert n.output[0] in {o.name for o in m.graph.output}
    # the pooled features are quantized: ONNX Runtime runs the pool as an integer kernel
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(res.path), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "QLinearGlobalAveragePool" in ops and "QGemm" not in ops, ops


@needs_quantizer
def test_every_conv_fuses_in_onnxruntime(tmp_path: Path) -> None:
    """A tensor with two consumers (block output -> next conv and residual conv) must not
    leave either consumer in float in ONNX Runtime (see dedicate_quantizers)."""
    meta = tiny_meta()
    src = save(tiny_model(meta, residual=True), tmp_path / "res.onnx")
    res = quantize_onnx(src, tmp_path / "res.int8.onnx", windows(meta, 32), trt_cache=None,
                        log=_quiet)
    assert "/res/Conv" in res.quantized_nodes and "/Add" in res.quantized_nodes
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(res.path), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("QLinearConv") == 3 and "Conv" not in ops, ops


@needs_quantizer
def test_entropy_clips_outliers(fp32: Path, tmp_path: Path) -> None:
    """With 2048 histogram bins entropy calibration clips rare outliers that MinMax keeps
    (ONNX Runtime's default of 128 bins made the two identical)."""
    x = windows(tiny_meta(), 64)
    x[0, 0, 0, 0] = 200.0  # one wild joint
    scales = {}
    for method in ("minmax", "entropy"):
        res = quantize_onnx(fp32, tmp_path / f"{method}.onnx", x, method=method,
                            trt_cache=tmp_path / f"{method}.calib", log=_quiet)
        assert res.calibration_cache is not None
        cache = decode_calibration_cache(res.calibration_cache.read_bytes())
        scales[method] = cache.scales["input"]
    assert scales["minmax"] == pytest.approx(200.0 / 127, rel=1e-3)
    assert scales["entropy"] < 0.15 * scales["minmax"]  # amax ~20 instead of 200


@needs_quantizer
def test_quantize_refuses(fp32: Path, tmp_path: Path) -> None:
    x = windows(tiny_meta(), 8)
    with pytest.raises(QuantizeError, match=r"calibration windows \(8, 7, 8, 74\) do not match"):
        quantize_onnx(fp32, tmp_path / "q.onnx", x[..., :74], log=_quiet)
    with pytest.raises(QuantizeError, match=r"no nodes named \['/nope'\]"):
        quantize_onnx(fp32, tmp_path / "q.onnx", x, keep_float=["/nope"], log=_quiet)
    with pytest.raises(QuantizeError, match="unknown calibration method 'kl'"):
        quantize_onnx(fp32, tmp_path / "q.onnx", x, method="kl", log=_quiet)
    res = quantize_onnx(fp32, tmp_path / "q.onnx", x, trt_cache=None, log=_quiet)
    with pytest.raises(QuantizeError, match="is already int8"):
        quantize_onnx(res.path, tmp_path / "qq.onnx", x, log=_quiet)
    bare = tiny_model()
    del bare.metadata_props[:]
    with pytest.raises(MetadataError, match="no skelmtl metadata"):
        quantize_onnx(save(bare, tmp_path / "bare.onnx"), tmp_path / "q2.onnx", x, log=_quiet)
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(Exception, match="junk.onnx: not a readable ONNX model"):
        quantize_onnx(tmp_path / "junk.onnx", tmp_path / "q3.onnx", x, log=_quiet)


# --- report ------------------------------------------------------------------------------

def test_head_accuracy_numbers() -> None:
    from calibration.calibset import WindowSet

    labels = {"a": ("x", "y"), "b": ("p", "q", "r")}
    ws = WindowSet(np.zeros((4, 1, 1, 1), np.float32), ("a", "a", "b", "b"),
                   ("x", "y", "p", "zzz"), ("1", "2", "3", "4"))
    f32 = {"logits_a": np.array([[2., 0], [0, 1], [0, 0], [0, 0]]),
           "logits_b": np.array([[0., 0, 0], [0, 0, 0], [3, 0, 0], [0, 0, 0]]),
           "task_logits": np.array([[1., 0], [1, 0], [0, 1], [0, 1]])}
    i8 = {"logits_a": np.array([[2., 0], [1.5, 1], [0, 0], [0, 0]]),
          "logits_b": np.array([[0., 0, 0], [0, 0, 0], [2.9, 0, 0], [0, 0, 0]]),
          "task_logits": np.array([[1., 0], [1, 0], [0, 1], [1, 0]])}
    r = head_accuracy(f32, i8, ws, labels, ("a", "b"))
    assert r["a"] == {"n": 2, "unknown_label": 0, "top1_fp32": 1.0, "top1_int8": 0.5,
                      "top1_drop_points": 50.0, "agreement": 0.5, "max_abs_logit_diff": 1.5}
    assert r["b"]["n"] == 1 and r["b"]["unknown_label"] == 1
    assert r["b"]["max_abs_logit_diff"] == pytest.approx(0.1)
    assert r["task_logits"]["top1_int8"] == 0.75 and r["task_logits"]["agreement"] == 0.75


@needs_quantizer
def test_report_on_test_split(fp32: Path, store: Path, tmp_path: Path) -> None:
    res, cal = calibrate(fp32, tmp_path / "m.int8.onnx", [store], size=24, log=_quiet)
    assert res.calibration_cache == tmp_path / "m.int8.calib"
    rep = compare_models(fp32, res.path, [store], repeats=3)
    test = load_split([store], tiny_meta(), split="test")
    assert rep["windows"] == len(test) == 12
    assert set(rep["heads"]) == {"action", "gesture", "task_logits"}
    for h in rep["heads"].values():
        assert 0.0 <= h["agreement"] <= 1.0 and h["max_abs_logit_diff"] >= 0.0
    lat = rep["latency"]
    assert set(lat) == {"batch_1", "batch_32"}
    assert all(v["fp32"]["median_ms"] > 0 and v["int8"]["median_ms"] > 0 and "ratio" in v
               for v in lat.values())
    assert set(rep["bar"]) == {"max_top1_drop_points", "max_latency_ratio", "accuracy_ok",
                               "latency_ok"}
    assert rep["calibration"]["windows"] == 24
    assert "FP32 vs INT8 on 12 test windows" in format_report(rep)


@needs_quantizer
def test_cli(fp32: Path, store: Path, tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from skelmtl.cli import main

    out = tmp_path / "m.int8.onnx"
    rc = main(["calibrate", str(fp32), "--data", str(store), "-o", str(out), "--method",
               "entropy", "--size", "16", "--report", str(tmp_path / "r.json"),
               "--latency-repeats", "2", "--trt-cache-version", "8.6.1"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(out)
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["calibration"]["method"] == "entropy" and rep["schema"] == 1
    assert (tmp_path / "m.int8.calib").read_text().startswith("TRT-8601-EntropyCalibration2\n")
    rc = main(["calibrate", str(fp32), "--data", str(tmp_path / "nowhere"), "-o", str(out)])
    assert rc == 2
    assert "nowhere: not a clip store" in capsys.readouterr().err


def test_bar_line_shows_the_bar_beside_the_values() -> None:
    from calibration.report import format_bar

    rep = {"heads": {"action": {"top1_drop_points": 0.4}, "gesture": {"top1_drop_points": 1.5},
                     "task_logits": {"top1_drop_points": 9.0}},
           "latency": {"batch_1": {"ratio": 0.85}, "batch_32": {"ratio": 0.41}},
           "bar": {"max_top1_drop_points": 1.0, "max_latency_ratio": 0.6,
                   "accuracy_ok": False, "latency_ok": False}}
    assert format_bar(rep) == (
        "bar: accuracy MISSED (largest top-1 drop 1.50 points, bar <= 1.0), latency MISSED "
        "(INT8/FP32 time ratio 0.85 at batch 1, 0.41 at batch 32, bar <= 0.6)")


def test_calibrate_refuses_to_overwrite_its_input(fp32: Path, store: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from calibration.quantize import QuantizeError, refuse_overwriting_input
    from skelmtl.cli import main

    before = fp32.read_bytes()
    rc = main(["calibrate", str(fp32), "--data", str(store), "-o", str(fp32)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"skelmtl calibrate: error: {fp32}: -o/--output is the input model; "
                   "calibrate writes a new file and keeps the FP32 model (e.g. -o "
                   "model.int8.onnx)"]
    assert fp32.read_bytes() == before
    link = tmp_path / "alias.onnx"
    link.symlink_to(fp32)
    with pytest.raises(QuantizeError, match="--report is the input model"):
        refuse_overwriting_input(fp32, {"-o/--output": tmp_path / "x.onnx", "--report": link})
    # calibrate() checks the quantizer before the paths: an onnxruntime too old to quantize
    # (the oldest-dependency run) is refused first, and the model is untouched either way.
    refusal = quantizer_missing() or (f"{fp32}: --trt-cache is the input model; calibrate "
                                      "writes a new file and keeps the FP32 model (e.g. -o "
                                      "model.int8.onnx)")
    with pytest.raises(QuantizeError) as caught:
        calibrate(fp32, tmp_path / "x.onnx", [store], trt_cache=fp32, log=_quiet)
    assert str(caught.value) == refusal
    assert fp32.read_bytes() == before


@needs_quantizer
@pytest.mark.parametrize("n", [45, 37])
def test_calibration_set_not_a_multiple_of_the_batch(fp32: Path, tmp_path: Path, n: int) -> None:
    """ORT's histogram collectors break on a short last batch; the reader avoids one."""
    x = windows(tiny_meta(), n)
    res = quantize_onnx(fp32, tmp_path / "m.int8.onnx", x, method="entropy",
                        trt_cache=tmp_path / "m.calib", log=_quiet)
    assert res.path.is_file() and res.quantized_nodes


def test_old_onnxruntime_is_refused_clearly(fp32: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import calibration.quantize as q

    monkeypatch.setattr(q, "quantizer_missing", lambda: "skelmtl calibrate needs onnxruntime "
                        ">= 1.27 (its quantizer's calibration cache); this is 1.16.3")
    with pytest.raises(QuantizeError, match=r"needs onnxruntime >= 1\.27.*1\.16\.3"):
        quantize_onnx(fp32, tmp_path / "q.onnx", windows(tiny_meta(), 4), log=_quiet)
    assert not (tmp_path / "q.onnx").exists()


def test_unused_opset_imports_are_pruned() -> None:
    """ORT's pre-processing declares every domain it knows; old runtimes refuse unknown ones."""
    from onnx import helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", 1, [1])],
                          [helper.make_tensor_value_info("y", 1, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("ai.onnx.ml", 5),
                                            helper.make_opsetid("com.microsoft.nchwc", 1)])
    assert prune_opset_imports(m) == 2
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    assert prune_opset_imports(m) == 0
