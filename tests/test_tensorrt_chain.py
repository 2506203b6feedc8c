"""The TensorRT chain without torch or a GPU: build-engine -> engine file -> TensorRT backend.

What this proves: the shipped INT8 model, prepared for each TensorRT release and built by
the real ``calibration.engine`` against ``tests/fake_tensorrt``, loads in the real
``edge.backends.tensorrt.TensorRTBackend`` through the name-based I/O API (tensor
addresses, input shapes, ``execute_async_v3``), splits batches larger than the engine's
profile, and answers like ONNX Runtime running the same INT8 model on the bundled clips (as
skelmtl selfcheck compares them). Everything here
is torch-free, so the image and ``make test-oldest`` run it. What it cannot prove: the
numbers of a real engine; the stand-in executes the prepared ONNX with ONNX Runtime on the
CPU (the Q/DQ arithmetic simulated), so this checks the plumbing and the preparation's
arithmetic, and `skelmtl selfcheck` on a Jetson checks the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from calibration.engine import build_engine
from calibration.selfcheck import bundled_windows, top1_agreement
from edge.assets import bundled_model
from edge.backends import load_backend
from tests.fake_tensorrt import HostCudaMemory, call_names, make_tensorrt

GPU = "Orin sm_87 16SM"


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    # the reference skelmtl selfcheck uses: the same INT8 model on ONNX Runtime
    ort = load_backend(bundled_model("int8"), "onnxruntime")
    x = bundled_windows(ort.meta)
    return {"x": x, "int8": ort.infer(x)}


@pytest.mark.parametrize("version", ["8.5.2.2", "8.6.2", "10.3.0", "10.13.3", "11.4.1"])
def test_bundled_engine_runs_in_the_tensorrt_backend(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     reference: dict[str, object],
                                                     version: str) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    trt = make_tensorrt(version)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    engine = tmp_path / "model.int8.engine"
    build_engine(bundled_model("int8"), engine, "int8", max_batch=8, trt=trt, gpu=GPU,
                 log=lambda _: None)
    mem = HostCudaMemory(trt)
    backend = TensorRTBackend(engine, cuda=mem, gpu=GPU)
    try:
        assert backend.max_batch == 8 and backend.precision == "int8"
        x = reference["x"]
        assert isinstance(x, np.ndarray) and len(x) == 83  # > max_batch: 11 executions
        got = backend.infer(x)
        assert call_names(trt).count("IExecutionContext.execute_async_v3") == 11
        agree = top1_agreement(got, reference["int8"])  # type: ignore[arg-type]
        assert set(agree) == {"logits_action", "logits_gesture", "task_logits"}
        assert min(agree.values()) >= 0.90, agree  # skelmtl selfcheck's bar
    finally:
        backend.close()
    assert mem.closed
