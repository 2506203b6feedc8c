"""`skelmtl selfcheck` (calibration/selfcheck.py) against the TensorRT stand-in.

What this proves: the check builds the shipped INT8 model into the engine cache through
the real build-engine code (against tests/fake_tensorrt 10.3), reads the layer precisions
back through the inspector, cuts windows from the bundled clips, compares two backends
top-1 per head against the stated threshold and fails when they disagree, reuses the
cached engine on a second run, and without TensorRT exits 3 with one line. The passing
run loads the engine in the real TensorRT backend, whose execution the stand-in performs
with ONNX Runtime on the prepared Q/DQ model. What it cannot prove: that a real TensorRT
engine agrees with ONNX Runtime; on a Jetson, `skelmtl selfcheck` itself is that proof.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from calibration import selfcheck as sc
from edge.assets import bundled_model
from edge.engine.cache import Platform
from tests.fake_tensorrt import HostCudaMemory, make_tensorrt

ORIN = Platform(gpu="Orin sm_87 16SM", l4t="36.4.0", tensorrt="10.3.0")


def _builder(trt: Any) -> Any:
    from calibration.engine import build_engine

    def build(model: Path, out: Path, precision: str, timing: Path) -> None:
        build_engine(model, out, precision, timing_cache=timing, trt=trt, gpu=ORIN.gpu,
                     log=lambda _: None)
    return build


def _ort(path: Path) -> Any:
    from edge.backends import load_backend

    return load_backend(path, "onnxruntime")


class Scrambled:
    """A backend whose answers are shifted by one class: never agrees."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.meta = inner, inner.meta

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.roll(v, 1, axis=1) for k, v in self.inner.infer(x).items()}

    def close(self) -> None:
        self.inner.close()


