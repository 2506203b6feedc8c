"""Backends: ONNX Runtime (metadata checks, bad files, providers), torch vs ONNX Runtime output
agreement on real windows, TensorRT plumbing with a stand-in module (the GPU part is
marked ``gpu``)."""

from __future__ import annotations

import enum
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.backends import available_backends, load_backend
from edge.backends.base import BackendError
from edge.backends.onnxruntime import OnnxRuntimeBackend, resolve_providers
from edge.core.metadata import META_KEY, MetadataError, ModelMeta
from edge.core.preprocess import PREPROCESS_VERSION
from edge.engine.header import (
    EngineHeader,
    EngineHeaderError,
    tensorrt_version_parts,
    write_engine,
)
from edge.runtime.stream import batch_inputs
from tests.runtime_models import (
    export_onnx,
    reference,
    synthetic_frames,
    tiny_int8_onnx,
    tiny_meta,
    tiny_onnx,
    tiny_torch,
    volleyball_sequence,
)

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx")


def _with_meta(src: Path, dst: Path, value: str | None) -> Path:
    m = onnx.load(str(src))
    del m.metadata_props[:]
    if value is not None:
        e = m.metadata_props.add()
        e.key, e.value = META_KEY, value
    onnx.save(m, str(dst))
    return dst


# -- ONNX Runtime -----------------------------------------------------------------------
def test_onnxruntime_reads_metadata_and_runs(tiny: Path) -> None:
    b = load_backend(tiny)  # auto: by suffix
    assert isinstance(b, OnnxRuntimeBackend) and b.providers == ["CPUExecutionProvider"]
    assert b.meta == tiny_meta() and b.precision == "fp32"
    x = np.random.default_rng(0).standard_normal((3, 7, 16, 75)).astype(np.float32)
    out = b.infer(x)
    assert {k: v.shape for k, v in out.items()} == {
        "logits_action": (3, 3), "logits_gesture": (3, 4), "task_logits": (3, 2)}
    ref = reference(tiny_meta(), x)
    for k, v in out.items():
        np.testing.assert_allclose(v, ref[k], rtol=1e-4, atol=1e-5)
    with pytest.raises(BackendError, match=r"input \(3, 7, 32, 75\) does not match"):
        b.infer(np.zeros((3, 7, 32, 75), np.float32))
    b.close()


def test_fixed_batch_one_graph_runs_window_by_window(tmp_path: Path) -> None:
    meta = tiny_meta()
    path = tiny_onnx(tmp_path / "b1.onnx", meta, batch=1)
    b = OnnxRuntimeBackend(path)
    x = np.random.default_rng(1).standard_normal((4, 7, 16, 75)).astype(np.float32)
    out = b.infer(x)
    one = b.infer(x[2:3])
    np.testing.assert_allclose(out["logits_gesture"][2], one["logits_gesture"][0], rtol=1e-6)
    np.testing.assert_allclose(out["logits_gesture"], reference(meta, x)["logits_gesture"],
                               rtol=1e-4, atol=1e-5)


def test_onnxruntime_runs_a_qdq_int8_model(tmp_path: Path) -> None:
    """A Q/DQ model (the form calibrate writes) runs with the INT8 numbers: the reference's
    fake quantization, not the float network's. The tolerance covers a tanh output on a
    rounding boundary landing in the next INT8 step (measured: 1.5e-3 at most here)."""
    meta = tiny_meta()
    b = OnnxRuntimeBackend(tiny_int8_onnx(tmp_path / "m.int8.onnx", meta))
    assert b.precision == "int8" and b.meta == meta.with_(precision="int8")
    x = np.random.default_rng(0).standard_normal((3, 7, 16, 75)).astype(np.float32)
    out = b.infer(x)
    int8, fp32 = reference(meta, x, int8=True), reference(meta, x)
    for k in int8:
        np.testing.assert_allclose(out[k], int8[k], atol=5e-3, err_msg=k)
        assert np.abs(out[k] - fp32[k]).max() > 1e-4, k  # really quantized
    b.close()


