"""The interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from edge.core.errors import SkelmtlError
from edge.core.metadata import TASK_OUTPUT, ModelMeta, logits_name


class BackendError(SkelmtlError, RuntimeError):
    """A model that cannot be loaded or run by a backend; the message names the file."""


def output_widths(meta: ModelMeta) -> dict[str, int]:
    """The width K of each output ``(N, K)`` that ``meta`` promises: labels per task head,
    number of tasks for the task head."""
    widths = {logits_name(t): len(meta.labels[t]) for t in meta.graph_tasks}
    if meta.has_task_head:
        widths[TASK_OUTPUT] = len(meta.tasks)
    return widths


def check_output_widths(path: Path, meta: ModelMeta, got: dict[str, object]) -> None:
    """Refuse a graph whose output widths disagree with its metadata's label lists.

    Such a model would load, then fail at the first window (or, worse, name the wrong
    label for a logit).

    Args:
        path: the model file, for the message.
        meta: its metadata.
        got: output name -> its width (an int; anything else, e.g. a symbolic dimension,
            is not checked).

    Raises:
        BackendError: naming the output, its width and the metadata's.
    """
    for name, want in output_widths(meta).items():
        k = got.get(name)
        if isinstance(k, (int, np.integer)) and int(k) != want:
            what = ("tasks" if name == TASK_OUTPUT
                    else f"labels of task {name[len('logits_'):]!r}")
            raise BackendError(f"{path}: output {name} has width {int(k)} but the metadata "
                               f"lists {want} {what}")


class Backend(ABC):
    """Runs a model on preprocessed windows.

    Subclasses set ``name``, load the model in ``__init__(path, **options)`` and fill
    ``self.meta`` from the artefact's own metadata (refusing a mismatch).

    Attributes:
        name: backend name, as in :data:`edge.backends.BACKENDS`.
        meta: the model's metadata.
        path: the model file.
        precision: what the backend actually computes in (``fp32``, ``fp16``, ``int8``).
    """

    name: str = ""
    meta: ModelMeta
    path: Path
    precision: str = "fp32"

    @abstractmethod
    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model.

        Args:
            x: ``(N, C', T, V)`` float32 windows from :func:`edge.core.preprocess.preprocess`.

        Returns:
            ``output name -> (N, K)`` float32 logits, names from ``meta.output_names()``.
        """

    def close(self) -> None:
        """Release device memory and sessions; safe to call twice."""
        return None  # Backends without resources have nothing to release.

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """Validate ``x`` against the metadata and return it as contiguous float32."""
        p = self.meta.preprocess
        want = (p.channels, p.window, 75)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise BackendError(f"{self.path}: input {x.shape} does not match (N, *{want})")
        return np.ascontiguousarray(x, dtype=np.float32)