def test_selfcheck_passes_and_reuses_the_cached_engine(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    trt = make_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    lines: list[str] = []
    # the real TensorRT backend, over the stand-in's host-memory execution context
    kw: dict[str, Any] = dict(cache_dir=tmp_path / "engines", trt=trt, platform=ORIN,
                              builder=_builder(trt), repeats=2,
                              load_tensorrt=lambda p: TensorRTBackend(
                                  p, cuda=HostCudaMemory(trt), gpu=ORIN.gpu),
                              load_reference=_ort, out=lines.append)
    report = sc.run_selfcheck(**kw)
    assert report.ok, lines
    names = [s.name for s in report.steps]
    assert names == ["platform", "cache key", "engine", "layers", "agreement", "latency"]
    steps = {s.name: s for s in report.steps}
    assert steps["platform"].data["tensorrt"] == "10.3.0"
    assert steps["engine"].data["built"] is True
    assert steps["engine"].data["precision_check"] == "passed"
    assert steps["engine"].data["prepared"]["removed_output_qdq"] == 30
    assert steps["engine"].data["path"].endswith(steps["cache key"].data["key"] + ".engine")
    layers = steps["layers"].data["layers"]
    convs = [lay for lay in layers if lay["type"] == "Conv"]
    assert len(convs) == 30 and all("int8" in lay["dtypes"] for lay in convs)
    assert any(ln.startswith("    layer ") and "/model/emb_jcd/emb_jcd.0/emb_jcd.0.0/Conv" in ln
               for ln in lines)
    agree = steps["agreement"].data
    # 12 bundled clips back to back, a window every 4 frames
    assert agree["windows"] == 83 and agree["threshold"] == sc.DEFAULT_AGREEMENT
    # against the same INT8 model on ONNX Runtime (the gate), and FP32 for the record
    assert min(agree["agreement"].values()) >= sc.DEFAULT_AGREEMENT
    assert set(agree["agreement_fp32"]) == set(agree["agreement"])
    assert lines[0].startswith("[ok] platform: gpu Orin sm_87 16SM, l4t 36.4.0, tensorrt 10.3.0")

    again = sc.run_selfcheck(**kw)
    assert again.ok and {s.name: s for s in again.steps}["engine"].data["built"] is False


def test_selfcheck_fails_when_tensorrt_disagrees(tmp_path: Path) -> None:
    trt = make_tensorrt("10.3.0")
    lines: list[str] = []
    report = sc.run_selfcheck(cache_dir=tmp_path, trt=trt, platform=ORIN,
                              builder=_builder(trt), repeats=1,
                              load_tensorrt=lambda p: Scrambled(_ort(bundled_model("int8"))),
                              load_reference=_ort, out=lines.append)
    assert not report.ok
    failed = [s for s in report.steps if not s.ok]
    assert [s.name for s in failed] == ["agreement"]
    assert "(needs >= 90% per head); with the FP32 model: " in failed[0].detail
    assert failed[0].detail.endswith("(quantization's share, not checked here)")
    assert any(ln.startswith("[FAILED] agreement: top-1 agreement with ONNX Runtime running "
                             "the same INT8 model on 83 bundled windows") for ln in lines)


def test_a_mismatched_fp32_model_is_recorded_not_failed(tmp_path: Path) -> None:
    # the FP32 comparison is for the record: an FP32 model that cannot take these windows
    # (stgcn_tiny's 7 input channels) must not hide that TensorRT matched the INT8 model
    trt = make_tensorrt("10.3.0")
    other = Path(__file__).parent / "fixtures" / "stgcn_tiny" / "model.onnx"
    report = sc.run_selfcheck(cache_dir=tmp_path, trt=trt, platform=ORIN, fp32=other,
                              builder=_builder(trt), repeats=1,
                              load_tensorrt=lambda p: _ort(bundled_model("int8")),
                              load_reference=_ort, out=lambda _: None)
    steps = {s.name: s for s in report.steps}
    assert report.ok and list(steps) == STEPS
    assert steps["agreement"].data["agreement_fp32"] is None
    assert "; with the FP32 model: not compared (" in steps["agreement"].detail
    assert steps["latency"].detail.startswith("one window: TensorRT INT8 ")
    assert "ONNX Runtime INT8 (CPU)" in steps["latency"].detail


def test_selfcheck_reports_a_failed_build(tmp_path: Path) -> None:
    trt = make_tensorrt("10.3.0", int8_kernels=False)  # the engine would not run INT8
    report = sc.run_selfcheck(cache_dir=tmp_path, trt=trt, platform=ORIN,
                              builder=_builder(trt), out=lambda _: None)
    assert [(s.name, s.ok) for s in report.steps][-1] == ("engine", False)
    assert "does not compute in int8" in report.steps[-1].detail


def test_selfcheck_flags_an_engine_written_despite_its_precisions(tmp_path: Path) -> None:
    from calibration.engine import build_engine

    trt = make_tensorrt("10.3.0", int8_kernels=False)

    def forced(model: Path, out: Path, precision: str, timing: Path) -> None:
        build_engine(model, out, precision, timing_cache=timing, trt=trt, gpu=ORIN.gpu,
                     allow_precision_mismatch=True, log=lambda _: None)

    report = sc.run_selfcheck(cache_dir=tmp_path, trt=trt, platform=ORIN, builder=forced,
                              load_tensorrt=lambda p: _ort(bundled_model("int8")),
                              load_reference=_ort, repeats=1, out=lambda _: None)
    engine = {s.name: s for s in report.steps}["engine"]
    assert not report.ok and not engine.ok
    assert engine.data["precision_check"].startswith("overridden: no computing layer")


def test_selfcheck_without_tensorrt_says_so_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    parser = argparse.ArgumentParser()
    sc.add_arguments(parser)
    assert sc.main(parser.parse_args([])) == sc.EXIT_NO_TENSORRT == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith("skelmtl selfcheck: TensorRT's Python bindings "
                                               "are not importable")
    assert err[0].endswith("nothing to check on this machine (exit 3)")


def test_selfcheck_cli_writes_the_report_and_exits_1_on_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    trt = make_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    real = sc.run_selfcheck

    def with_stand_ins(**kw: Any) -> sc.SelfcheckReport:
        kw.update(platform=ORIN, builder=_builder(trt), repeats=1,
                  load_tensorrt=lambda p: Scrambled(_ort(bundled_model("int8"))),
                  load_reference=_ort)
        return real(**kw)

    monkeypatch.setattr(sc, "run_selfcheck", with_stand_ins)
    parser = argparse.ArgumentParser()
    sc.add_arguments(parser)
    args = parser.parse_args(["--cache", str(tmp_path / "c"), "--json", str(tmp_path / "r.json")])
    assert sc.main(args) == sc.EXIT_FAILED == 1
    assert capsys.readouterr().out.splitlines()[-1] == "selfcheck FAILED: agreement"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is False and report["steps"][4]["name"] == "agreement"
    with pytest.raises(sc.SkelmtlError, match="--agreement 1.5: give a fraction"):
        sc.main(parser.parse_args(["--agreement", "1.5"]))


STEPS = ["platform", "cache key", "engine", "layers", "agreement", "latency"]


def _selfcheck_the_shipped_model(cache: Path) -> sc.SelfcheckReport:
    """What ``pytest -m gpu`` runs on a Jetson: ``skelmtl selfcheck`` with its defaults (the
    detected platform, ``python -m skelmtl.cli build-engine`` in a child process building the
    shipped INT8 model, the TensorRT backend over pycuda or cuda-python, ONNX Runtime on the
    same INT8 model on the CPU as the reference), then the same check again from the cache."""
    lines: list[str] = []
    report = sc.run_selfcheck(cache_dir=cache, repeats=5, out=lines.append)
    assert report.ok, "\n".join(lines)
    steps = {s.name: s for s in report.steps}
    assert list(steps) == STEPS
    assert steps["engine"].data["built"] is True
    assert Path(steps["engine"].data["path"]).parent == cache
    assert not steps["engine"].data["precision_check"].startswith("overridden")
    agree = steps["agreement"].data["agreement"]
    assert set(agree) == {"logits_action", "logits_gesture", "task_logits"}
    assert min(agree.values()) >= sc.DEFAULT_AGREEMENT
    again = sc.run_selfcheck(cache_dir=cache, repeats=1, out=lines.append)
    assert again.ok and {s.name: s for s in again.steps}["engine"].data["built"] is False
    return report


@pytest.mark.gpu
def test_selfcheck_on_a_real_gpu(tmp_path: Path) -> None:
    """The shipped INT8 model built and compared with the installed TensorRT (needs
    TensorRT, a GPU and pycuda or cuda-python; any onnxruntime >= 1.16, no quantizer:
    run with ``pytest -m gpu`` on the Jetson, docs/jetson.md)."""
    pytest.importorskip("tensorrt", reason="needs TensorRT")
    _selfcheck_the_shipped_model(tmp_path / "engines")


def test_the_gpu_test_against_the_stand_in(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The gpu test's own code, with only what a Jetson provides replaced: the ``tensorrt``
    module, the platform probe, CUDA memory, and the build child (which would import the
    real ``tensorrt``) run in this process against the stand-in."""
    from edge.backends import tensorrt as trt_backend
    from edge.engine import cache as ec

    trt = make_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(ec, "detect_platform", lambda: ORIN)
    builds: list[tuple[str, ...]] = []

    def command_builder(cmd: Any, recipe: Any) -> Any:
        builds.append(tuple(cmd))
        return _builder(trt)

    monkeypatch.setattr(ec, "command_builder", command_builder)
    monkeypatch.setattr(trt_backend, "open_cuda", lambda which="auto", device=0:
                        HostCudaMemory(trt))
    report = _selfcheck_the_shipped_model(tmp_path / "engines")
    assert builds == [ec.DEFAULT_BUILD_CMD]  # built once, then taken from the cache
    layers = {s.name: s for s in report.steps}["layers"].data["layers"]
    assert sum("int8" in lay["dtypes"] for lay in layers if lay["type"] == "Conv") == 30
