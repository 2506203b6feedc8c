"""What every model artefact says about itself, and the checks the runtime makes.

One :class:`ModelMeta` travels with a model through every stage: the checkpoint keeps it,
ONNX export writes it into ``metadata_props`` (key ``skelmtl``, one JSON string), the
TensorRT engine header repeats it, and the runtime refuses a model whose layout or
preprocessing version differ from this package's. A model with a frame rate records it
as ``preprocess.fps`` (preprocessing version 3); the runtime resamples every source to it
(:class:`edge.runtime.stream.RateConverter`) and training, evaluation and calibration resample
each clip from its store's ``fps`` (a clip without one is refused).

Output names are fixed: ``logits_<task>`` per task head and ``task_logits`` for the task
head; the input is ``input`` with shape ``(N, C', T, V)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from edge.core.errors import SkelmtlError
from edge.core.layout import MP75
from edge.core.preprocess import PREPROCESS_VERSION, READABLE_VERSIONS, PreprocessConfig

META_KEY = "skelmtl"
META_SCHEMA = 1
INPUT_NAME = "input"
TASK_OUTPUT = "task_logits"
PRECISIONS = ("fp32", "fp16", "int8")


def logits_name(task: str) -> str:
    """Output name of a task's head."""
    return f"logits_{task}"


class MetadataError(SkelmtlError, ValueError):
    """An artefact whose metadata is missing or does not match this package."""


@dataclass(frozen=True)
class ModelMeta:
    """Self-description of a trained model.

    Attributes:
        preprocess: the input the model expects (window, dims, streams, layout, and the
            frame rate ``fps`` its windows are built at, None for a model that stretches
            every clip to its window).
        tasks: task names, in head order.
        labels: label names per task.
        stride: frames between two windows when streaming (at the model's rate, when it
            has one).
        has_task_head: whether ``task_logits`` exists (the router's "auto" uses it).
        graph_tasks: the tasks whose heads this graph computes (all, or one for a
            per-task export of a soft-sharing model).
        model_name: registry name (``create_model(model_name, **model_args)``).
        model_args: the arguments that rebuild the network.
        precision: ``fp32``, ``fp16`` or ``int8``: what this artefact actually computes in.
        producer: versions and provenance (package, torch, onnx, tensorrt, data fingerprint).
    """

    preprocess: PreprocessConfig
    tasks: tuple[str, ...]
    labels: dict[str, tuple[str, ...]]
    stride: int = 4
    has_task_head: bool = True
    graph_tasks: tuple[str, ...] = ()
    model_name: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    producer: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise MetadataError("a model needs at least one task")
        missing = [t for t in self.tasks if t not in self.labels]
        if missing:
            raise MetadataError(f"no label names for tasks {missing}")
        if not self.graph_tasks:
            object.__setattr__(self, "graph_tasks", tuple(self.tasks))
        if self.precision not in PRECISIONS:
            raise MetadataError(f"precision {self.precision!r} not in {PRECISIONS}")
        if self.stride < 1:
            raise MetadataError(f"stride must be >= 1, got {self.stride}")

    @property
    def window(self) -> int:
        return self.preprocess.window

    @property
    def fps(self) -> float | None:
        """The frame rate the model's windows are built at (None: no rate, version <= 2)."""
        return self.preprocess.fps

    def output_names(self) -> list[str]:
        """The graph's outputs, in order."""
        names = [logits_name(t) for t in self.graph_tasks]
        return names + ([TASK_OUTPUT] if self.has_task_head else [])

    def with_(self, **changes: Any) -> ModelMeta:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        d["tasks"] = list(self.tasks)
        d["graph_tasks"] = list(self.graph_tasks)
        d["labels"] = {t: list(v) for t, v in self.labels.items()}
        d["schema"] = META_SCHEMA
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "model") -> ModelMeta:
        """Rebuild and check against this package.

        Raises:
            MetadataError: naming ``source`` and the mismatch (schema, layout,
                preprocessing version, unknown keys).
        """
        d = dict(d)
        schema = d.pop("schema", None)
        if schema != META_SCHEMA:
            raise MetadataError(f"{source}: metadata schema {schema}, this package reads "
                                f"{META_SCHEMA}")
        if not isinstance(d.get("preprocess", {}), dict):
            raise MetadataError(f"{source}: malformed metadata (preprocess must be an object, "
                                f"got {type(d.get('preprocess')).__name__})")
        pre = dict(d.get("preprocess", {}))
        if pre.get("layout") != MP75.name:
            raise MetadataError(f"{source}: layout {pre.get('layout')!r} does not match "
                                f"this package's {MP75.name!r}")
        if pre.get("version") not in READABLE_VERSIONS:
            raise MetadataError(f"{source}: preprocessing version {pre.get('version')} does "
                                f"not match this package's {PREPROCESS_VERSION} (reads "
                                f"{list(READABLE_VERSIONS)})")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise MetadataError(f"{source}: unknown metadata keys {sorted(unknown)}")
        _check_types(d, source)
        try:
            d["preprocess"] = PreprocessConfig.from_dict(pre)
            d["tasks"] = tuple(d["tasks"])
            d["graph_tasks"] = tuple(d.get("graph_tasks", ()))
            d["labels"] = {t: tuple(v) for t, v in d["labels"].items()}
            return cls(**d)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MetadataError(f"{source}: malformed metadata ({e})") from None

    @classmethod
    def from_json(cls, s: str | bytes, *, source: str = "model") -> ModelMeta:
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise MetadataError(f"{source}: metadata is not JSON ({e})") from None
        if not isinstance(d, dict):
            raise MetadataError(f"{source}: metadata is not a JSON object")
        return cls.from_dict(d, source=source)


def _names(v: Any) -> bool:
    """A list of distinct, non-empty strings."""
    return (isinstance(v, list) and all(isinstance(x, str) and x for x in v)
            and len(set(v)) == len(v))


def _check_types(d: dict[str, Any], source: str) -> None:
    """The types of the fields the runtime trusts, before anything is built from them.

    A null or repeated label would give events that the event reader rejects; a string
    where a list belongs would be iterated letter by letter.

    Raises:
        MetadataError: naming ``source`` and the field.
    """
    def bad(what: str) -> MetadataError:
        return MetadataError(f"{source}: malformed metadata ({what})")

    if "tasks" not in d or not _names(d["tasks"]) or not d["tasks"]:
        raise bad(f"tasks must be a non-empty list of distinct names, got {d.get('tasks')!r}")
    labels = d.get("labels")
    if not isinstance(labels, dict):
        raise bad(f"labels must map each task to its label names, got "
                  f"{type(labels).__name__}")
    for task, names in labels.items():
        if not _names(names) or not names:
            raise bad(f"labels of task {task!r} must be a non-empty list of distinct, "
                      f"non-empty names, got {names!r}")
    graph_tasks = d.get("graph_tasks", [])
    if not isinstance(graph_tasks, list) or any(t not in d["tasks"] for t in graph_tasks):
        raise bad(f"graph_tasks must list tasks of the model, got {graph_tasks!r}")
    if not isinstance(d.get("has_task_head", True), bool):
        raise bad(f"has_task_head must be true or false, got {d['has_task_head']!r}")
    if "stride" in d and type(d["stride"]) is not int:
        raise bad(f"stride must be an integer, got {d['stride']!r}")
    for key in ("model_args", "producer"):
        if not isinstance(d.get(key, {}), dict):
            raise bad(f"{key} must be an object, got {type(d[key]).__name__}")
