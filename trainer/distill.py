"""Knowledge distillation: a student learns from the averaged predictions of trained teachers.

An ensemble of the same network trained at several seeds is more accurate than any one of
them (F-PHAB, leave-one-subject-out on train, each fold's last epoch: 83.8% held out for
three seeds' average against 78.6-82.3% each; ``tools/heldout_ensemble.py``, output in
reports/tuning/fpha_ensemble.txt), but costs three networks at run time. A
student of the same size trained on the ensemble's softened outputs (Hinton et al. 2015,
arXiv:1503.02531) keeps one network's edge cost.

The teachers see exactly the student's batch (the same augmented windows), in eval mode and
without gradients, so they must read the same input: the same preprocessing (window, dims,
streams, joints, scale) and, for each task they teach, the same labels in the same order.
Each teacher is the checkpoint of a finished run; a run folder names its ``best.pt``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from edge.core.errors import SkelmtlError
from edge.core.metadata import ModelMeta, logits_name
from edge.core.preprocess import PreprocessConfig
from trainer.config import ConfigError

logger = logging.getLogger(__name__)


def teacher_path(path: str | os.PathLike[str]) -> Path:
    """A teacher's checkpoint: ``path`` itself when it names a checkpoint file (``.pt``,
    ``.ckpt``), else the ``best.pt`` of the run folder it names (existing or not yet)."""
    from trainer.evaluate import CHECKPOINT_SUFFIXES

    p = Path(path)
    return p if p.suffix.lower() in CHECKPOINT_SUFFIXES else p / "best.pt"


class Teachers:
    """Frozen teacher networks whose averaged class probabilities a student learns from.

    Args:
        paths: checkpoints (or run folders, for their ``best.pt``).
        preprocess: the student's preprocessing; every teacher must have the same.
        labels: the student's labels per task; a teacher teaches the tasks it shares with
            the student, and each of those must have the same labels in the same order.
        device: where the teachers run (the student's device).

    Raises:
        ConfigError: a missing or unreadable checkpoint, other preprocessing, or other
            labels (the message names the file).
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], preprocess: PreprocessConfig,
                 labels: dict[str, tuple[str, ...]], device: torch.device) -> None:
        from trainer.checkpoint import CheckpointError, load_checkpoint

        self.models: list[torch.nn.Module] = []
        self.tasks: list[tuple[str, ...]] = []
        for raw in paths:
            path = teacher_path(raw)
            if not path.is_file():
                raise ConfigError(f"{path}: no such teacher checkpoint (loss.distill_from)")
            try:
                ck = load_checkpoint(path)
            except SkelmtlError as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                if isinstance(e, CheckpointError) and msg.startswith(f"{path}: "):
                    msg = msg[len(f"{path}: "):]
                raise ConfigError(f"{path}: teacher (loss.distill_from): {msg}") from None
            meta: ModelMeta = ck.meta
            if meta.preprocess != preprocess:
                raise ConfigError(f"{path}: the teacher reads other windows than the student "
                                  f"({_diff(meta.preprocess, preprocess)})")
            shared = tuple(t for t in meta.tasks if t in labels)
            if not shared:
                raise ConfigError(f"{path}: the teacher has none of the student's tasks "
                                  f"(teacher {list(meta.tasks)}, student {list(labels)})")
            for t in shared:
                if tuple(meta.labels[t]) != tuple(labels[t]):
                    raise ConfigError(f"{path}: the teacher's {t} labels differ from the "
                                      f"student's ({len(meta.labels[t])} vs {len(labels[t])} "
                                      "labels, or another order)")
            for p in ck.model.parameters():
                p.requires_grad_(False)
            self.models.append(ck.model.to(device).eval())
            self.tasks.append(shared)
            logger.info("teacher %s: tasks %s", path, list(shared))
        if not self.models:
            raise ConfigError("loss.distill_from: no teachers named")

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, temperature: float) -> dict[str, torch.Tensor]:
        """Per task, the teachers' mean softmax at ``temperature``, ``(N, K_task)``.

        Args:
            x: the student's batch ``(N, C, T, V)``.
            temperature: divides the logits before the softmax (> 1 softens them).
        """
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for model, tasks in zip(self.models, self.tasks):
            out = model(x)
            for t in tasks:
                p = F.softmax(out[logits_name(t)].float() / temperature, dim=1)
                sums[t] = sums[t] + p if t in sums else p
                counts[t] = counts.get(t, 0) + 1
        return {t: sums[t] / counts[t] for t in sums}


def _diff(a: PreprocessConfig, b: PreprocessConfig) -> str:
    """The preprocessing fields two configs disagree on, for an error message."""
    da, db = a.to_dict(), b.to_dict()
    keys = [k for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)]
    return "; ".join(f"{k}: teacher {da.get(k)!r}, student {db.get(k)!r}" for k in keys)
