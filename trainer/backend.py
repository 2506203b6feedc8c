"""PyTorch backend: run a training checkpoint through the edge runtime (for debugging).

Usage: skelmtl run --model runs/x/best.pt --backend torch --source clip.landmarks.npz

Registered under the ``skelmtl.backends`` entry point group as ``torch`` (setup.cfg), so
``edge`` finds it without importing torch itself. It gives the reference numbers that
the ONNX and TensorRT backends are compared with.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.backends.base import Backend, BackendError, check_output_widths
from edge.core.metadata import TASK_OUTPUT, logits_name


class TorchBackend(Backend):
    """Runs a checkpoint written by ``skelmtl train``.

    Args:
        path: the ``.pt`` checkpoint.
        device: ``cpu`` (default), ``cuda`` or ``cuda:N``.
        threads: torch CPU threads (0 keeps torch's default).

    Raises:
        BackendError: unknown options, a device that is not there, output widths that
            disagree with the metadata's label lists.
        trainer.checkpoint.CheckpointError: unreadable checkpoint.
        edge.core.metadata.MetadataError: metadata that does not match this package.
    """

    name = "torch"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu", threads: int = 0,
                 **unknown: Any) -> None:
        if unknown:
            raise BackendError(f"torch backend: unknown options {sorted(unknown)}")
        from trainer.checkpoint import load_checkpoint

        self.path = Path(path)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"{self.path}: device {device!r} asked but CUDA is not available")
        if threads > 0:
            torch.set_num_threads(threads)
        ck = load_checkpoint(self.path)
        self.meta = ck.meta
        self.precision = "fp32"
        self.device = torch.device(device)
        self._model = ck.model.to(self.device).eval()
        self._lock = threading.Lock()
        # A module has no declared output widths: one window of zeros shows them, so a
        # checkpoint whose label lists disagree with its heads is refused at load.
        p = self.meta.preprocess
        out = self.infer(np.zeros((1, p.channels, p.window, 75), np.float32))
        check_output_widths(self.path, self.meta,
                            {k: v.shape[-1] for k, v in out.items() if v.ndim == 2})

    @torch.no_grad()
    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = self.check_input(x)
        with self._lock:
            y = self._model(torch.from_numpy(x).to(self.device))
        out = _name_outputs(y, self.meta.output_names(), self.meta.tasks)
        missing = [k for k in self.meta.output_names() if k not in out]
        if missing:
            raise BackendError(f"{self.path}: the model returned {sorted(out)}, missing {missing}")
        return {k: out[k].float().cpu().numpy() for k in self.meta.output_names()}

    def close(self) -> None:
        self._model = None  # type: ignore[assignment]


def _name_outputs(y: Any, names: list[str], tasks: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The model's outputs under the graph's output names (dicts keyed by task work too)."""
    if isinstance(y, torch.Tensor):
        return {names[0]: y}
    if isinstance(y, (list, tuple)):
        return dict(zip(names, y))
    out = {}
    for k, v in dict(y).items():
        if k in tasks:
            k = logits_name(k)
        elif k in ("task", "tasks"):
            k = TASK_OUTPUT
        out[k] = v
    return out
