"""TensorRT backend: a skelmtl engine file on an NVIDIA GPU (Jetson or desktop).

Usage: load_backend("model.int8.engine", "tensorrt", cuda="auto")

The file is a metadata header followed by the serialized engine
(:mod:`edge.engine.header`); before TensorRT deserialises anything the backend checks
that the file is trusted (owned by this user or root and not writable by others: an
engine is native code, :func:`edge.engine.header.check_engine_trust`), that its header
and SHA-256 verify, this package's layout and preprocessing version, the full TensorRT
version that built it (build number included) and the GPU it was built on
(:func:`edge.engine.header.check_engine_platform` with ``gpu=``; the GPU comes from
``SKELMTL_GPU`` or :func:`edge.engine.cache.detect_gpu`, and the check is skipped, with a
warning, only when no GPU description can be had).

CUDA memory comes from **pycuda** (what JetPack images ship) or **cuda-python**
(``cuda.bindings.runtime``, or the older ``cuda.cudart``), whichever is installed
(``cuda="auto"`` tries pycuda first). Per engine: page-locked (pinned) host buffers and
device buffers sized for the largest batch of the optimisation profile, one CUDA stream,
asynchronous host-to-device copy, ``execute``, asynchronous device-to-host copies, one
synchronise.

TensorRT APIs, chosen by what the installed version has (all imported lazily):

* TensorRT >= 8.5 (10, 11): name-based I/O tensors: ``num_io_tensors``,
  ``get_tensor_name/mode/dtype/shape``, ``context.set_input_shape``,
  ``context.set_tensor_address``, ``context.execute_async_v3(stream)``;
* TensorRT 8.x before that: bindings: ``num_bindings``, ``binding_is_input``,
  ``context.set_binding_shape``, ``context.execute_async_v2(bindings, stream)``.

Thread safety: one backend instance runs one inference at a time (a lock guards it).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import Backend, BackendError, check_output_widths
from edge.core.errors import SkelmtlError
from edge.core.metadata import INPUT_NAME
from edge.engine.header import (
    EngineHeader,
    check_engine_platform,
    check_engine_trust,
    read_engine,
)

LOG = logging.getLogger(__name__)


def current_gpu() -> str | None:
    """This machine's GPU description as the engine header records it (``SKELMTL_GPU``,
    else :func:`edge.engine.cache.detect_gpu`), or None when it cannot be found."""
    env = os.environ.get("SKELMTL_GPU")
    if env:
        return env
    from edge.engine.cache import detect_gpu

    try:
        return detect_gpu()
    except SkelmtlError:
        return None


class CudaMemory:
    """The CUDA operations the backend needs; one implementation per Python CUDA binding.

    ``pinned(shape, dtype)`` -> page-locked numpy array; ``device(nbytes)`` -> device
    pointer (int); ``htod(ptr, host)`` / ``dtoh(host, ptr)`` asynchronous copies on the
    one stream; ``stream_handle`` (int) for TensorRT; ``synchronize()``; ``close()``.
    """

    name = ""
    stream_handle: int = 0

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        raise NotImplementedError

    def device(self, nbytes: int) -> int:
        raise NotImplementedError

    def htod(self, ptr: int, host: np.ndarray) -> None:
        raise NotImplementedError

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    def activate(self) -> None:
        """Make this memory's CUDA context current in the calling thread."""

    def deactivate(self) -> None:
        """Undo :meth:`activate`."""

    def close(self) -> None:
        raise NotImplementedError


