"""Tiny models for the runtime tests: a torch module, its ONNX export with metadata.

The runtime tests need real ONNX files (with ``metadata_props``) but not a trained
network; these are built in a fraction of a second with the TorchScript exporter.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.metadata import META_KEY, TASK_OUTPUT, ModelMeta, logits_name
from edge.preprocess import PreprocessConfig

LABELS = {"action": ("walk", "jump", "sit"), "gesture": ("wave", "point", "stop", "none")}


def tiny_meta(tasks: Sequence[str] = ("action", "gesture"), *, has_task_head: bool = True,
              window: int = 16, stride: int = 4, graph_tasks: Sequence[str] = (),
              precision: str = "fp32") -> ModelMeta:
    return ModelMeta(preprocess=PreprocessConfig(window=window), tasks=tuple(tasks),
                     labels={t: LABELS[t] for t in tasks}, stride=stride,
                     has_task_head=has_task_head and len(tasks) > 1,
                     graph_tasks=tuple(graph_tasks), model_name="tiny", precision=precision)


def tiny_torch(meta: ModelMeta, seed: int = 0):  # -> torch.nn.Module
    """A small deterministic network: per-channel/joint pooling, then linear heads.

    It looks at every input channel and joint, so the output changes with the input.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = meta.preprocess.channels
            self.mix = nn.Conv2d(c, 8, kernel_size=(3, 1), padding=(1, 0))
            self.heads = nn.ModuleDict({t: nn.Linear(8 * 75, len(meta.labels[t]))
                                        for t in meta.tasks})
            self.task = nn.Linear(8 * 75, len(meta.tasks)) if meta.has_task_head else None
            self.graph_tasks = tuple(meta.graph_tasks)

        def forward(self, x):  # (N, C', T, V) -> dict of logits
            h = torch.tanh(self.mix(x)).mean(dim=2).flatten(1)
            out = {logits_name(t): self.heads[t](h) for t in self.graph_tasks}
            if self.task is not None:
                out[TASK_OUTPUT] = self.task(h)
            return out

    return Tiny().eval()


def export_onnx(model, meta: ModelMeta, path: Path, *, batch: str | int = "N") -> Path:
    """Export ``model`` to ONNX at ``path`` and store ``meta`` in its metadata_props."""
    import onnx
    import torch

    p = meta.preprocess
    x = torch.zeros(1, p.channels, p.window, 75)
    names = meta.output_names()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=names,
                          dynamic_axes={"input": {0: batch}} if isinstance(batch, str) else None,
                          dynamo=False)
    m = onnx.load(str(path))
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key, entry.value = META_KEY, meta.to_json()
    onnx.save(m, str(path))
    return path


def tiny_onnx(path: Path, meta: ModelMeta | None = None, seed: int = 0) -> Path:
    meta = meta or tiny_meta()
    return export_onnx(tiny_torch(meta, seed), meta, path)


def per_task_onnx(folder: Path, meta: ModelMeta, seed: int = 0) -> list[Path]:
    """One ONNX per task (``model.<task>.onnx``) sharing the same weights."""
    full = tiny_torch(meta, seed)
    paths = []
    for t in meta.tasks:
        m = meta.with_(graph_tasks=(t,))
        full.graph_tasks = (t,)
        paths.append(export_onnx(full, m, folder / f"model.{t}.onnx"))
    full.graph_tasks = tuple(meta.tasks)
    return paths


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
    from edge.layout import holistic_to_mp75

    folder = shared_data / "volleyball_referee" / "data" / label / str(seq)
    files = sorted(folder.glob("*.npy"), key=lambda p: int(p.stem))
    return holistic_to_mp75(np.stack([np.load(f) for f in files]))