def test_tiny_models_are_deterministic(tmp_path: Path) -> None:
    """tests/fixtures/make_runtime_models.py writes the same bytes for the same arguments."""
    a = tiny_onnx(tmp_path / "a.onnx").read_bytes()
    assert a == tiny_onnx(tmp_path / "b.onnx").read_bytes()
    assert a != tiny_onnx(tmp_path / "c.onnx", seed=1).read_bytes()


def test_tiny_torch_twin_computes_the_numpy_reference() -> None:
    """The torch twin of the fixture network (for the tests that compare with PyTorch)
    computes what the numpy reference, and so the ONNX files, compute."""
    torch = pytest.importorskip("torch")
    meta = tiny_meta()
    x = np.random.default_rng(2).standard_normal((2, 7, 16, 75)).astype(np.float32)
    with torch.no_grad():
        got = tiny_torch(meta)(torch.from_numpy(x))
    for k, v in reference(meta, x).items():
        np.testing.assert_allclose(got[k].numpy(), v, rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("change,match", [
    (lambda d: d["preprocess"].update(version=99),
     f"preprocessing version 99 does not match this package's {PREPROCESS_VERSION}"),
    (lambda d: d["preprocess"].update(layout="coco17"), "layout 'coco17' does not match"),
    (lambda d: d.update(schema=7), "metadata schema 7"),
    (lambda d: d.update(surprise=1), r"unknown metadata keys \['surprise'\]"),
])
def test_model_with_wrong_metadata_is_refused(tiny: Path, tmp_path: Path, change: Any,
                                              match: str) -> None:
    d = tiny_meta().to_dict()
    change(d)
    bad = _with_meta(tiny, tmp_path / "bad.onnx", json.dumps(d))
    with pytest.raises(MetadataError, match=match) as e:
        OnnxRuntimeBackend(bad)
    assert str(bad) in str(e.value)


@pytest.mark.parametrize("value,match", [
    (None, "no 'skelmtl' metadata; export the model with 'skelmtl export'"),
    ("{not json", "metadata is not JSON"),
])
def test_model_without_metadata_is_refused(tiny: Path, tmp_path: Path, value: str | None,
                                           match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        OnnxRuntimeBackend(_with_meta(tiny, tmp_path / "x.onnx", value))


def test_graph_that_contradicts_its_metadata_is_refused(tiny: Path, tmp_path: Path) -> None:
    no_head = tiny_meta(has_task_head=False)
    with pytest.raises(BackendError, match="graph outputs .* do not match its metadata"):
        OnnxRuntimeBackend(_with_meta(tiny, tmp_path / "a.onnx", no_head.to_json()))
    longer = tiny_meta(window=32)
    with pytest.raises(BackendError, match=r"input shape .* does not match its metadata "
                                           r"\(N, 7, 32, 75\)"):
        OnnxRuntimeBackend(_with_meta(tiny, tmp_path / "b.onnx", longer.to_json()))


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty"])
def test_corrupt_onnx_is_refused_naming_the_file(tiny: Path, tmp_path: Path, how: str) -> None:
    data = tiny.read_bytes()
    bad = tmp_path / f"{how}.onnx"
    bad.write_bytes({"garbage": b"\x08\x01not a protobuf" * 50,
                     "truncated": data[: len(data) // 2], "empty": b""}[how])
    with pytest.raises(BackendError, match=rf"{bad}: not a loadable ONNX model"):
        OnnxRuntimeBackend(bad)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="no such model file"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx")


@pytest.mark.parametrize("requested,available,expected", [
    ("cpu", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("best", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("best", ["CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ("tensorrt", ["TensorrtExecutionProvider", "CPUExecutionProvider"],
     ["TensorrtExecutionProvider", "CPUExecutionProvider"]),
    (["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CPUExecutionProvider"]),
])
def test_resolve_providers(requested: Any, available: list[str], expected: list[str]) -> None:
    assert resolve_providers(requested, available) == expected


@pytest.mark.parametrize("requested,match", [
    ("cuda", r"execution provider \['CUDAExecutionProvider'\] not available"),
    ("gpu", "unknown provider 'gpu'"),
    (["TensorrtExecutionProvider"], "not available"),
])
def test_resolve_providers_refuses_what_is_not_there(requested: Any, match: str) -> None:
    with pytest.raises(BackendError, match=match):
        resolve_providers(requested, ["CPUExecutionProvider"])


def test_unknown_backend_options_and_names(tiny: Path) -> None:
    with pytest.raises(BackendError, match=r"unknown options \['gpus'\]"):
        load_backend(tiny, "onnxruntime", gpus=2)
    with pytest.raises(BackendError, match="unknown backend 'tflite'"):
        load_backend(tiny, "tflite")
    assert "torch" in available_backends()


# -- output agreement: every backend available here against the torch model ----------
@pytest.fixture(scope="module")
def stgcn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A (random-weight) stgcn_tiny: its checkpoint, its ONNX export, the module itself.

    These tests compare with PyTorch: without torch they skip (here, and only here)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("trainer.models")
    from trainer.checkpoint import save_checkpoint
    from trainer.models import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("stgcn")
    meta = tiny_meta()
    model = create_model("stgcn_tiny", in_channels=meta.preprocess.channels,
                         tasks={t: len(meta.labels[t]) for t in meta.tasks}).eval()
    ckpt = save_checkpoint(folder / "best.pt", model, meta)
    meta = meta.with_(model_name="stgcn_tiny", model_args=dict(model.model_args))
    return {"model": model, "torch": ckpt, "onnxruntime": export_onnx(model, meta,
                                                                       folder / "m.onnx")}


def _real_windows(shared_data: Path) -> np.ndarray:
    f, m = volleyball_sequence(shared_data, "pointL", 1)
    return batch_inputs(f, m, tiny_meta().preprocess, stride=7)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_backends_agree_with_the_torch_model(stgcn: dict[str, Any], backend: str,
                                             shared_data: Path) -> None:
    torch = pytest.importorskip("torch")
    x = _real_windows(shared_data)
    assert x.shape == (3, 7, 16, 75)
    with torch.no_grad():
        ref = {k: v.numpy() for k, v in stgcn["model"](torch.from_numpy(x)).items()}
    b = load_backend(stgcn[backend], backend)
    assert b.meta.tasks == ("action", "gesture") and b.meta.has_task_head
    out = b.infer(x)
    assert sorted(out) == sorted(ref)
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-4, atol=1e-4, err_msg=k)
    b.close()


def test_torch_backend_refuses_unknown_options(stgcn: dict[str, Any]) -> None:
    with pytest.raises(BackendError, match=r"unknown options \['providers'\]"):
        load_backend(stgcn["torch"], "torch", providers="cpu")


def test_torch_checkpoint_whose_heads_contradict_its_metadata(stgcn: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """A checkpoint listing 5 gesture labels for a 4-logit head is refused at load, not at
    its first window."""
    from trainer.checkpoint import save_checkpoint

    meta = tiny_meta()
    wrong = meta.with_(labels={**meta.labels, "gesture": (*meta.labels["gesture"], "clap")})
    path = save_checkpoint(tmp_path / "best.pt", stgcn["model"], wrong)
    with pytest.raises(BackendError) as e:
        load_backend(path, "torch")
    assert str(e.value) == (f"{path}: output logits_gesture has width 4 but the metadata "
                            "lists 5 labels of task 'gesture'")


# -- TensorRT with a stand-in module --------------------------------------------------------
class FakeMemory:
    """CudaMemory on the host: 'device pointers' index numpy byte buffers."""

    name = "fake"
    stream_handle = 1234

    def __init__(self) -> None:
        self.dev: dict[int, np.ndarray] = {}
        self.syncs = 0
        self.pinned_shapes: list[tuple[int, ...]] = []
        self.closed = False

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        self.pinned_shapes.append(tuple(shape))
        return np.zeros(shape, dtype)

    def device(self, nbytes: int) -> int:
        ptr = 0x1000 * (len(self.dev) + 1)
        self.dev[ptr] = np.zeros(nbytes, np.uint8)
        return ptr

    def htod(self, ptr: int, host: np.ndarray) -> None:
        self.dev[ptr][: host.nbytes] = np.ascontiguousarray(host).view(np.uint8).ravel()

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        host.view(np.uint8).ravel()[:] = self.dev[ptr][: host.nbytes]

    def synchronize(self) -> None:
        self.syncs += 1

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _fake_weights(meta: ModelMeta) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    p = meta.preprocess
    k = {n: (len(meta.labels[n[len("logits_"):]]) if n.startswith("logits_") else
             len(meta.tasks)) for n in meta.output_names()}
    return {n: rng.standard_normal((p.channels, v)).astype(np.float32) for n, v in k.items()}


def fake_reference(meta: ModelMeta, x: np.ndarray) -> dict[str, np.ndarray]:
    """What the stand-in engine computes: channel means times fixed weights."""
    h = x.mean(axis=(2, 3))
    return {n: h @ w for n, w in _fake_weights(meta).items()}


def make_fake_tensorrt(memory: FakeMemory, *, named: bool, version: str = "10.3.0",
                       max_batch: int = 4) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class TensorIOMode:
        INPUT, OUTPUT = "in", "out"

    class Engine:
        def __init__(self, meta: ModelMeta) -> None:
            p = meta.preprocess
            self.meta = meta
            self.io = [("input", True, (-1, p.channels, p.window, 75))] + [
                (n, False, (-1, w.shape[1])) for n, w in _fake_weights(meta).items()]
            self.num_io_tensors = self.num_bindings = len(self.io)

        def create_execution_context(self) -> Any:
            return (NamedContext if named else BindingsContext)(self)

        # TensorRT 10 names
        def get_tensor_name(self, i: int) -> str:
            return self.io[i][0]

        def _by_name(self, name: str) -> tuple[str, bool, tuple[int, ...]]:
            return next(t for t in self.io if t[0] == name)

        def get_tensor_mode(self, name: str) -> str:
            return TensorIOMode.INPUT if self._by_name(name)[1] else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> enum.Enum:
            return trt.DataType.FLOAT

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self._by_name(name)[2]

        def get_tensor_profile_shape(self, name: str, profile: int) -> Any:
            s = self._by_name(name)[2]
            return [(1, *s[1:]), (1, *s[1:]), (max_batch, *s[1:])]

        # TensorRT 8 bindings
        def get_binding_name(self, i: int) -> str:
            return self.io[i][0]

        def binding_is_input(self, i: int) -> bool:
            return self.io[i][1]

        def get_binding_dtype(self, i: int) -> enum.Enum:
            return trt.DataType.FLOAT

        def get_binding_shape(self, i: int) -> tuple[int, ...]:
            return self.io[i][2]

        def get_profile_shape(self, profile: int, i: int) -> Any:
            s = self.io[i][2]
            return [(1, *s[1:]), (1, *s[1:]), (max_batch, *s[1:])]

    class BaseContext:
        def __init__(self, engine: Engine) -> None:
            self.engine = engine
            self.shape: tuple[int, ...] | None = None
            self.streams: list[int] = []

        def _execute(self, ptrs: dict[str, int], stream: int) -> bool:
            assert self.shape is not None
            self.streams.append(stream)
            n = self.shape[0]
            size = int(np.prod(self.shape))
            x = memory.dev[ptrs["input"]][: size * 4].view(np.float32).reshape(self.shape)
            for name, y in fake_reference(self.engine.meta, x).items():
                memory.dev[ptrs[name]][: y.nbytes] = y.astype(np.float32).view(np.uint8).ravel()
            assert n <= max_batch
            return True

    class NamedContext(BaseContext):
        def __init__(self, engine: Engine) -> None:
            super().__init__(engine)
            self.addr: dict[str, int] = {}

        def set_tensor_address(self, name: str, ptr: int) -> None:
            self.addr[name] = ptr

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shape = tuple(shape)
            return True

        def execute_async_v3(self, stream: int) -> bool:
            return self._execute(self.addr, stream)

    class BindingsContext(BaseContext):
        def set_binding_shape(self, i: int, shape: tuple[int, ...]) -> bool:
            self.shape = tuple(shape)
            return True

        def execute_async_v2(self, bindings: list[int], stream: int) -> bool:
            return self._execute({t[0]: bindings[i] for i, t in enumerate(self.engine.io)},
                                 stream)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, blob: bytes) -> Engine | None:
            try:
                return Engine(ModelMeta.from_json(blob, source="fake engine"))
            except MetadataError:
                return None

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.TensorIOMode = TensorIOMode  # type: ignore[attr-defined]
    trt.Runtime = Runtime  # type: ignore[attr-defined]
    trt.DataType = enum.Enum("DataType", "FLOAT HALF INT8 INT32 BOOL")  # type: ignore[attr-defined]

    def nptype(dt: enum.Enum) -> type:  # TensorRT 8.5's, under NumPy >= 1.24: never called
        raise AttributeError("module 'numpy' has no attribute 'bool'")

    trt.nptype = nptype  # type: ignore[attr-defined]
    return trt


def _engine_file(path: Path, meta: ModelMeta, tensorrt: str = "10.3.0",
                 blob: bytes | None = None) -> Path:
    header = EngineHeader(meta=meta, precision=meta.precision, tensorrt=tensorrt,
                          build={"min_batch": 1, "opt_batch": 1, "max_batch": 4})
    return write_engine(path, header, blob if blob is not None else meta.to_json().encode())


@pytest.mark.parametrize("named", [True, False], ids=["trt10-named", "trt8-bindings"])
def test_tensorrt_backend_plumbing_with_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 named: bool) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    mem = FakeMemory()
    monkeypatch.setitem(sys.modules, "tensorrt",
                        make_fake_tensorrt(mem, named=named, version="10.3.0" if named else
                                           "8.4.3"))
    meta = tiny_meta(precision="int8")
    path = _engine_file(tmp_path / "m.engine", meta, "10.3.0" if named else "8.4.3")
    b = load_backend(path, "auto", cuda=mem)
    assert isinstance(b, TensorRTBackend)
    assert b.meta == meta and b.precision == "int8" and b.max_batch == 4
    # Pinned host buffers sized for the profile's largest batch, one per I/O tensor.
    assert sorted(mem.pinned_shapes) == sorted([(4, 7, 16, 75), (4, 3), (4, 4), (4, 2)])
    x = np.random.default_rng(3).standard_normal((10, 7, 16, 75)).astype(np.float32)
    out = b.infer(x)  # 10 windows run as batches of 4, 4, 2
    ref = fake_reference(meta, x)
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-6)
    assert mem.syncs == 3
    b.close()
    assert mem.closed


def test_tensorrt_engine_from_another_version_is_refused(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    mem = FakeMemory()
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(mem, named=True,
                                                                    version="10.7.0"))
    path = _engine_file(tmp_path / "m.engine", tiny_meta(), "10.3.0")
    with pytest.raises(EngineHeaderError, match="built by TensorRT 10.3.0, this is TensorRT "
                                                "10.7.0"):
        TensorRTBackend(path, cuda=mem)


def test_tensorrt_engine_that_does_not_deserialise(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    mem = FakeMemory()
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(mem, named=True))
    path = _engine_file(tmp_path / "m.engine", tiny_meta(), blob=b"not an engine")
    with pytest.raises(BackendError, match="TensorRT could not deserialise the engine"):
        TensorRTBackend(path, cuda=mem)
    assert mem.closed


@pytest.mark.parametrize("named", [True, False], ids=["trt10-named", "trt8-bindings"])
def test_tensorrt_engine_whose_widths_contradict_its_metadata(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: bool) -> None:
    """The header lists 5 gesture labels, the engine computes 4 logits: refused at load."""
    from edge.backends.tensorrt import TensorRTBackend

    mem = FakeMemory()
    version = "10.3.0" if named else "8.4.3"
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(mem, named=named,
                                                                    version=version))
    graph = tiny_meta(precision="int8")  # what the stand-in engine computes
    header = graph.with_(labels={**graph.labels,
                                 "gesture": (*graph.labels["gesture"], "clap")})
    path = _engine_file(tmp_path / "m.engine", header, version,
                        blob=graph.to_json().encode())
    with pytest.raises(BackendError) as e:
        TensorRTBackend(path, cuda=mem)
    assert str(e.value) == (f"{path}: output logits_gesture has width 4 but the metadata "
                            "lists 5 labels of task 'gesture'")
    assert mem.closed


def test_tensorrt_missing_module_says_what_to_install(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    path = _engine_file(tmp_path / "m.engine", tiny_meta())
    with pytest.raises(BackendError, match="needs the tensorrt Python package"):
        TensorRTBackend(path)


@pytest.mark.parametrize("how,match", [
    ("truncated", "truncated or appended file"),
    ("plain", "not a skelmtl engine file"),
])
def test_tensorrt_bad_engine_files(tmp_path: Path, how: str, match: str) -> None:
    from edge.backends.tensorrt import TensorRTBackend

    path = _engine_file(tmp_path / "m.engine", tiny_meta())
    data = path.read_bytes()
    path.write_bytes(data[:-5] if how == "truncated" else b"PLANFILE" + data[40:])
    with pytest.raises(EngineHeaderError, match=match):
        TensorRTBackend(path)


def test_open_cuda_without_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.backends.tensorrt import open_cuda

    for mod in ("pycuda", "pycuda.driver", "cuda", "cuda.bindings", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(BackendError, match="needs pycuda .* or cuda-python"):
        open_cuda("auto")
    with pytest.raises(BackendError, match="cuda='cupy'"):
        open_cuda("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("cuda", ["pycuda", "cuda-python"])
def test_tensorrt_engine_agrees_with_onnxruntime_on_gpu(tiny: Path, tmp_path: Path,
                                                       cuda: str) -> None:
    """Build a real FP32 engine from the tiny ONNX and compare with ONNX Runtime."""
    trt = pytest.importorskip("tensorrt", reason="needs TensorRT")
    pytest.importorskip("pycuda.driver" if cuda == "pycuda" else "cuda",
                        reason=f"needs {cuda}")
    from edge.backends.tensorrt import TensorRTBackend

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if tensorrt_version_parts(trt.__version__)[0] >= 10 else \
        1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(tiny.read_bytes()), parser.get_error(0)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 7, 16, 75), (2, 7, 16, 75), (8, 7, 16, 75))
    config.add_optimization_profile(profile)
    blob = bytes(builder.build_serialized_network(network, config))
    meta = OnnxRuntimeBackend(tiny).meta
    header = EngineHeader(meta=meta, precision="fp32", tensorrt=trt.__version__,
                          build={"min_batch": 1, "opt_batch": 2, "max_batch": 8})
    path = write_engine(tmp_path / "tiny.engine", header, blob)
    f, m = synthetic_frames(60, hand_speed=0.03)
    x = batch_inputs(f, m, meta.preprocess, stride=4)
    ref = OnnxRuntimeBackend(tiny).infer(x)
    b = TensorRTBackend(path, cuda=cuda)
    out = b.infer(x)
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-3, atol=1e-4)
    b.close()


def test_pipeline_on_a_checkpoint_matches_its_onnx_export(stgcn: dict[str, Any],
                                                          shared_data: Path) -> None:
    """``backend="auto"`` opens a .pt through the torch entry point; same numbers as ONNX."""
    from edge.runtime.pipeline import Pipeline

    f, m = volleyball_sequence(shared_data, "Substi", 3)
    results = []
    for key in ("torch", "onnxruntime"):
        pipe = Pipeline.from_model(stgcn[key], task="auto")
        assert pipe.graphs[0].name == key
        for i in range(len(f)):
            pipe.push((f[i], m[i], i / 30))
        assert pipe.windows == (30 - 16) // 4 + 1 and pipe.last_result is not None
        results.append(pipe.last_result)
    a, b = results
    assert a.task == b.task and a.label == b.label
    np.testing.assert_allclose(a.smoothed, b.smoothed, rtol=1e-4, atol=1e-5)
