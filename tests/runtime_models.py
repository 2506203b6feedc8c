"""Tiny models for the runtime tests: ONNX files with metadata, made without torch.

The runtime tests need real ONNX files (with ``metadata_props``) but not a trained
network. ``tests/fixtures/make_runtime_models.py`` writes them node by node with
onnx.helper and numpy, so these tests run where torch is absent (the Jetson image,
``make test-oldest``); :func:`reference` is the numpy twin the outputs are compared with.
:func:`tiny_torch` is the same network in torch, for the tests that compare with PyTorch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edge.core.metadata import META_KEY, TASK_OUTPUT, ModelMeta, logits_name
from tests.fixtures.make_runtime_models import (
    LABELS,
    reference,
    tiny_meta,
    weights,
    write,
    write_per_task,
)

__all__ = ["LABELS", "export_onnx", "per_task_onnx", "reference", "synthetic_frames", "tiny_int8_onnx",
           "tiny_meta", "tiny_onnx", "tiny_torch", "volleyball_sequence"]


def tiny_onnx(path: Path, meta: ModelMeta | None = None, seed: int = 0, *,
              batch: str | int = "N") -> Path:
    """The tiny FP32 model at ``path``; ``batch`` a name (dynamic) or a fixed size."""
    return write(path, meta, seed, batch=batch)


def tiny_int8_onnx(path: Path, meta: ModelMeta | None = None, seed: int = 0) -> Path:
    """The same network in Q/DQ form (``precision: int8``); ``reference(..., int8=True)``."""
    return write(path, meta, seed, int8=True)


def per_task_onnx(folder: Path, meta: ModelMeta, seed: int = 0) -> list[Path]:
    """One ONNX per task (``model.<task>.onnx``) sharing the same weights."""
    return write_per_task(folder, meta, seed)


def tiny_torch(meta: ModelMeta, seed: int = 0):  # -> torch.nn.Module
    """The tiny network as a torch module with the ONNX files' weights (needs torch)."""
    import torch
    from torch import nn

    w = {k: torch.from_numpy(v) for k, v in weights(meta, seed).items()}

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden, c = w["conv.W"].shape[:2]
            self.mix = nn.Conv2d(c, hidden, kernel_size=(3, 1), padding=(1, 0))
            self.mix.weight = nn.Parameter(w["conv.W"])
            self.mix.bias = nn.Parameter(w["conv.b"])
            self.heads = nn.ModuleDict()
            for name in [logits_name(t) for t in meta.tasks] + (
                    [TASK_OUTPUT] if meta.has_task_head else []):
                k, d = w[f"{name}.W"].shape
                lin = nn.Linear(d, k)
                lin.weight, lin.bias = nn.Parameter(w[f"{name}.W"]), nn.Parameter(w[f"{name}.b"])
                self.heads[name] = lin
            self.outputs = meta.output_names()

        def forward(self, x):  # (N, C', T, V) -> dict of logits
            h = torch.tanh(self.mix(x)).mean(dim=2).flatten(1)
            return {name: self.heads[name](h) for name in self.outputs}

    return Tiny().eval()


def export_onnx(model, meta: ModelMeta, path: Path) -> Path:  # model: torch.nn.Module
    """Export a torch ``model`` (dynamic batch) to ONNX with ``meta`` in its metadata_props,
    without export's simplification: for the tests that compare with PyTorch."""
    import onnx
    import torch

    p = meta.preprocess
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, p.channels, p.window, 75),), str(path),
                          input_names=["input"], output_names=meta.output_names(),
                          dynamic_axes={"input": {0: "N"}}, dynamo=False)
    m = onnx.load(str(path))
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key, entry.value = META_KEY, meta.to_json()
    onnx.save(m, str(path))
    return path


def synthetic_frames(n: int, *, seed: int = 0, hands: bool = True, body: bool = True,
                     hand_speed: float = 0.0, body_speed: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 75, 3)`` frames and ``(n, 75)`` mask of a person in normalised image coords.

    ``hand_speed`` moves the hands (sinusoidally), ``body_speed`` translates the whole body.
    """
    rng = np.random.default_rng(seed)
    base = np.zeros((75, 3), np.float32)
    base[:33, 0] = 0.5 + 0.05 * rng.standard_normal(33)
    base[:33, 1] = np.linspace(0.2, 0.9, 33)
    base[11], base[12] = (0.45, 0.35, 0.0), (0.55, 0.35, 0.0)  # shoulders
    base[33:54, :2] = (0.35, 0.5) + 0.02 * rng.standard_normal((21, 2))
    base[54:75, :2] = (0.65, 0.5) + 0.02 * rng.standard_normal((21, 2))
    t = np.arange(n, dtype=np.float32)
    frames = np.repeat(base[None], n, axis=0)
    frames[:, 33:, 0] += hand_speed * np.sin(t / 3.0)[:, None]
    frames[:, :, 0] += body_speed * t[:, None]
    frames += 0.001 * rng.standard_normal(frames.shape).astype(np.float32)
    mask = np.ones((n, 75), bool)
    if not hands:
        mask[:, 33:] = False
    if not body:
        mask[:, :33] = False
    frames[~mask] = 0.0
    return frames, mask


def volleyball_sequence(shared_data: Path, label: str, seq: int | str
                        ) -> tuple[np.ndarray, np.ndarray]:
    """One real volleyball-referee sequence as mp75 ``(30, 75, 3)`` frames and mask."""
    from edge.core.layout import holistic_to_mp75

    folder = shared_data / "volleyball_referee" / "data" / label / str(seq)
    files = sorted(folder.glob("*.npy"), key=lambda p: int(p.stem))
    return holistic_to_mp75(np.stack([np.load(f) for f in files]))
