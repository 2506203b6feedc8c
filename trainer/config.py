"""Training configuration: frozen dataclasses loaded from YAML that reject unknown keys.

Example::

    name: my_mtl_3d
    seed: 0
    data:
      sources:
        - {store: runs/stores/msr_action3d}
        - {store: runs/stores/fpha, weight: 1.0}
    preprocess: {window: 32, dims: 3}
    model: {name: jcd_small}
    loss: {weighting: mean}
    optim: {epochs: 300, patience: 40}

Paths in ``data.sources[].store`` are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge.core.errors import SkelmtlError
from edge.core.preprocess import PreprocessConfig


class ConfigError(SkelmtlError, ValueError):
    """A config file that does not parse or does not fit the schema; names file and key."""


# Choices, checked when a config is loaded (not at the first epoch).
SHARING_MODES = ("hard", "soft", "learned")
WEIGHTINGS = ("mean", "dwa", "uncertainty")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("plateau", "cosine")
DEVICES = ("auto", "cpu", "cuda")
SAMPLINGS = ("weighted", "pass")


@dataclass(frozen=True)
class SourceConfig:
    """One clip store in a composite training set.

    Attributes:
        store: path of a clip store (``skelmtl data convert``).
        weight: sampling weight of this source relative to the others; 1.0 for each
            source means each contributes equally often per epoch, whatever its size.
        task: rename the store's task (e.g. a hand dataset used as ``gesture``).
        label_prefix: prefix label names (``"vb/"``) to keep classes of two stores of the
            same task apart.
    """

    store: str
    weight: float = 1.0
    task: str | None = None
    label_prefix: str = ""


@dataclass(frozen=True)
class DataConfig:
    """Attributes:
    sources: the stores mixed into one composite set.
    val_fraction: share of each train split carved out for validation (stratified by
        label, fixed by the seed), used when a store has no ``val`` split of its own.
    train_split / test_split: split names in the stores.
    epoch_size: samples drawn per epoch (0 = the total number of training clips).
    sampling: how an epoch is drawn. ``weighted``: ``epoch_size`` clips drawn with
        replacement, each source by its weight, and the last partial batch dropped.
        ``pass``: every training clip once, in a new order each epoch, the last partial
        batch kept (unless it would hold a single clip, which batch normalisation
        cannot train on); sources then mix by their sizes, so weights and
        ``epoch_size`` must stay at their defaults. On a small set the difference is
        large: MSR Action3D's 255 clips make 3 steps an epoch ``weighted`` and 4
        ``pass``, and the plateau schedule and the stopping rule count epochs
        (docs/ablation.md).
    """

    sources: tuple[SourceConfig, ...] = ()
    val_fraction: float = 0.15
    train_split: str = "train"
    test_split: str = "test"
    epoch_size: int = 0
    sampling: str = "weighted"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {self.sampling!r}")
        if self.sampling == "pass":
            weighted = [s.store for s in self.sources if s.weight != 1.0]
            if self.epoch_size or weighted:
                raise ValueError("sampling 'pass' uses every clip once per epoch: epoch_size "
                                 "and source weights need sampling 'weighted'")


@dataclass(frozen=True)
class ModelConfig:
    """Attributes:
    name: a registered model (``trainer.models.list_models()``).
    sharing: ``hard`` | ``soft`` | ``learned`` (the ``jcd`` family: ``hard`` only).
    task_head: add the task head when there are several tasks.
    dropout: dropout before (stgcn) or inside (jcd) the task heads.
    overrides: registry arguments (width, depth, ...) of that model.
    """

    name: str = "jcd_small"
    sharing: str = "hard"
    task_head: bool = True
    dropout: float = 0.5
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"sharing must be one of {list(SHARING_MODES)}, got {self.sharing!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        from trainer.models import list_models  # torch; configs are read where torch is

        if self.name not in list_models():
            raise ValueError(f"unknown model {self.name!r}; registered: {list_models()}")
        if self.name.startswith("jcd_") and self.sharing != "hard":
            raise ValueError(f"model {self.name!r} shares its trunk hard only (sharing 'hard'), "
                             f"got {self.sharing!r}")


@dataclass(frozen=True)
class LossConfig:
    """Attributes:
    weighting: ``mean`` | ``dwa`` | ``uncertainty`` (see trainer.losses).
    task_head_weight: weight of the task head's cross-entropy.
    label_smoothing: cross-entropy label smoothing.
    distill_from: teacher checkpoints (or run folders, for their ``best.pt``) whose
        averaged class probabilities each class head also learns from (trainer.distill);
        empty = no distillation. They must read the same windows and have the same labels.
    distill_weight: a taught head's loss is ``(1 - w) * CE + w * distillation``.
    distill_temperature: the softmax temperature of the distillation term.
    """

    weighting: str = "mean"
    task_head_weight: float = 0.1
    label_smoothing: float = 0.0
    distill_from: tuple[str, ...] = ()
    distill_weight: float = 0.5
    distill_temperature: float = 4.0

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {list(WEIGHTINGS)}, "
                             f"got {self.weighting!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0.0:
            raise ValueError(f"distill_temperature must be > 0, got {self.distill_temperature}")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation that respects the skeleton; probabilities are per clip.

    Attributes:
        mirror: probability of a left/right mirror (x flipped, joints swapped by the
            layout's mirror map, labels remapped by ``mirror_labels``).
        mirror_labels: label pairs that swap under mirroring, e.g. ``[[pointL, pointR]]``.
        rotate_deg: max rotation (about the vertical axis for 3D, in-plane for 2D).
        scale: max relative anisotropic scale change.
        crop: min fraction of the clip kept by a random temporal crop (1 = no crop).
        drop_hand / drop_hands: probability of masking one hand / both hands.
        noise: std of Gaussian joint noise relative to the clip's scale.
        splice: probability that up to half of the clip's frames (at its start or its
            end) are replaced by the neighbouring end of another training clip, the label
            staying the clip's own: the windows a stream shows where one action or signal
            follows another (``skelmtl demo --continuous``). The other clip's frames are
            taken as stored (same frame rate assumed).
        hold: probability that a clip has its body joints (the 33 pose slots) held from the
            frame before on about one frame in three (each frame with chance 1/2, never two in a
            row), a rough stand-in for what the
            landmark front end's ``auto`` policy feeds the model while the body is still
            (it carries the last pose one frame, edge/frontend/policy.py).
        splice_task_only: a spliced clip trains the task head only (its class label is
            dropped), so the class heads learn from whole clips and the task head learns
            to route the windows between two clips.
    """

    mirror: float = 0.5
    mirror_labels: tuple[tuple[str, str], ...] = ()
    rotate_deg: float = 15.0
    scale: float = 0.1
    crop: float = 0.8
    drop_hand: float = 0.05
    drop_hands: float = 0.02
    noise: float = 0.0
    splice: float = 0.0
    splice_task_only: bool = False
    hold: float = 0.0

    def __post_init__(self) -> None:
        for name in ("mirror", "drop_hand", "drop_hands", "splice", "hold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} is a probability in [0, 1], "
                                 f"got {getattr(self, name)}")


