"""Reading and writing skelmtl's metadata in ONNX files, with errors that name the file.

The metadata is one JSON string (:meth:`edge.core.metadata.ModelMeta.to_json`) under the
``metadata_props`` key :data:`edge.core.metadata.META_KEY`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge.core.errors import SkelmtlError
from edge.core.metadata import META_KEY, MetadataError, ModelMeta


class OnnxModelError(SkelmtlError, ValueError):
    """An ONNX file that cannot be read or is not a skelmtl model."""


def load_onnx(path: str | os.PathLike[str]) -> Any:
    """``onnx.load`` with one-line errors for missing, corrupt or foreign files."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf raises DecodeError, onnx raises various
        raise OnnxModelError(f"{path}: not a readable ONNX model ({type(e).__name__}: "
                             f"{str(e)[:200]})") from None
    if not model.graph.node:
        raise OnnxModelError(f"{path}: not a readable ONNX model (empty graph)")
    return model


def read_meta(model: Any, source: str | os.PathLike[str] = "model") -> ModelMeta:
    """The model's :class:`ModelMeta`; refuses a model without ours or with a mismatch."""
    props = {p.key: p.value for p in model.metadata_props}
    if META_KEY not in props:
        raise MetadataError(f"{source}: the ONNX model has no skelmtl metadata (key "
                            f"{META_KEY!r}); export it with 'skelmtl export'")
    return ModelMeta.from_json(props[META_KEY], source=str(source))


def write_meta(model: Any, meta: ModelMeta) -> None:
    """Set (replace) the skelmtl metadata of ``model`` in place."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != META_KEY]
    del model.metadata_props[:]
    for k, v in keep + [(META_KEY, meta.to_json())]:
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v


def save_onnx_atomic(model: Any, path: str | os.PathLike[str]) -> Path:
    """Serialize ``model`` to ``path`` via a temporary file and rename."""

    from edge.core.atomic import atomic_write

    return atomic_write(path, model.SerializeToString())
