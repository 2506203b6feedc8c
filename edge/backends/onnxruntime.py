"""ONNX Runtime backend: the embedded default (CPU), CUDA / TensorRT providers on request.

Usage: load_backend("model.onnx", "onnxruntime", providers="cpu", intra_op_threads=2)

The model's :class:`~edge.core.metadata.ModelMeta` is read from the ONNX ``metadata_props``
entry ``skelmtl`` (:data:`edge.core.metadata.META_KEY`) and checked against this package
(layout, preprocessing version); the graph's input and outputs are checked against it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import Backend, BackendError, check_output_widths, output_widths
from edge.core.metadata import INPUT_NAME, META_KEY, MetadataError, ModelMeta

# Short names for execution providers; "best" takes the fastest one installed.
PROVIDER_NAMES = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def resolve_providers(requested: str | Sequence[str], available: Sequence[str],
                      source: str = "model") -> list[str]:
    """Execution providers for a request.

    Args:
        requested: ``cpu`` (default), ``cuda``, ``tensorrt``, ``best`` (the first installed of
            TensorRT, CUDA, CPU), or a list of ONNX Runtime provider names.
        available: ``onnxruntime.get_available_providers()``.

    Raises:
        BackendError: a named provider that this onnxruntime does not have.
    """
    if isinstance(requested, str):
        if requested == "best":
            requested = next(n for n in ("tensorrt", "cuda", "cpu")
                             if PROVIDER_NAMES[n][0] in available or n == "cpu")
        if requested not in PROVIDER_NAMES:
            raise BackendError(f"{source}: unknown provider {requested!r}; use "
                               f"{sorted(PROVIDER_NAMES) + ['best']} or provider names")
        wanted = list(PROVIDER_NAMES[requested])
        needed = wanted[:1]  # the asked-for one must exist; fallbacks are optional
    else:
        wanted = needed = list(requested)
    missing = [p for p in needed if p not in available]
    if missing or not wanted:
        raise BackendError(f"{source}: execution provider {missing or wanted} not available "
                           f"in this onnxruntime (it has {list(available)}); install "
                           f"onnxruntime-gpu or JetPack's onnxruntime for CUDA/TensorRT")
    return [p for p in wanted if p in available]


def read_onnx_meta(path: str | os.PathLike[str], custom: dict[str, str]) -> ModelMeta:
    """The ModelMeta stored under ``META_KEY`` in an ONNX model's custom metadata."""
    if META_KEY not in custom:
        raise MetadataError(f"{path}: no {META_KEY!r} metadata; export the model with "
                            f"'skelmtl export' (found keys {sorted(custom)})")
    return ModelMeta.from_json(custom[META_KEY], source=str(path))


