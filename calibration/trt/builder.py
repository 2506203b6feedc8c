"""The TensorRT builder calls that differ between versions.

Network flags (explicit batch, strong typing), the precision flags and capability
queries, the workspace, the legacy cache-replaying calibrator, the parser's error lines
and a timing cache that never aborts a build. The ``trt`` module is passed in, so the same
code drives the real bindings and the stand-in in ``tests/fake_tensorrt``.
"""

from __future__ import annotations

from typing import Any

from calibration.trt.versions import TensorRTError, TrtProfile


def use_strong_typing(profile: TrtProfile, precision: str, has_qdq: bool,
                      typing: str = "auto") -> bool:
    """Whether to create the network ``STRONGLY_TYPED``.

    ``auto``: always on 11.x (the only mode); for Q/DQ INT8 builds on 10.12 and later,
    where NVIDIA's "Explicit Quantization" page says to use explicit quantization with
    strong typing and no precision flags; otherwise weak typing (8.x has no strong typing).
    ``strong`` / ``weak`` force it where the version allows.

    Raises:
        TensorRTError: ``strong`` on 8.x, ``weak`` on 11.x, or an unknown mode.
    """
    if typing not in ("auto", "strong", "weak"):
        raise TensorRTError(f"unknown typing {typing!r}; use auto, strong or weak")
    if profile.strongly_typed:
        if typing == "weak":
            raise TensorRTError(f"TensorRT {profile.version_str} builds strongly typed "
                                "networks only; drop --typing weak")
        return True
    if typing == "strong":
        if not profile.strongly_typed_available:
            raise TensorRTError(f"TensorRT {profile.version_str} has no strongly typed "
                                "networks (10.0 and later); use --typing auto or weak")
        return True
    if typing == "weak":
        return False
    return profile.strongly_typed_recommended and precision == "int8" and has_qdq


def network_flags(trt: Any, profile: TrtProfile, strong: bool | None = None) -> int:
    """The ``create_network`` flags for this version (``strong`` defaults to the profile's
    mandatory strong typing)."""
    strong = profile.strongly_typed if strong is None else strong
    flags = 0
    if profile.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strong:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def check_platform(trt: Any, builder: Any, profile: TrtProfile, precision: str) -> str:
    """Refuse a precision the GPU cannot run fast, where this TensorRT can tell.

    Returns:
        A note for the log (what was checked, or why it could not be).

    Raises:
        TensorRTError: ``platform_has_fast_int8`` / ``fp16`` is false.
    """
    if precision == "fp32":
        return "fp32 needs no capability check"
    if not profile.capability_query:
        return (f"TensorRT {profile.version_str} cannot query fast {precision.upper()} "
                "support; the built engine's layer precisions are checked instead")
    attr = "platform_has_fast_int8" if precision == "int8" else "platform_has_fast_fp16"
    if not bool(getattr(builder, attr)):
        raise TensorRTError(f"this GPU has no fast {precision.upper()} ({attr} is False); "
                            f"refusing to build a {precision} engine that would silently run "
                            "in a higher precision")
    return f"{attr} is True"


def configure_precision(trt: Any, config: Any, profile: TrtProfile, precision: str, *,
                        strong: bool | None = None, float_islands: str = "fp16") -> list[str]:
    """Set the builder flags for ``precision``; returns the flags set (for the header).

    Strongly typed networks take no precision flags at all (TensorRT rejects them). For
    ``fp32`` the TF32 flag is cleared where it exists: TF32 matmuls are a precision
    reduction. For ``int8`` on a weakly typed network the ``FP16`` flag is set too unless
    ``float_islands="fp32"``: without it every layer TensorRT does not run in INT8 (the
    float heads, the float MatMuls of 8.x) runs in FP32. trtexec says the same when only
    INT8 is asked for ("FP32 and INT8 precisions have been specified - more performance
    might be enabled by additionally specifying --fp16 or --best", NVIDIA/TensorRT#2664).

    Raises:
        TensorRTError: an unknown ``float_islands``.
    """
    if float_islands not in ("fp16", "fp32"):
        raise TensorRTError(f"unknown float islands precision {float_islands!r}; use fp16 "
                            "or fp32")
    strong = profile.strongly_typed if strong is None else strong
    flags: list[str] = []
    if precision == "fp32":
        if hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        return flags
    if strong or not profile.precision_flags:
        return flags
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        flags.append("INT8")
        if float_islands == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
            flags.append("FP16")
    elif precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        flags.append("FP16")
    return flags


