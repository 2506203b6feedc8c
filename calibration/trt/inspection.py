"""What a built engine really computes in: the engine inspector's layers and the
post-build precision check.

TensorRT names fused layers by joining their parts (:func:`layer_tokens`); Myelin regions
are opaque (:func:`is_opaque`); :func:`precision_problems` compares the layers' I/O types
with the precision asked for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from calibration.trt.versions import TensorRTError, TrtProfile


@dataclass(frozen=True)
class LayerInfo:
    """One engine layer from the inspector: its name, type and I/O data types."""

    name: str
    layer_type: str
    dtypes: frozenset[str]


_DTYPE_WORDS = (("int8", ("int8",)), ("fp16", ("fp16", "half")), ("fp32", ("fp32", "float")),
                ("int32", ("int32",)), ("bool", ("bool",)), ("int64", ("int64",)))


def _dtype_of(desc: str) -> str:
    d = desc.lower()
    for name, words in _DTYPE_WORDS:
        if any(w in d for w in words):
            return name
    return "unknown"


def parse_inspector_json(text: str, profile: TrtProfile) -> list[LayerInfo]:
    """Layers from ``EngineInspector.get_engine_information(JSON)``.

    Handles both schemas: ``"Format/Datatype": "Row major linear Int8 format"`` (up to
    10.x) and separate ``"Format"`` / ``"DataType"`` (11.x). Needs the engine built with
    ``ProfilingVerbosity.DETAILED``; with less, layers are bare names and carry no types.

    Raises:
        TensorRTError: the text is not the inspector's JSON.
    """
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise TensorRTError(f"engine inspector output is not JSON ({e})") from None
    layers = d.get("Layers") if isinstance(d, dict) else None
    if not isinstance(layers, list):
        raise TensorRTError("engine inspector output has no 'Layers' list")
    out = []
    for lay in layers:
        if isinstance(lay, str):  # LAYER_NAMES_ONLY verbosity
            out.append(LayerInfo(lay, "", frozenset()))
            continue
        types = set()
        for t in list(lay.get("Inputs", [])) + list(lay.get("Outputs", [])):
            if "DataType" in t:
                types.add(_dtype_of(str(t["DataType"])))
            elif "Format/Datatype" in t:
                types.add(_dtype_of(str(t["Format/Datatype"])))
        out.append(LayerInfo(str(lay.get("Name", "")), str(lay.get("LayerType", "")),
                             frozenset(types)))
    return out


def inspect_engine(trt: Any, engine: Any, profile: TrtProfile) -> list[LayerInfo]:
    """The built engine's layers, through its engine inspector."""
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return parse_inspector_json(text, profile)


_NAME_SPLIT = re.compile(r"\s*(?:\+|\|\|)\s*")
_NAME_WRAP = re.compile(r"^(?:PWN|ForeignNode|Myelin)?\s*[\[({]?|[\])}]$")
# Layers TensorRT compiles as one opaque region (Myelin): named "{ForeignNode[first...last]}";
# their I/O types are the region's boundary, which says nothing about the precision inside.
_OPAQUE_WORDS = ("ForeignNode", "Myelin")
_QDQ_SUFFIXES = ("_quantize_scale_node", "_dequantize_scale_node")


def layer_tokens(name: str) -> set[str]:
    """The ONNX node names a TensorRT layer name is made of.

    TensorRT names a fused layer by joining its parts with ``" + "`` (e.g.
    ``layer3.5.conv1.weight + QuantizeLinear_342_quantize_scale_node + Conv_344 + Relu_346``
    in NVIDIA/TensorRT#1293), wraps pointwise fusions as ``PWN(a, b)``, and names the
    layers it makes from Q/DQ nodes ``<node>_quantize_scale_node``. Matching whole tokens,
    not substrings, keeps ``/conv1/Conv`` from matching ``/conv1/Conv_1``.
    """
    out = set()
    for part in _NAME_SPLIT.split(name.replace(",", " + ")):
        part = part.strip()
        while True:
            stripped = _NAME_WRAP.sub("", part).strip()
            if stripped == part:
                break
            part = stripped
        for suffix in _QDQ_SUFFIXES:
            if part.endswith(suffix):
                part = part[: -len(suffix)]
        if part:
            out.add(part)
    return out