class OnnxRuntimeBackend(Backend):
    """Runs an exported ``.onnx`` model with ONNX Runtime.

    Args:
        path: the ``.onnx`` file (FP32, FP16 or INT8 Q/DQ).
        providers: see :func:`resolve_providers`; CPU by default.
        intra_op_threads: threads inside one operator (0 = ONNX Runtime's choice).
        inter_op_threads: threads across operators (0 = ONNX Runtime's choice).
        graph_optimization: ``all``, ``extended``, ``basic`` or ``none``.
        trt_cache_dir: engine cache folder for the TensorRT execution provider.
        fold_relu: on the CPU provider, fold a Q/DQ model's Relus into uint8 quantisation
            (:mod:`edge.backends.qdq`; the file is not changed). Ignored for other providers.

    Attributes:
        relus_folded: how many Relus the CPU rewrite folded (0: none, or not applied).

    Raises:
        BackendError: unreadable or corrupt file, unavailable provider, a graph whose inputs
            or outputs do not match its metadata.
        MetadataError: missing metadata, or metadata that does not match this package.
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, providers: str | Sequence[str] = "cpu",
                 intra_op_threads: int = 0, inter_op_threads: int = 0,
                 graph_optimization: str = "all", trt_cache_dir: str | None = None,
                 fold_relu: bool = True, **unknown: Any) -> None:
        if unknown:
            raise BackendError(f"onnxruntime backend: unknown options {sorted(unknown)}")
        import onnxruntime as ort  # lazy: the runtime extra

        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"{self.path}: no such model file")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(intra_op_threads)
        so.inter_op_num_threads = int(inter_op_threads)
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        if graph_optimization not in levels:
            raise BackendError(f"graph_optimization {graph_optimization!r} not in {sorted(levels)}")
        so.graph_optimization_level = levels[graph_optimization]
        so.log_severity_level = 3  # errors only: warnings about unused initialisers are noise
        chosen = resolve_providers(providers, ort.get_available_providers(), str(self.path))
        provider_options: list[dict[str, Any]] = []
        for p in chosen:
            opts: dict[str, Any] = {}
            if p == "TensorrtExecutionProvider" and trt_cache_dir:
                opts = {"trt_engine_cache_enable": True, "trt_engine_cache_path": trt_cache_dir,
                        "trt_int8_enable": True}
            provider_options.append(opts)
        model: str | bytes = str(self.path)
        self.relus_folded = 0
        if fold_relu and chosen == ["CPUExecutionProvider"]:
            from edge.backends.qdq import fold_relu_for_cpu

            model, self.relus_folded = fold_relu_for_cpu(self.path.read_bytes())
        try:
            self._sess = ort.InferenceSession(model, sess_options=so, providers=chosen,
                                              provider_options=provider_options)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"{self.path}: not a loadable ONNX model ({msg[:300]})") from None
        self.providers = self._sess.get_providers()
        custom = dict(self._sess.get_modelmeta().custom_metadata_map)
        self.meta = read_onnx_meta(self.path, custom)
        self.precision = self.meta.precision
        self._check_graph()

    def _check_graph(self) -> None:
        inputs = self._sess.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise BackendError(f"{self.path}: graph inputs {[i.name for i in inputs]}, "
                               f"expected one named {INPUT_NAME!r}")
        p = self.meta.preprocess
        want = (p.channels, p.window, 75)
        shape = list(inputs[0].shape)
        got = tuple(shape[1:])
        if len(shape) != 4 or any(isinstance(g, int) and g != w for g, w in zip(got, want)):
            raise BackendError(f"{self.path}: graph input shape {shape} does not match its "
                               f"metadata (N, {p.channels}, {p.window}, 75)")
        # A graph exported with a fixed batch of 1 is run window by window.
        self._batch1 = shape[0] == 1
        names = [o.name for o in self._sess.get_outputs()]
        expected = self.meta.output_names()
        if sorted(names) != sorted(expected):
            raise BackendError(f"{self.path}: graph outputs {names} do not match its metadata "
                               f"{expected}")
        self._outputs = expected
        declared: dict[str, object] = {}
        for o in self._sess.get_outputs():
            shape = list(o.shape)
            if len(shape) not in (0, 2):  # 0: rank unknown to ONNX Runtime
                raise BackendError(f"{self.path}: output {o.name} has shape {shape}, "
                                   f"expected (N, K)")
            declared[o.name] = shape[1] if shape else None
        check_output_widths(self.path, self.meta, declared)
        if any(not isinstance(declared[k], int) for k in output_widths(self.meta)):
            # Symbolic widths: one window of zeros shows the real ones.
            x = np.zeros((1, p.channels, p.window, 75), np.float32)
            out = self._run(x)
            check_output_widths(self.path, self.meta,
                                {k: v.shape[-1] if v.ndim == 2 else -1 for k, v in out.items()})

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = self.check_input(x)
        if self._batch1 and x.shape[0] != 1:
            parts = [self._run(x[i: i + 1]) for i in range(x.shape[0])]
            return {k: np.concatenate([p[k] for p in parts]) for k in self._outputs}
        return self._run(x)

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        try:
            out = self._sess.run(self._outputs, {INPUT_NAME: x})
        except Exception as e:
            raise BackendError(f"{self.path}: inference failed ({str(e)[:300]})") from None
        return {k: np.asarray(v, np.float32) for k, v in zip(self._outputs, out)}

    def close(self) -> None:
        self._sess = None  # frees the session's memory

    def __repr__(self) -> str:
        return f"OnnxRuntimeBackend({str(self.path)!r}, providers={self.providers})"
