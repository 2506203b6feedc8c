"""Run one converted landmark model (a plain tensor-in, tensors-out graph).

The project's :class:`edge.backends.base.Backend` serves skelmtl's own models (windows in,
logits out, checked against :class:`edge.core.metadata.ModelMeta`); MediaPipe's converted
models carry no such metadata, so they go through this smaller interface. It reuses the
backend's provider choice (:func:`edge.backends.onnxruntime.resolve_providers`): ``cpu``
here, ``cuda`` or ``tensorrt`` (ONNX Runtime's TensorRT execution provider, which builds
and caches the engine itself) on a Jetson or a desktop GPU.

Usage: model = open_tensor_model("pose_detector.onnx", providers="cpu"); model.run(x)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.backends.base import BackendError


class TensorModel(Protocol):
    """What the ONNX front end needs of a model: one input, named outputs.

    Attributes:
        path: the model file.
        input_shape: ``(1, H, W, 3)`` NHWC, as MediaPipe's models take it.
    """

    path: Path
    input_shape: tuple[int, ...]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``x``: float32 of ``input_shape`` -> output name -> array."""
        ...

    def close(self) -> None:
        """Free the session (idempotent)."""
        ...


class OrtTensorModel:
    """A converted ``.onnx`` landmark model on ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        providers: ``cpu``, ``cuda``, ``tensorrt``, ``best`` or provider names.
        intra_op_threads: threads inside one operator (0: ONNX Runtime's choice).
        trt_cache_dir: engine cache folder for the TensorRT execution provider (FP16).

    Raises:
        BackendError: a missing or unloadable file, an unavailable provider.
    """

    def __init__(self, path: str | os.PathLike[str], *, providers: str | Sequence[str] = "cpu",
                 intra_op_threads: int = 1, trt_cache_dir: str | None = None) -> None:
        import onnxruntime as ort

        from edge.backends.onnxruntime import resolve_providers

        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"{self.path}: no such model file; convert the landmark "
                               "models with 'skelmtl convert-landmarks'")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(intra_op_threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        chosen = resolve_providers(providers, ort.get_available_providers(), str(self.path))
        opts: list[dict[str, Any]] = [
            {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
             "trt_engine_cache_path": trt_cache_dir}
            if p == "TensorrtExecutionProvider" and trt_cache_dir else {} for p in chosen]
        try:
            self._sess: Any = ort.InferenceSession(str(self.path), sess_options=so,
                                                   providers=chosen, provider_options=opts)
        except Exception as e:  # onnxruntime's own exception types
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BackendError(f"{self.path}: not a loadable ONNX model ({msg[:300]})") from None
        inputs = self._sess.get_inputs()
        if len(inputs) != 1:
            raise BackendError(f"{self.path}: expected one input, found "
                               f"{[i.name for i in inputs]}")
        self._input = inputs[0].name
        self.input_shape = tuple(int(d) if isinstance(d, int) else 1 for d in inputs[0].shape)
        self.providers = self._sess.get_providers()

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self._sess is None:
            raise BackendError(f"{self.path}: model is closed")
        outs = self._sess.run(None, {self._input: np.ascontiguousarray(x, np.float32)})
        return {o.name: v for o, v in zip(self._sess.get_outputs(), outs)}

    def close(self) -> None:
        self._sess = None


def open_tensor_model(path: str | os.PathLike[str], **options: Any) -> TensorModel:
    """Open a converted model by suffix (``.onnx``: :class:`OrtTensorModel`).

    Raises:
        BackendError: a suffix no runner takes.
    """
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return OrtTensorModel(p, **options)
    raise BackendError(f"{p}: no landmark-model runner for suffix {p.suffix!r} (use .onnx; "
                       "on a GPU, providers='tensorrt' builds and caches the TensorRT engine)")
