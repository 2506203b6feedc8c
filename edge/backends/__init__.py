"""Inference backends behind one interface, chosen by name.

Built-in backends are listed in :data:`BACKENDS` as ``name -> "module:Class"`` and
imported only when chosen (so ``tensorrt`` or ``onnxruntime`` are never imported unless
used). Other packages add backends through the ``skelmtl.backends`` entry-point group;
the trainer registers ``torch`` that way, so edge never imports torch or trainer.

May import: edge.core and edge.engine (an engine file's header); onnxruntime, onnx,
TensorRT, pycuda and cuda-python inside the functions that need them. The PyTorch
backend is the trainer's, found through the ``skelmtl.backends`` entry point, never
imported.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from edge.backends.base import Backend, BackendError

BACKENDS: dict[str, str] = {
    "onnxruntime": "edge.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "edge.backends.tensorrt:TensorRTBackend",
}
# Which backend "auto" picks for a model file, by suffix.
AUTO_BY_SUFFIX: dict[str, str] = {".onnx": "onnxruntime", ".engine": "tensorrt",
                                  ".plan": "tensorrt", ".pt": "torch", ".ckpt": "torch"}


def _entry_points(group: str) -> list[Any]:
    eps = entry_points()
    if hasattr(eps, "select"):  # Python >= 3.10
        return list(eps.select(group=group))
    return list(eps.get(group, ()))  # Python 3.8/3.9 (JetPack 5): a dict of lists


def available_backends() -> dict[str, str]:
    """Built-in backends plus those registered under the ``skelmtl.backends`` entry points."""
    found = dict(BACKENDS)
    for ep in _entry_points("skelmtl.backends"):
        found.setdefault(ep.name, ep.value)
    return found


def load_backend(model: str | Path, name: str = "auto", **options: Any) -> Backend:
    """Open ``model`` with the backend ``name`` (or by file suffix for ``"auto"``).

    Raises:
        BackendError: unknown backend name, or no backend for the file's suffix.
    """
    model = Path(model)
    known = available_backends()
    if name == "auto":
        suffix = model.suffix.lower()
        if suffix not in AUTO_BY_SUFFIX:
            raise BackendError(f"{model}: cannot choose a backend for suffix {suffix!r}; "
                               f"name one of {sorted(known)}")
        name = AUTO_BY_SUFFIX[suffix]
    if name not in known:
        raise BackendError(f"unknown backend {name!r}; available: {sorted(known)}")
    module_name, _, cls_name = known[name].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    backend: Backend = cls(model, **options)
    return backend


__all__ = ["BACKENDS", "Backend", "BackendError", "available_backends", "load_backend"]