class PyCudaMemory(CudaMemory):
    """pycuda: the device's primary context (shared with other CUDA users in the process)."""

    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as cuda

        self._cuda = cuda
        cuda.init()
        self._ctx = cuda.Device(device).retain_primary_context()
        self._ctx.push()
        try:
            self._stream = cuda.Stream()
            self.stream_handle = int(self._stream.handle)
            self._allocs: list[Any] = []
        finally:
            self._ctx.pop()

    def activate(self) -> None:
        self._ctx.push()

    def deactivate(self) -> None:
        self._ctx.pop()

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        return np.asarray(self._cuda.pagelocked_empty(shape, dtype))

    def device(self, nbytes: int) -> int:
        mem = self._cuda.mem_alloc(max(1, nbytes))
        self._allocs.append(mem)
        return int(mem)

    def htod(self, ptr: int, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(ptr, host, self._stream)

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        self._cuda.memcpy_dtoh_async(host, ptr, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        if self._ctx is None:
            return
        self._ctx.push()
        try:
            for m in self._allocs:
                m.free()
            self._allocs.clear()
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None


class CudaPythonMemory(CudaMemory):
    """cuda-python's runtime API (``cuda.bindings.runtime`` or the older ``cuda.cudart``)."""

    name = "cuda-python"

    def __init__(self, device: int = 0) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self._rt = cudart
        self._check(cudart.cudaSetDevice(device), "cudaSetDevice")
        self._stream = self._check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.stream_handle = int(self._stream)
        self._host: list[int] = []
        self._dev: list[int] = []

    def _check(self, res: Any, what: str) -> Any:
        err, *rest = res if isinstance(res, tuple) else (res,)
        if int(err) != 0:
            raise BackendError(f"CUDA {what} failed: {err}")
        return rest[0] if len(rest) == 1 else rest

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        ptr = int(self._check(self._rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        self._host.append(ptr)
        buf = (ctypes.c_byte * nbytes).from_address(ptr)
        return np.frombuffer(memoryview(buf), dtype=dtype,
                             count=int(np.prod(shape))).reshape(shape)

    def device(self, nbytes: int) -> int:
        ptr = int(self._check(self._rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))
        self._dev.append(ptr)
        return ptr

    def htod(self, ptr: int, host: np.ndarray) -> None:
        self._check(self._rt.cudaMemcpyAsync(
            ptr, host.ctypes.data, host.nbytes,
            self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream), "cudaMemcpyAsync")

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        self._check(self._rt.cudaMemcpyAsync(
            host.ctypes.data, ptr, host.nbytes,
            self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream), "cudaMemcpyAsync")

    def synchronize(self) -> None:
        self._check(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def close(self) -> None:
        for p in self._dev:
            self._rt.cudaFree(p)
        for p in self._host:
            self._rt.cudaFreeHost(p)
        self._dev, self._host = [], []
        if self._stream is not None:
            self._rt.cudaStreamDestroy(self._stream)
            self._stream = None


def open_cuda(which: str | CudaMemory = "auto", device: int = 0) -> CudaMemory:
    """CUDA memory through ``pycuda``, ``cuda-python``, or the first installed (``auto``).

    Raises:
        BackendError: neither binding is installed (or the named one is not).
    """
    if not isinstance(which, str):
        return which  # any object with CudaMemory's methods (tests pass a host stand-in)
    order = {"auto": ("pycuda", "cuda-python"), "pycuda": ("pycuda",),
             "cuda-python": ("cuda-python",)}
    if which not in order:
        raise BackendError(f"cuda={which!r}: use 'auto', 'pycuda' or 'cuda-python'")
    errors = []
    for name in order[which]:
        try:
            return PyCudaMemory(device) if name == "pycuda" else CudaPythonMemory(device)
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise BackendError("the TensorRT backend needs pycuda (JetPack: pip install pycuda) or "
                       f"cuda-python (pip install cuda-python); none importable ({'; '.join(errors)})")


_NP_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
              "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}


@dataclass
class _Tensor:
    name: str
    index: int
    is_input: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]  # per-sample shape (without the batch axis)
    host: np.ndarray | None = None
    device: int = 0


class TensorRTBackend(Backend):
    """Runs a skelmtl engine file (header + serialized TensorRT engine).

    Args:
        path: the ``.engine`` file written by ``skelmtl build-engine``.
        cuda: ``auto``, ``pycuda``, ``cuda-python`` or a :class:`CudaMemory` (tests).
        device: CUDA device index.
        max_batch: largest batch per execution (default: the profile's maximum).
        check_platform: refuse an engine built by another TensorRT version or GPU.
        gpu: this machine's GPU description (default: :func:`current_gpu`).
        check_trust: refuse an engine file that another user could have written.

    Raises:
        BackendError: TensorRT or CUDA bindings missing, an engine TensorRT cannot load, or
            tensors that do not match the metadata.
        edge.engine.header.EngineHeaderError: not a skelmtl engine, corrupt or truncated,
            built elsewhere, or metadata that does not match this package.
    """

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], *, cuda: str | CudaMemory = "auto",
                 device: int = 0, max_batch: int | None = None, check_platform: bool = True,
                 gpu: str | None = None, check_trust: bool = True, **unknown: Any) -> None:
        if unknown:
            raise BackendError(f"tensorrt backend: unknown options {sorted(unknown)}")
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mem: CudaMemory | None = None
        if check_trust:
            check_engine_trust(self.path)
        self.header: EngineHeader
        self.header, blob = read_engine(self.path)
        self.meta = self.header.meta
        self.precision = self.header.precision
        try:
            trt = importlib.import_module("tensorrt")
        except ImportError:
            raise BackendError(f"{self.path}: the TensorRT backend needs the tensorrt Python "
                               "package (JetPack: apt install python3-libnvinfer); use the "
                               "onnxruntime backend with the .onnx model instead") from None
        self._trt = trt
        if check_platform:
            here = gpu if gpu is not None else current_gpu()
            if here is None:
                LOG.warning("%s: cannot identify this GPU (pycuda and nvidia-smi found none; "
                            "set SKELMTL_GPU); the engine's GPU %r is not checked", self.path,
                            self.header.gpu)
            check_engine_platform(self.header, tensorrt=str(trt.__version__), gpu=here,
                                  source=str(self.path))
        self._mem = open_cuda(cuda, device)
        self._mem.activate()
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            if hasattr(self._runtime, "engine_host_code_allowed"):
                # TensorRT 10+: refuse engines that carry host code (its default, set
                # explicitly so that no environment or wrapper turns it on for us)
                self._runtime.engine_host_code_allowed = False
            self._engine = self._runtime.deserialize_cuda_engine(blob)
            if self._engine is None:
                raise BackendError(f"{self.path}: TensorRT could not deserialise the engine "
                                   "(see the TensorRT log above)")
            self._context = self._engine.create_execution_context()
            self._named = hasattr(self._context, "execute_async_v3")
            self._tensors = self._describe()
            self.max_batch = self._max_batch(max_batch)
            self._allocate()
        except BaseException:
            self._mem.deactivate()
            self.close()
            raise
        self._mem.deactivate()

    # -- discovery -----------------------------------------------------------------------
    def _np_dtype(self, dt: Any) -> np.dtype:
        # Not trt.nptype(): TensorRT 8.5's (JetPack 5) maps BOOL to np.bool, which NumPy 1.24
        # removed, so it raises for every tensor with today's NumPy. Map by the enum's name.
        name = str(getattr(dt, "name", dt)).split(".")[-1].upper()
        if name not in _NP_DTYPES:
            raise BackendError(f"{self.path}: engine tensor type {name} has no NumPy type")
        return np.dtype(_NP_DTYPES[name])

    def _describe(self) -> list[_Tensor]:
        trt, e = self._trt, self._engine
        out: list[_Tensor] = []
        if self._named:
            for i in range(e.num_io_tensors):
                name = e.get_tensor_name(i)
                is_in = e.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                out.append(_Tensor(name, i, is_in, self._np_dtype(e.get_tensor_dtype(name)),
                                   tuple(int(d) for d in e.get_tensor_shape(name))[1:]))
        else:
            for i in range(e.num_bindings):
                out.append(_Tensor(e.get_binding_name(i), i, bool(e.binding_is_input(i)),
                                   self._np_dtype(e.get_binding_dtype(i)),
                                   tuple(int(d) for d in e.get_binding_shape(i))[1:]))
        inputs = [t.name for t in out if t.is_input]
        if inputs != [INPUT_NAME]:
            raise BackendError(f"{self.path}: engine inputs {inputs}, expected [{INPUT_NAME!r}]")
        p = self.meta.preprocess
        want = (p.channels, p.window, 75)
        x = next(t for t in out if t.is_input)
        if any(d != w for d, w in zip(x.shape, want) if d >= 0) or len(x.shape) != 3:
            raise BackendError(f"{self.path}: engine input (N, {x.shape}) does not match its "
                               f"metadata (N, {want})")
        x.shape = want
        names = sorted(t.name for t in out if not t.is_input)
        if names != sorted(self.meta.output_names()):
            raise BackendError(f"{self.path}: engine outputs {names} do not match its "
                               f"metadata {self.meta.output_names()}")
        # Widths the engine fixes (not -1, dynamic) must be the metadata's label counts:
        # refused here rather than at the first window (or naming the wrong label).
        check_output_widths(self.path, self.meta, {
            t.name: t.shape[0] if len(t.shape) == 1 and t.shape[0] >= 0 else None
            for t in out if not t.is_input})
        return out

    def _max_batch(self, asked: int | None) -> int:
        e = self._engine
        if self._named:
            if hasattr(e, "get_tensor_profile_shape"):
                prof_max = int(e.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
            else:
                prof_max = int(e.get_profile_shape(0, INPUT_NAME)[2][0])
            static = int(e.get_tensor_shape(INPUT_NAME)[0])
        else:
            i = next(t.index for t in self._tensors if t.is_input)
            static = int(e.get_binding_shape(i)[0])
            prof_max = int(e.get_profile_shape(0, i)[2][0]) if static < 0 else static
        limit = static if static > 0 else prof_max
        if asked is not None:
            if asked > limit:
                raise BackendError(f"{self.path}: max_batch {asked} exceeds the engine's "
                                   f"largest batch {limit}")
            return asked
        return max(1, limit)

    def _allocate(self) -> None:
        assert self._mem is not None
        for t in self._tensors:
            shape = (self.max_batch, *t.shape)
            t.host = self._mem.pinned(shape, t.dtype)
            t.device = self._mem.device(t.host.nbytes)
            if self._named:
                self._context.set_tensor_address(t.name, t.device)

    # -- inference -----------------------------------------------------------------------
    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = self.check_input(x)
        parts = [self._run(x[i: i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self._mem is None:
            raise BackendError(f"{self.path}: backend is closed")
        n = len(x)
        inp = next(t for t in self._tensors if t.is_input)
        outs = [t for t in self._tensors if not t.is_input]
        assert inp.host is not None
        with self._lock:
            mem = self._mem
            mem.activate()
            try:
                shape = (n, *inp.shape)
                host_in = inp.host[:n]
                host_in[...] = x  # casts to the engine's input dtype (fp32, or fp16)
                mem.htod(inp.device, host_in)
                if self._named:
                    self._context.set_input_shape(INPUT_NAME, shape)
                    ok = self._context.execute_async_v3(mem.stream_handle)
                else:
                    self._context.set_binding_shape(inp.index, shape)
                    bindings = [0] * len(self._tensors)
                    for t in self._tensors:
                        bindings[t.index] = t.device
                    ok = self._context.execute_async_v2(bindings, mem.stream_handle)
                if not ok:
                    raise BackendError(f"{self.path}: TensorRT execution failed")
                hosts = [t.host[:n] for t in outs if t.host is not None]
                for t, h in zip(outs, hosts):
                    mem.dtoh(h, t.device)
                mem.synchronize()
                return {t.name: np.array(h, dtype=np.float32) for t, h in zip(outs, hosts)}
            finally:
                mem.deactivate()

    def close(self) -> None:
        for attr in ("_context", "_engine", "_runtime"):
            if hasattr(self, attr):
                setattr(self, attr, None)
        if self._mem is not None:
            self._mem.close()
            self._mem = None

    def __repr__(self) -> str:
        mem = self._mem.name if self._mem is not None else "closed"
        return (f"TensorRTBackend({str(self.path)!r}, TensorRT {self.header.tensorrt}, "
                f"{self.precision}, {mem})")
