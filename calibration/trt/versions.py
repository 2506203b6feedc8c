"""TensorRT versions: what each release needs from us (:class:`TrtProfile`), the errors.

The engine builder never tests a version number itself: it asks the profile of the
installed TensorRT (:func:`profile_for`) what to do. The version table and its sources are
in :mod:`calibration.trt`. Version strings are split into numbers in one place,
:func:`edge.engine.header.tensorrt_version_parts` (the runtime compares engine headers
with it, without importing this room).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edge.core.errors import SkelmtlError
from edge.engine.header import tensorrt_version_parts

_VERSION_START = re.compile(r"^\s*\d+\.\d+")


class TensorRTError(SkelmtlError, RuntimeError):
    """TensorRT cannot build what was asked; the message says what and why."""


class UnsupportedTensorRT(TensorRTError):
    """A TensorRT version this package does not know how to drive."""


# --- versions -----------------------------------------------------------------------------

def parse_version(v: str) -> tuple[int, int, int]:
    """``"10.3.0.30"`` -> ``(10, 3, 0)``.

    Raises:
        UnsupportedTensorRT: not a version string (it must start with ``major.minor``).
    """
    if not _VERSION_START.match(str(v)):
        raise UnsupportedTensorRT(f"cannot read a TensorRT version from {v!r}")
    major, minor, patch = tensorrt_version_parts(v)[:3]
    return major, minor, patch


def version_number(v: str) -> int:
    """TensorRT's ``NV_TENSORRT_VERSION`` integer, as used in calibration cache headers.

    8.x: ``major*1000 + minor*100 + patch`` (8.5.2 -> 8502); 10 and later:
    ``major*10000 + minor*100 + patch`` (10.3.0 -> 100300).
    """
    major, minor, patch = parse_version(v)
    if major < 10:
        return major * 1000 + minor * 100 + patch
    return major * 10000 + minor * 100 + patch


# Operators the ONNX parser rejects. 8.5: the "N" rows of onnx-tensorrt's operators.md at
# release 8.5 (only those an exported network could contain are worth listing, but the
# whole row set is cheap). 8.6 adds LayerNormalization. For 10/11 we list what no
# TensorRT parses: ONNX Runtime's integer-only operators (a QOperator-format model),
# sequences and strings.
_NEVER = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
    "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SequenceMap", "SplitToSequence", "ConcatFromSequence",
    "StringNormalizer", "TfIdfVectorizer",
})
_UNSUPPORTED_85 = _NEVER | {
    "Bernoulli", "BitShift", "BlackmanWindow", "Compress", "DFT", "Det", "HammingWindow",
    "HannWindow", "Hardmax", "IsInf", "LayerNormalization", "MaxRoiPool", "MaxUnpool",
    "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional",
    "OptionalGetElement", "OptionalHasElement", "STFT", "SoftmaxCrossEntropyLoss", "Unique",
}
_UNSUPPORTED_86 = _UNSUPPORTED_85 - {"LayerNormalization"}


@dataclass(frozen=True)
class TrtProfile:
    """What one TensorRT release needs from us.

    Attributes:
        version: ``(major, minor, patch)``.
        family: ``"8.5"``, ``"8.6"``, ``"10"`` or ``"11"``.
        jetpack: the JetPack generation that ships it.
        explicit_batch_flag: ``create_network`` needs ``1 << EXPLICIT_BATCH``.
        strongly_typed: the network is created ``STRONGLY_TYPED`` (precision comes from
            the ONNX types and Q/DQ nodes; no precision flags).
        precision_flags: ``BuilderFlag.INT8`` / ``FP16`` exist and are used.
        capability_query: ``builder.platform_has_fast_int8/fp16`` exist.
        legacy_calibrator: ``IInt8EntropyCalibrator2`` and ``config.int8_calibrator``
            exist (implicit quantization from a calibration cache).
        legacy_calibrator_deprecated: they exist but NVIDIA deprecated them.
        max_opset: highest default-domain ONNX opset the parser documents.
        unsupported_ops: ONNX operators the parser rejects.
        einsum_restricted: ``Einsum`` without ellipsis, diagonals or broadcasting.
        inspector_io_key: the engine inspector's key for I/O tensors
            (``"Bindings"`` until 10.x, ``"I/O Tensors"`` from 11).
        quantized_weights: int8 weight initializers may feed ``DequantizeLinear``
            (documented from 10.0; 8.x wants float weights -> Q -> DQ).
        int8_matmul: the parser lists INT8 for ``MatMul`` (not in 8.5/8.6).
        strongly_typed_available: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists
            (10.0 and later).
        strongly_typed_recommended: NVIDIA recommends strongly typed Q/DQ builds (10.12
            and later; mandatory from 11).
    """

    version: tuple[int, int, int]
    family: str
    jetpack: str
    explicit_batch_flag: bool
    strongly_typed: bool
    precision_flags: bool
    capability_query: bool
    legacy_calibrator: bool
    legacy_calibrator_deprecated: bool
    max_opset: int
    unsupported_ops: frozenset[str] = field(default_factory=frozenset)
    einsum_restricted: bool = False
    inspector_io_key: str = "Bindings"
    quantized_weights: bool = False
    int8_matmul: bool = False
    strongly_typed_available: bool = False
    strongly_typed_recommended: bool = False

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))


def profile_for(version: str) -> TrtProfile:
    """The :class:`TrtProfile` of a TensorRT version string.

    Raises:
        UnsupportedTensorRT: older than 8.5, or the 9.x line (never shipped on Jetson).
    """
    v = parse_version(version)
    major, minor, _ = v
    if (major, minor) in ((8, 5), (8, 6)):
        return TrtProfile(version=v, family=f"8.{minor}", jetpack="5.1" if minor == 5 else "6.0",
                          explicit_batch_flag=True,
                          strongly_typed=False, precision_flags=True, capability_query=True,
                          legacy_calibrator=True, legacy_calibrator_deprecated=False,
                          max_opset=17,
                          unsupported_ops=_UNSUPPORTED_85 if minor == 5 else _UNSUPPORTED_86,
                          einsum_restricted=True)
    if major == 10:
        return TrtProfile(version=v, family="10", jetpack="6" if minor < 13 else "7",
                          explicit_batch_flag=False, strongly_typed=False, precision_flags=True,
                          capability_query=True, legacy_calibrator=True,
                          legacy_calibrator_deprecated=minor >= 1,
                          # TensorRT 10.0 documents opsets up to 20; later 10.x may accept more.
                          max_opset=20, unsupported_ops=_NEVER, quantized_weights=True,
                          int8_matmul=True, strongly_typed_available=True,
                          strongly_typed_recommended=minor >= 12)
    if major >= 11:
        return TrtProfile(version=v, family="11", jetpack="7.2.2", explicit_batch_flag=False,
                          strongly_typed=True, precision_flags=False, capability_query=False,
                          legacy_calibrator=False, legacy_calibrator_deprecated=False,
                          max_opset=25, unsupported_ops=_NEVER, inspector_io_key="I/O Tensors",
                          quantized_weights=True, int8_matmul=True,
                          strongly_typed_available=True, strongly_typed_recommended=True)
    raise UnsupportedTensorRT(
        f"TensorRT {version} is not supported: use 8.5 (JetPack 5.1), 8.6 (JetPack 6.0 DP), "
        "10.x (JetPack 6.1+/7) or 11.4.1+ (JetPack 7.2.2+)")


__all__ = [
    "TensorRTError", "UnsupportedTensorRT", "parse_version", "version_number", "TrtProfile",
    "profile_for",
]
