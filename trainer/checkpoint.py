"""Checkpoints that say what they contain: model arguments, metadata, config, data fingerprint.

A checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``: no pickled code):

    format          1
    model_args      dict: ``create_model(**model_args)`` rebuilds the network
    meta            ModelMeta.to_dict(): preprocessing, tasks, labels, stride
    state_dict      the weights
    config          the training config as a plain dict
    extra           epoch, optimizer/scheduler/weighting state, data fingerprint, metrics
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edge.core.atomic import atomic_path
from edge.core.errors import SkelmtlError
from edge.core.metadata import ModelMeta

CHECKPOINT_FORMAT = 1


class CheckpointError(SkelmtlError, ValueError):
    """A checkpoint that cannot be read; the message names the file."""


@dataclass
class LoadedCheckpoint:
    """A checkpoint opened by :func:`load_checkpoint`.

    Attributes:
        model: the rebuilt network with weights loaded, in eval mode.
        meta: its metadata.
        config: the training config it was trained with.
        extra: everything else (epoch, optimizer state, fingerprint, metrics).
    """

    model: torch.nn.Module
    meta: ModelMeta
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, meta: ModelMeta,
                    config: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Write a checkpoint atomically. ``model`` must have ``model_args`` (registry models do)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_args = dict(_unwrap(model).model_args)  # type: ignore[arg-type]
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    blob = {"format": CHECKPOINT_FORMAT, "model_args": model_args,
            "meta": meta.with_(model_name=model_args.get("name", ""),
                               model_args=model_args).to_dict(),
            "state_dict": state, "config": config or {}, "extra": extra}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict, checked for format; raises CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt zip/pickle
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a skelmtl checkpoint (format "
                              f"{blob.get('format') if isinstance(blob, dict) else None})")
    return blob


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Rebuild the model of a checkpoint, with its weights, in eval mode."""
    from trainer.models import create_model

    blob = read_checkpoint(path)
    meta = ModelMeta.from_dict(blob["meta"], source=str(path))
    check_model_args(blob.get("model_args"), blob.get("state_dict"), path)
    try:
        model = create_model(**blob["model_args"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: model arguments do not build a model ({e})") from None
    missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.eval()
    return LoadedCheckpoint(model=model, meta=meta, config=blob.get("config", {}),
                            extra=blob.get("extra", {}))


# Structure limits checked before anything is built: far above every registered network,
# far below what a crafted file could ask for (a 20 TB allocation was once possible).
_MAX_LIST = 64


def check_model_args(args: Any, state: Any, path: str | os.PathLike[str]) -> None:
    """Refuse model arguments that do not describe the checkpoint's own weights, before
    any memory is allocated for them.

    The network is first built on PyTorch's ``meta`` device (shapes only, no storage)
    after its list-valued arguments are bounded; the number of values in its state must then
    equal that of the weights in the file, whose size the file itself bounds.

    Raises:
        CheckpointError: naming the file and the argument.
    """
    from trainer.models import create_model

    if not isinstance(args, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: model_args and state_dict must be mappings")
    for key in ("tasks", "blocks", "joints", "task_joints"):
        v = args.get(key)
        if v is not None and (not isinstance(v, (list, tuple, dict)) or len(v) > _MAX_LIST
                              and key != "joints") or key == "joints" and v is not None \
                and len(v) > 75:
            raise CheckpointError(f"{path}: model argument {key!r} is out of bounds")
    try:
        with torch.device("meta"):
            probe = create_model(**args)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: model arguments do not build a model ({e})") from None
    want = sum(v.numel() for v in probe.state_dict().values())
    have = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))
    if want != have:
        raise CheckpointError(f"{path}: model arguments describe {want:,} weights, the "
                              f"file holds {have:,}")


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel / DataParallel wrappers."""
    return getattr(model, "module", model)