@dataclass(frozen=True)
class OptimConfig:
    """Attributes:
    epochs: the most epochs a run takes (the stopping rule usually ends it sooner).
    patience: stop when the validation score has not improved for this many epochs
        (0: always run ``epochs``). A run that reaches ``epochs`` while its best epoch is
        among the last ``patience // 4`` logs a warning and marks the history
        (``still_improving``): it has not reached its plateau. A run without validation
        clips (``data.val_fraction`` 0 and no val split) keeps its last epoch; its
        stopping rule has nothing to watch (a warning says so) and it runs ``epochs``.
    batch_size: samples per optimiser step over all processes.
    optimizer: ``adamw`` | ``adam``.
    schedule: ``plateau`` (halve the rate after ``lr_patience`` epochs without a lower
        training loss, down to ``min_lr``) | ``cosine`` (warm-up, then cosine decay over
        ``epochs``).
    accumulate: split each step into this many micro-batches (gradient accumulation;
        same result as that many DDP processes, with less memory).
    ema_epochs: validate and keep an exponential moving average of the weights (and
        batch-norm statistics) over about this many epochs (0: the weights themselves).
        Given in epochs so that one value means the same on 255 clips and on 60,000.
    """

    epochs: int = 300
    patience: int = 40
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "plateau"
    lr_patience: int = 5
    min_lr: float = 5e-6
    warmup_epochs: int = 0
    grad_clip: float = 5.0
    accumulate: int = 1
    ema_epochs: float = 0.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "accumulate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("patience", "lr_patience", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.ema_epochs >= 0:
            raise ValueError(f"ema_epochs must be >= 0, got {self.ema_epochs}")
        if not self.lr > 0 or self.min_lr < 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0, min_lr and weight_decay >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    Attributes:
        name: run name (the output folder's default name).
        seed: seeds Python, NumPy and torch; with it, runs repeat.
        tasks: the tasks to train (subset of the stores' tasks; empty = all). One task
            = a single-task (STL) baseline.
        stride: frames between two streaming windows, stored in the model metadata.
        device: ``auto`` | ``cpu`` | ``cuda``.
        amp: mixed precision on CUDA (ignored on CPU).
        out: output folder (default ``runs/<name>``).
    """

    name: str = "run"
    seed: int = 0
    tasks: tuple[str, ...] = ()
    stride: int = 4
    device: str = "auto"
    amp: bool = True
    out: str = ""
    threads: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {self.device!r}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out or os.path.join("runs", self.name))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["preprocess"] = {k: v for k, v in self.preprocess.to_dict().items() if k != "version"}
        return _plain(d)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with dotted-key changes, e.g. ``replace(**{"model.sharing": "soft"})``."""
        d = self.to_dict()
        for key, value in changes.items():
            node = d
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return from_dict(d, "<replace>")


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _build(cls: Any, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys (path in ``where``)."""
    if dataclasses.is_dataclass(data):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Build a :class:`TrainConfig`; raises ConfigError naming ``source`` and the key."""
    cfg: TrainConfig = _build(TrainConfig, data, source)
    return cfg


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """A YAML file's content (``safe_load``: no tags); a missing or unparsable file raises
    ConfigError naming it."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None


def load_config(path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
    """Load a YAML config file; ``overrides`` are dotted keys applied on top."""
    cfg = from_dict(read_yaml(path) or {}, str(path))
    return cfg.replace(**overrides) if overrides else cfg