def set_workspace(trt: Any, config: Any, nbytes: int) -> None:
    """Limit the builder's workspace (``set_memory_pool_limit``, 8.4 and later)."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))


def make_cache_calibrator(trt: Any, profile: TrtProfile, cache: bytes) -> Any:
    """A legacy ``IInt8EntropyCalibrator2`` that only replays a calibration cache.

    TensorRT reads the cache through ``read_calibration_cache`` and, since every scale is
    there, never asks for a batch; ``get_batch`` returning ``None`` would end calibration
    with no data if it did.

    Raises:
        TensorRTError: this TensorRT has no calibrators.
    """
    if not profile.legacy_calibrator:
        raise TensorRTError(f"TensorRT {profile.version_str} has no INT8 calibrators")
    base = trt.IInt8EntropyCalibrator2

    class CacheCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._cache = bytes(cache)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            return None

        def read_calibration_cache(self) -> bytes:
            return self._cache

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return CacheCalibrator()


def attach_calibrator(trt: Any, config: Any, profile: TrtProfile, calibrator: Any,
                      opt_profile: Any) -> None:
    """Give ``config`` the legacy calibrator (and the calibration profile, dynamic shapes)."""
    if not profile.legacy_calibrator:
        raise TensorRTError(f"TensorRT {profile.version_str} has no INT8 calibrators")
    config.int8_calibrator = calibrator
    config.set_calibration_profile(opt_profile)


def parser_errors(parser: Any) -> list[str]:
    """The ONNX parser's errors, one line each, with the node where the version says it."""
    out = []
    for i in range(int(parser.num_errors)):
        e = parser.get_error(i)
        where = []
        if hasattr(e, "node_name") and e.node_name():
            where.append(f"node {e.node_name()!r}")
        elif hasattr(e, "node") and int(e.node()) >= 0:
            where.append(f"node #{e.node()}")
        if hasattr(e, "node_operator") and e.node_operator():
            where.append(f"op {e.node_operator()}")
        out.append(f"{e.desc()}" + (f" ({', '.join(where)})" if where else ""))
    return out



def open_timing_cache(config: Any, blob: bytes, source: str, log: Any) -> Any:
    """``config.create_timing_cache(blob)`` that never aborts the build.

    A corrupt or truncated blob makes the real bindings return ``None`` (the C++
    ``IBuilderConfig::createTimingCache`` returns a null pointer and logs an error; pybind11
    turns it into ``None``), and ``set_timing_cache(None, ...)`` then raises. Some
    versions raise instead. Either way the build starts from an empty cache and says so.

    Returns:
        An ``ITimingCache``.

    Raises:
        TensorRTError: not even an empty timing cache can be created.
    """
    cache = None
    if blob:
        try:
            cache = config.create_timing_cache(blob)
        except Exception as e:  # pybind11 raises RuntimeError/TypeError alike
            log(f"timing cache {source} is unreadable ({e}); starting from an empty one")
        else:
            if cache is None:
                log(f"timing cache {source} is corrupt (TensorRT could not read it); "
                    "starting from an empty one")
    if cache is None:
        cache = config.create_timing_cache(b"")
    if cache is None:
        raise TensorRTError("TensorRT cannot create an empty timing cache")
    return cache


__all__ = [
    "use_strong_typing", "network_flags", "check_platform", "configure_precision",
    "set_workspace", "make_cache_calibrator", "attach_calibrator", "parser_errors",
    "open_timing_cache",
]