def is_opaque(layer: LayerInfo) -> bool:
    """A Myelin region (``{ForeignNode[a...b]}``): its I/O types are its boundary's."""
    return any(w in layer.name or w in layer.layer_type for w in _OPAQUE_WORDS)


def precision_problems(layers: list[LayerInfo], precision: str,
                       quantized_nodes: Iterable[str] = (),
                       compute_nodes: Iterable[str] | None = None,
                       notes: list[str] | None = None) -> list[str]:
    """Where the engine does not compute in the precision asked for.

    * ``int8``: some *computing* layer (one made of an ONNX compute node, not only of
      Q/DQ nodes or reformats) must have INT8 I/O, and every quantized ONNX compute node
      found among a layer's name tokens (:func:`layer_tokens`) must sit in a layer with
      INT8 I/O. A node found in no layer name is not a problem: TensorRT may have fused
      it under another name. Opaque Myelin regions (:func:`is_opaque`) are left out: their
      I/O types are the region's boundary. When no computing layer is visible outside
      them, the precision cannot be verified: that is a note, not a problem, so that an
      engine TensorRT compiled as one region is not refused (and rebuilt at every start)
      for what the inspector cannot show; ``skelmtl selfcheck`` lists the layers and
      compares the answers with ONNX Runtime instead.
    * ``fp16``: some layer must run in FP16.
    * ``fp32``: no layer may run in FP16 or INT8.

    Args:
        layers: from :func:`inspect_engine`.
        precision: what was asked for.
        quantized_nodes: the ONNX nodes that must run INT8.
        compute_nodes: the names of the model's non-Q/DQ nodes (default: any layer
            counts as computing, the old and weaker rule).
        notes: receives what could not be verified.

    Returns:
        One message per problem; empty when the engine matches.
    """
    typed = [lay for lay in layers if lay.dtypes]
    if not typed:
        return ["the engine inspector gave no layer data types (build with "
                "ProfilingVerbosity.DETAILED); cannot verify the precision"]
    problems = []
    if precision == "int8":
        visible = [lay for lay in typed if not is_opaque(lay)]
        compute = set(compute_nodes) if compute_nodes is not None else None
        computing = [lay for lay in visible
                     if compute is None or layer_tokens(lay.name) & compute]
        if not computing and len(visible) < len(typed):
            if notes is not None:
                notes.append("TensorRT compiled the computing layers into opaque regions "
                             f"({', '.join(lay.name for lay in typed if is_opaque(lay))[:200]}); "
                             "their INT8 use cannot be verified from the engine inspector")
        elif not any("int8" in lay.dtypes for lay in computing):
            problems.append("no computing layer of the engine runs in INT8 (only quantize/"
                            "dequantize or reformat layers, if any)")
        for node in quantized_nodes:
            holders = [lay for lay in visible if node and node in layer_tokens(lay.name)]
            if holders and not any("int8" in lay.dtypes for lay in holders):
                problems.append(f"quantized node {node!r} runs in "
                                f"{'/'.join(sorted(holders[0].dtypes))}, not INT8 "
                                f"(layer {holders[0].name!r})")
    elif precision == "fp16":
        if not any("fp16" in lay.dtypes for lay in typed):
            if all(is_opaque(lay) for lay in typed) and notes is not None:
                notes.append("every layer is an opaque region; FP16 use cannot be verified")
            else:
                problems.append("no layer of the engine runs in FP16 (TensorRT chose FP32 "
                                "everywhere)")
    elif precision == "fp32":
        low = [lay.name for lay in typed if lay.dtypes & {"fp16", "int8"}
               and not is_opaque(lay)]
        if low:
            problems.append(f"layers run below FP32: {low[:5]}")
    return problems


__all__ = [
    "LayerInfo", "parse_inspector_json", "inspect_engine", "layer_tokens", "is_opaque",
    "precision_problems",
]
