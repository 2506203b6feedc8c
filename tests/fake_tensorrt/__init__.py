"""A recording stand-in for the ``tensorrt`` Python module, one API surface per version.

Why: TensorRT cannot be installed here and there is no GPU, yet the engine builder must
drive three incompatible APIs (8.5/8.6 on JetPack 5, 10.x on JetPack 6, 11.x on
JetPack 7). ``make_tensorrt("10.3.0")`` returns a module object that exposes exactly the
names the documented Python API of that release has (NVIDIA's TensorRT Python API
reference for 8.5.3, 10.x and 11.x, and the 10.x -> 11.x migration guide's list of
removed Python APIs), and records every call in ``module.calls``.

What the stand-in checks, like the real module would:
    * names that do not exist in that version raise ``AttributeError``
      (``BuilderFlag.INT8`` / ``FP16``, ``config.int8_calibrator``,
      ``builder.platform_has_fast_int8``, ``IInt8EntropyCalibrator2`` on 11.x;
      ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` on 8.x);
    * on 8.x the ONNX parser refuses a network created without ``EXPLICIT_BATCH``;
    * the parser really reads the ONNX file (with ``onnx``) and reports the operators
      of that version's "not supported" list and non-standard domains as parser errors;
    * a network with a dynamic input builds only with an optimisation profile that
      covers every dynamic input with ``min <= opt <= max``;
    * layer precisions follow the documented rules: Q/DQ-fed Conv/Gemm/MatMul run in
      INT8 when the ``INT8`` flag is set (8.x/10.x) or the network is strongly typed
      (11.x); FP16 from the flag (8.x/10.x) or from FP16 tensors (strongly typed);
      implicit INT8 from a calibration cache whose header matches the version;
    * the engine inspector's JSON uses the schema of that version
      (``Format/Datatype`` + ``Bindings`` until 10.x, ``Format`` / ``DataType`` +
      ``I/O Tensors`` from 11.x), and only with ``ProfilingVerbosity.DETAILED``;
    * a serialized engine deserialises only in the same version;
    * timing caches are version-tagged and ``set_timing_cache`` refuses a foreign one
      unless told to ignore the mismatch; a corrupt blob makes ``create_timing_cache``
      return ``None`` (the C++ ``createTimingCache`` returns null and logs an error, which
      pybind11 hands back as ``None``) and ``set_timing_cache(None, ...)`` raises
      ``TypeError``, as the bindings do for a null ``ITimingCache`` (issue 14, item 8);
    * on 8.x the parser refuses an integer initializer feeding ``DequantizeLinear``
      (TensorRT 8.x quantizes weights itself from float constants, onnx-tensorrt 8.5
      ``operators.md`` "QuantizeLinear | FP32, FP16"; NVIDIA/TensorRT#2163 shows 8.4
      failing on int8 weights); the message text is ours, the refusal is theirs;
    * on 8.x MatMul never runs in INT8, even Q/DQ-fed (onnx-tensorrt 8.5
      ``operators.md``: "MatMul | FP32, FP16"): it runs FP16 with the FP16 flag, else FP32;
    * a weakly typed network with Q/DQ nodes builds only with the ``INT8`` flag
      (8.x/10.x: explicit quantization is enabled by that flag, TensorRT developer guide
      "Explicit Quantization"), and a strongly typed network refuses the ``INT8`` /
      ``FP16`` flags ("Precision-control build flags ... should not be specified"; the
      builder reports an error and returns no engine);
    * layers are named the way TensorRT names them (NVIDIA/TensorRT#1293's trtexec
      profile): a Q/DQ-fed Conv/Gemm/MatMul is fused with its weight, the weight's
      quantizer, a residual Add and a following ReLU as
      ``"w + Q_quantize_scale_node + Conv + Add + Relu"``;
      an activation quantizer is a standalone ``"<Q>_quantize_scale_node"`` layer
      (type ``Scale``) with FP32 input and INT8 output.

Each enum lists the members of that release's Python API reference (``BuilderFlag``,
``NetworkDefinitionCreationFlag``, ``MemoryPoolType``, ``ProfilingVerbosity``,
``DataType``).

What it cannot prove: that the real TensorRT accepts our Q/DQ placement, which tactics
it picks, the real layer fusion and naming, numerical results, argument types the
pybind11 bindings would reject, and anything about CUDA memory. Those are covered by the
``gpu``-marked tests, which run only where TensorRT and a GPU exist.
"""

from __future__ import annotations

import base64
import enum
import json
import types
from typing import Any

import onnx

from edge.engine.header import tensorrt_version_parts

MAGIC = b"FAKETRT\x00"


def _family(version: str) -> str:
    major = tensorrt_version_parts(version)[0]
    if major == 8:
        return "8"
    return "10" if major == 10 else "11"


# Operators each version's parser rejects (subset, mirrors calibration.trt.versions' lists).
_UNSUPPORTED = {
    "8.5": {"LayerNormalization", "QLinearConv", "QLinearMatMul", "ConvInteger",
            "MatMulInteger", "DynamicQuantizeLinear", "Unique", "Hardmax", "IsInf"},
    "8.6": {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
            "DynamicQuantizeLinear", "Unique", "Hardmax", "IsInf"},
    "10": {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
           "DynamicQuantizeLinear"},
    "11": {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
           "DynamicQuantizeLinear"},
}


def make_tensorrt(version: str = "10.3.0", *, fast_int8: bool = True, fast_fp16: bool = True,
                  int8_kernels: bool = True) -> types.ModuleType:
    """Build a fresh fake ``tensorrt`` module.

    Args:
        version: e.g. ``"8.5.2.2"``, ``"8.6.2"``, ``"10.3.0"``, ``"11.4.1"``.
        fast_int8: what ``platform_has_fast_int8`` answers (8.x/10.x).
        fast_fp16: what ``platform_has_fast_fp16`` answers (8.x/10.x).
        int8_kernels: when False the builder silently falls back to FP32 for
            quantized layers (what the post-build precision check must catch).
    """
    fam = _family(version)
    major, minor, patch, _ = tensorrt_version_parts(version)
    minor_key = f"{major}.{minor}"
    unsupported = _UNSUPPORTED.get(minor_key, _UNSUPPORTED.get(fam, set()))
    m = types.ModuleType("tensorrt")
    m.__version__ = version
    device_memory: dict[int, bytearray] = {}
    m.device_memory = device_memory  # type: ignore[attr-defined]  # "GPU" memory of HostCudaMemory
    calls: list[tuple[str, tuple[Any, ...]]] = []
    m.calls = calls  # type: ignore[attr-defined]

    def rec(name: str, *args: Any) -> None:
        calls.append((name, args))

    # --- enums (members per version) ---
    ncf = {"EXPLICIT_BATCH": 0}
    if fam == "8":
        ncf["EXPLICIT_PRECISION"] = 1
    else:
        ncf["STRONGLY_TYPED"] = 1
    if fam == "11":
        ncf["PREFER_AOT_PYTHON_PLUGINS"] = 2
        ncf["PREFER_JIT_PYTHON_PLUGINS"] = 3
    m.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", ncf)

    bflags = ["DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32",
              "SPARSE_WEIGHTS", "SAFETY_SCOPE", "REJECT_EMPTY_ALGORITHMS"]
    if fam in ("8", "10"):
        bflags += ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS",
                   "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO"]
    if fam == "8":
        bflags += ["STRICT_TYPES", "ENABLE_TACTIC_HEURISTIC"]
        if minor_key == "8.6":  # version-compatible engines and the FP8 flag arrived in 8.6
            bflags += ["FP8", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    if fam == "10":
        bflags += ["BF16", "FP8", "INT4", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME",
                   "STRIP_PLAN", "WEIGHT_STREAMING"]
    if fam == "11":
        bflags += ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "STRIP_PLAN",
                   "WEIGHT_STREAMING"]
    m.BuilderFlag = enum.IntEnum("BuilderFlag", {n: i for i, n in enumerate(bflags)})
    m.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1,
                                                       "DLA_LOCAL_DRAM": 2,
                                                       "DLA_GLOBAL_DRAM": 3})
    m.ProfilingVerbosity = enum.IntEnum("ProfilingVerbosity",
                                        {"LAYER_NAMES_ONLY": 0, "NONE": 1, "DETAILED": 2})
    m.LayerInformationFormat = enum.IntEnum("LayerInformationFormat", {"ONELINE": 0, "JSON": 1})
    # nvinfer1::DataType values (NvInferRuntimeBase.h): UINT8 from 8.5, FP8 from 8.6,
    # BF16 / INT64 / INT4 from 10.0, FP4 from 10.8.
    dtypes = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5}
    if minor_key == "8.6" or fam != "8":
        dtypes["FP8"] = 6
    if fam != "8":
        dtypes.update(BF16=7, INT64=8, INT4=9)
        if fam == "11" or minor >= 8:
            dtypes["FP4"] = 10
    m.DataType = enum.IntEnum("DataType", dtypes)
    m.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})

    class Logger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = 0, 1, 2, 3, 4

        def __init__(self, min_severity: int = 2) -> None:
            rec("Logger", min_severity)
            self.min_severity = min_severity
            self.messages: list[tuple[int, str]] = []

        def log(self, severity: int, msg: str) -> None:
            self.messages.append((severity, msg))

    m.Logger = Logger

    class Dims(tuple):  # mirrors trt.Dims, a sequence of ints
        pass

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: Any) -> None:
            self.name, self.shape, self.dtype = name, Dims(shape), dtype

    class ILayer:
        def __init__(self, name: str, op: str, inputs: list[str], quantized: bool,
                     half: bool, qlayer: bool = False, onnx_name: str = "") -> None:
            self.name, self.type, self.inputs = name, op, inputs
            self.quantized, self.half, self.qlayer = quantized, half, qlayer
            self.onnx_name = onnx_name or name

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.explicit_batch = fam != "8" or bool(flags & (1 << ncf["EXPLICIT_BATCH"]))
            self.strongly_typed = "STRONGLY_TYPED" in ncf and bool(
                flags & (1 << ncf["STRONGLY_TYPED"]))
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self._layers: list[ILayer] = []
            self.has_qdq = False
            self.onnx = b""

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))
        num_layers = property(lambda self: len(self._layers))

        def get_input(self, i: int) -> ITensor:
            return self._inputs[i]

        def get_output(self, i: int) -> ITensor:
            return self._outputs[i]

        def get_layer(self, i: int) -> ILayer:
            return self._layers[i]

    class ParserError:
        def __init__(self, desc: str, node: int, node_name: str = "", op: str = "") -> None:
            self._desc, self._node, self._name, self._op = desc, node, node_name, op

        def desc(self) -> str:
            return self._desc

        def code(self) -> int:
            return 8  # UNSUPPORTED_NODE

        def node(self) -> int:
            return self._node

        def file(self) -> str:
            return "ModelImporter.cpp"

        def line(self) -> int:
            return 0

        def func(self) -> str:
            return "parseGraph"

    if fam != "8":  # node_name / node_operator were added to IParserError in 10.x
        ParserError.node_name = lambda self: self._name  # type: ignore[attr-defined]
        ParserError.node_operator = lambda self: self._op  # type: ignore[attr-defined]

    def _elem_dtype(elem: int) -> Any:
        return {1: m.DataType.FLOAT, 10: m.DataType.HALF, 3: m.DataType.INT8,
                6: m.DataType.INT32, 9: m.DataType.BOOL}.get(elem, m.DataType.FLOAT)

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            rec("OnnxParser", network.flags)
            self.network, self.logger = network, logger
            self._errors: list[ParserError] = []

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, i: int) -> ParserError:
            return self._errors[i]

        def clear_errors(self) -> None:
            self._errors.clear()

        def parse_from_file(self, path: str) -> bool:
            rec("OnnxParser.parse_from_file", path)
            with open(path, "rb") as f:
                return self._parse(f.read())

        def parse(self, model: bytes, path: str | None = None) -> bool:
            rec("OnnxParser.parse", len(model))
            return self._parse(model)

        def _parse(self, data: bytes) -> bool:
            net = self.network
            if not net.explicit_batch:
                self._errors.append(ParserError(
                    "Network must have explicit batch dimension (create it with "
                    "EXPLICIT_BATCH)", -1))
                return False
            try:
                model = onnx.load_from_string(bytes(data))
            except Exception as e:  # the real parser reports any protobuf error
                self._errors.append(ParserError(f"Failed to parse ONNX model: {e}", -1))
                return False
            g = model.graph
            inits = {t.name for t in g.initializer}
            elem = {vi.name: vi.type.tensor_type.elem_type
                    for vi in list(g.input) + list(g.output) + list(g.value_info)}
            for t in g.initializer:
                elem[t.name] = t.data_type
            for i, n in enumerate(g.node):
                if n.domain not in ("", "ai.onnx"):
                    self._errors.append(ParserError(
                        f"No importer registered for op: {n.op_type} (domain {n.domain})",
                        i, n.name, n.op_type))
                elif n.op_type in unsupported:
                    self._errors.append(ParserError(
                        f"No importer registered for op: {n.op_type}", i, n.name, n.op_type))
            if fam == "8":
                for i, n in enumerate(g.node):
                    if n.op_type == "DequantizeLinear" and elem.get(n.input[0]) in (2, 3) \
                            and n.input[0] in inits:
                        self._errors.append(ParserError(
                            f"DequantizeLinear {n.name}: input {n.input[0]} is an integer "
                            "initializer; TensorRT " + version + " needs float weights "
                            "quantized by a QuantizeLinear node", i, n.name, n.op_type))
            if self._errors:
                return False
            for vi in g.input:
                if vi.name in inits:
                    continue
                dims = tuple(d.dim_value if d.HasField("dim_value") else -1
                             for d in vi.type.tensor_type.shape.dim)
                net._inputs.append(ITensor(vi.name, dims, _elem_dtype(vi.type.tensor_type.elem_type)))
            for vi in g.output:
                dims = tuple(d.dim_value if d.HasField("dim_value") else -1
                             for d in vi.type.tensor_type.shape.dim)
                net._outputs.append(ITensor(vi.name, dims, _elem_dtype(vi.type.tensor_type.elem_type)))
            producer = {o: n for n in g.node for o in n.output}
            readers: dict[str, list[Any]] = {}
            for n in g.node:
                for i in n.input:
                    readers.setdefault(i, []).append(n)
            dq_out = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
            net.has_qdq = bool(dq_out)
            net.onnx = bytes(data)  # what the engine will "execute" (see IExecutionContext)
            fused_relu: set[str] = set()
            for n in g.node:
                if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
                    net._layers.append(ILayer(f"{n.name}_quantize_scale_node", "Scale",
                                              list(n.input), False, False, qlayer=True))
                if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
                    continue
                if n.name in fused_relu:
                    continue
                quant = n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 \
                    and n.input[1] in dq_out
                half = any(elem.get(i) == 10 for i in n.input if i)
                parts = [n.name or n.output[0]]
                if quant:
                    dq = producer[n.input[1]]
                    wq = producer.get(dq.input[0])
                    if wq is not None and wq.op_type == "QuantizeLinear":
                        parts = [wq.input[0], f"{wq.name}_quantize_scale_node", *parts]
                    else:
                        parts = [dq.input[0], *parts]
                # Conv + (residual) Add + Relu fuse into one layer, as in #1293's profile
                cur, chain = n, []
                while n.op_type in ("Conv", "Gemm", "MatMul", "Add"):
                    nxt = readers.get(cur.output[0], [])
                    if len(nxt) != 1:
                        break
                    r = nxt[0]
                    if r.op_type == "Add" and n.op_type == "Conv" and not chain:
                        pass
                    elif r.op_type != "Relu" or "Relu" in chain:
                        break
                    parts.append(r.name)
                    fused_relu.add(r.name)
                    chain.append(r.op_type)
                    cur = r
                net._layers.append(ILayer(" + ".join(parts), n.op_type, list(n.input),
                                          quant, half, onnx_name=n.name))
            return True

    m.OnnxParser = OnnxParser

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:  # trt names
            rec("IOptimizationProfile.set_shape", name, tuple(min), tuple(opt), tuple(max))
            if not all(a <= b <= c for a, b, c in zip(min, opt, max)):
                raise ValueError(f"profile for {name}: need min <= opt <= max")
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class ITimingCache:
        def __init__(self, entries: int, ver: str) -> None:
            self.entries, self.version = entries, ver

        def serialize(self) -> bytes:
            return b"FAKETC" + json.dumps({"version": self.version,
                                           "entries": self.entries}).encode()

        def combine(self, other: ITimingCache, ignore_mismatch: bool) -> bool:
            self.entries += other.entries
            return True

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: set[str] = set()
            self.profiles: list[IOptimizationProfile] = []
            self.profiling_verbosity = m.ProfilingVerbosity.LAYER_NAMES_ONLY
            self.pool: dict[int, int] = {}
            self.timing_cache: ITimingCache | None = None
            self._calibrator: Any = None
            self.calibration_profile: Any = None
            self.builder_optimization_level = 3

        def set_flag(self, flag: Any) -> None:
            rec("IBuilderConfig.set_flag", flag.name)
            self.flags.add(flag.name)

        def clear_flag(self, flag: Any) -> None:
            rec("IBuilderConfig.clear_flag", flag.name)
            self.flags.discard(flag.name)

        def get_flag(self, flag: Any) -> bool:
            return flag.name in self.flags

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            rec("IBuilderConfig.set_memory_pool_limit", pool.name, size)
            self.pool[int(pool)] = int(size)

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            rec("IBuilderConfig.add_optimization_profile", dict(profile.shapes))
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized: bytes) -> ITimingCache | None:
            rec("IBuilderConfig.create_timing_cache", len(serialized))
            data = bytes(serialized)
            if not data:
                return ITimingCache(0, version)
            try:
                if not data.startswith(b"FAKETC"):
                    raise ValueError("bad magic")
                d = json.loads(data[6:])
                return ITimingCache(int(d["entries"]), str(d["version"]))
            except (ValueError, KeyError, TypeError):
                return None  # the C++ API returns nullptr; pybind11 gives None

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if cache is None:
                raise TypeError("set_timing_cache(): incompatible function arguments "
                                "(cache is None)")
            rec("IBuilderConfig.set_timing_cache", cache.entries, ignore_mismatch)
            if cache.version != version and not ignore_mismatch:
                return False
            self.timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self.timing_cache

    if fam in ("8", "10"):
        def _get_cal(self: IBuilderConfig) -> Any:
            return self._calibrator

        def _set_cal(self: IBuilderConfig, c: Any) -> None:
            rec("IBuilderConfig.int8_calibrator", type(c).__name__)
            self._calibrator = c

        IBuilderConfig.int8_calibrator = property(_get_cal, _set_cal)  # type: ignore[attr-defined]

        def _set_calprof(self: IBuilderConfig, p: Any) -> bool:
            rec("IBuilderConfig.set_calibration_profile")
            self.calibration_profile = p
            return True

        IBuilderConfig.set_calibration_profile = _set_calprof  # type: ignore[attr-defined]

        class IInt8Calibrator:
            def __init__(self) -> None:
                rec("IInt8Calibrator.__init__", type(self).__name__)

        class IInt8EntropyCalibrator2(IInt8Calibrator):
            pass

        m.IInt8Calibrator = IInt8Calibrator
        m.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
        m.CalibrationAlgoType = enum.IntEnum("CalibrationAlgoType", {
            "LEGACY_CALIBRATION": 0, "ENTROPY_CALIBRATION": 1, "ENTROPY_CALIBRATION_2": 2,
            "MINMAX_CALIBRATION": 3})

    class HostMemory:
        def __init__(self, data: bytes) -> None:
            self._data = data
            self.nbytes = len(data)

        def __bytes__(self) -> bytes:
            return self._data

        def __buffer__(self, flags: int) -> memoryview:
            return memoryview(self._data)

    def _cache_scales(cal: Any) -> dict[str, float] | None:
        data = cal.read_calibration_cache()
        if not data:
            return None
        text = bytes(data).decode("ascii", "replace").splitlines()
        # NV_TENSORRT_VERSION, as TensorRT writes it in the cache header
        num = major * 1000 + minor * 100 + patch if major < 10 else \
            major * 10000 + minor * 100 + patch
        if not text or text[0].strip() != f"TRT-{num}-EntropyCalibration2":
            return None  # TensorRT ignores a cache from another version or algorithm
        out = {}
        for ln in text[1:]:
            name, _, h = ln.rpartition(":")
            out[name.strip()] = h.strip()
        return out  # type: ignore[return-value]

    class Builder:
        def __init__(self, logger: Logger) -> None:
            rec("Builder", logger.min_severity)
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            rec("Builder.create_network", flags)
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            rec("Builder.create_builder_config")
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            rec("Builder.create_optimization_profile")
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition,
                                     config: IBuilderConfig) -> HostMemory | None:
            rec("Builder.build_serialized_network", sorted(config.flags))
            strong = network.strongly_typed
            if strong and config.flags & {"INT8", "FP16", "BF16", "FP8", "INT4"}:
                self.logger.log(1, "Error Code 3: API Usage Error (precision flags "
                                   f"{sorted(config.flags & {'INT8', 'FP16'})} are not "
                                   "allowed for a strongly typed network)")
                return None
            if network.has_qdq and not strong and "INT8" not in config.flags:
                self.logger.log(1, "Error Code 4: Internal Error (the network has Q/DQ "
                                   "layers but the INT8 builder flag is not set)")
                return None
            dyn = [t for t in network._inputs if -1 in t.shape]
            prof = config.profiles[0].shapes if config.profiles else {}
            for t in dyn:
                if t.name not in prof:
                    self.logger.log(1, f"Network has dynamic input {t.name} but no "
                                       "optimization profile covers it")
                    return None
            cal = getattr(config, "_calibrator", None)
            scales = None
            if "INT8" in config.flags and cal is not None and not network.has_qdq:
                scales = _cache_scales(cal)
                if scales is None and cal.get_batch(["input"]) is None:
                    self.logger.log(1, "Calibration failure: no calibration data and no "
                                       "usable cache")
                    return None
            layers = []
            for lay in network._layers:
                in_prec = None
                if lay.qlayer:
                    layers.append({"name": lay.name, "type": lay.type, "prec": "Int8",
                                   "in_prec": "Float"})
                    continue
                if lay.quantized and lay.type == "MatMul" and fam == "8":
                    prec = "Half" if "FP16" in config.flags and fast_fp16 else "Float"
                elif lay.quantized and (strong or "INT8" in config.flags) and int8_kernels:
                    prec = "Int8"
                elif scales is not None and lay.inputs and lay.inputs[0] in scales \
                        and int8_kernels and lay.type in ("Conv", "Gemm", "MatMul"):
                    prec = "Int8"
                elif (strong and lay.half) or ("FP16" in config.flags and fast_fp16):
                    prec = "Half"
                else:
                    prec = "Float"
                layers.append({"name": lay.name, "type": lay.type, "prec": prec,
                               "onnx": lay.onnx_name, **({"in_prec": in_prec} if in_prec
                                                          else {})})
            if config.timing_cache is not None:
                config.timing_cache.entries += len(layers)
            blob = {"version": version, "strongly_typed": strong, "flags": sorted(config.flags),
                    "profile": {k: [list(x) for x in v] for k, v in prof.items()},
                    "verbosity": int(config.profiling_verbosity), "layers": layers,
                    "inputs": [[t.name, list(t.shape)] for t in network._inputs],
                    "outputs": [[t.name, list(t.shape)] for t in network._outputs],
                    "onnx": base64.b64encode(network.onnx).decode("ascii")}
            return HostMemory(MAGIC + json.dumps(blob).encode())

    if fam in ("8", "10"):
        Builder.platform_has_fast_int8 = property(lambda self: fast_int8)  # type: ignore[attr-defined]
        Builder.platform_has_fast_fp16 = property(lambda self: fast_fp16)  # type: ignore[attr-defined]
    m.Builder = Builder

    class EngineInspector:
        def __init__(self, blob: dict[str, Any]) -> None:
            self.blob = blob

        def get_engine_information(self, fmt: Any) -> str:
            rec("EngineInspector.get_engine_information", fmt.name)
            b = self.blob
            if b["verbosity"] != int(m.ProfilingVerbosity.DETAILED):
                return json.dumps({"Layers": [lay["name"] for lay in b["layers"]]})
            layers = []
            def io_of(prec: str) -> dict[str, str]:
                if fam == "11":
                    return {"Format": "Row major linear format (kLINEAR)", "DataType": prec}
                word = {"Int8": "Int8", "Half": "FP16", "Float": "FP32"}[prec]
                return {"Format/Datatype": f"Row major linear {word} format"}

            for lay in b["layers"]:
                out_io = io_of(lay["prec"])
                in_io = io_of(lay.get("in_prec", lay["prec"]))
                layers.append({"Name": lay["name"], "LayerType": lay["type"],
                               "Inputs": [dict(in_io, Name="in")],
                               "Outputs": [dict(out_io, Name="out")]})
            names = [t[0] for t in b["inputs"] + b["outputs"]]
            if fam == "11":
                return json.dumps({"Layers": layers, "I/O Tensors": [
                    {"Name": n, "DataType": "Float"} for n in names]})
            return json.dumps({"Layers": layers, "Bindings": names})

    class ICudaEngine:
        def __init__(self, blob: dict[str, Any]) -> None:
            self.blob = blob
            self._io = [(n, s, m.TensorIOMode.INPUT) for n, s in blob["inputs"]] + \
                       [(n, s, m.TensorIOMode.OUTPUT) for n, s in blob["outputs"]]

        num_io_tensors = property(lambda self: len(self._io))
        num_layers = property(lambda self: len(self.blob["layers"]))

        def get_tensor_name(self, i: int) -> str:
            return self._io[i][0]

        def get_tensor_mode(self, name: str) -> Any:
            return next(mode for n, _, mode in self._io if n == name)

        def get_tensor_shape(self, name: str) -> Any:
            return Dims(next(s for n, s, _ in self._io if n == name))

        def create_engine_inspector(self) -> EngineInspector:
            rec("ICudaEngine.create_engine_inspector")
            return EngineInspector(self.blob)

        def get_tensor_dtype(self, name: str) -> Any:
            return m.DataType.FLOAT

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Any]:
            return [Dims(d) for d in self.blob["profile"][name]]

        def create_execution_context(self) -> IExecutionContext:
            rec("ICudaEngine.create_execution_context")
            return IExecutionContext(self)

    class IExecutionContext:
        """Runs the engine's ONNX model with ONNX Runtime on :data:`device_memory`: the
        numbers are ONNX Runtime's (Q/DQ simulated on a CPU), not TensorRT's; what it checks
        is the name-based I/O protocol of TensorRT >= 8.5 (addresses, input shape,
        ``execute_async_v3``)."""

        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.addresses: dict[str, int] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}
            self._session: Any = None

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addresses[name] = int(ptr)
            return True

        def set_input_shape(self, name: str, shape: Any) -> bool:
            lo, _, hi = self.engine.blob["profile"][name]
            if not all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
                return False
            self.shapes[name] = tuple(int(d) for d in shape)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            import numpy as np
            import onnxruntime as ort

            rec("IExecutionContext.execute_async_v3", stream_handle)
            if self._session is None:
                self._session = ort.InferenceSession(
                    base64.b64decode(self.engine.blob["onnx"]),
                    providers=["CPUExecutionProvider"])
            feeds = {}
            for name, _ in self.engine.blob["inputs"]:
                shape = self.shapes[name]
                buf = device_memory[self.addresses[name]]
                feeds[name] = np.frombuffer(buf, np.float32, int(np.prod(shape))).reshape(shape)
            outs = self._session.run([n for n, _ in self.engine.blob["outputs"]], feeds)
            for (name, _), value in zip(self.engine.blob["outputs"], outs):
                raw = np.ascontiguousarray(value, np.float32).tobytes()
                device_memory[self.addresses[name]][: len(raw)] = raw
            return True

    if fam == "8":
        ICudaEngine.num_bindings = property(lambda self: len(self._io))  # type: ignore[attr-defined]

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            rec("Runtime", logger.min_severity)
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
            rec("Runtime.deserialize_cuda_engine", len(bytes(data)))
            data = bytes(data)
            if not data.startswith(MAGIC):
                self.logger.log(1, "Serialization assertion failed: magic tag mismatch")
                return None
            blob = json.loads(data[len(MAGIC):])
            if blob["version"] != version:
                self.logger.log(1, f"The engine plan file is not compatible with this version "
                                   f"of TensorRT, expecting library version {version} got "
                                   f"{blob['version']}")
                return None
            return ICudaEngine(blob)

    m.Runtime = Runtime
    return m


class HostCudaMemory:
    """``edge.backends.tensorrt.CudaMemory`` over host memory, for the stand-in's
    execution context: "device" pointers index ``trt.device_memory``."""

    name = "host"
    stream_handle = 1

    def __init__(self, trt: types.ModuleType) -> None:
        self.memory: dict[int, bytearray] = trt.device_memory  # type: ignore[attr-defined]
        self.closed = False

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> Any:
        import numpy as np

        return np.zeros(shape, dtype)

    def device(self, nbytes: int) -> int:
        ptr = len(self.memory) + 1
        self.memory[ptr] = bytearray(max(1, nbytes))
        return ptr

    def htod(self, ptr: int, host: Any) -> None:
        raw = host.tobytes()
        self.memory[ptr][: len(raw)] = raw

    def dtoh(self, host: Any, ptr: int) -> None:
        import numpy as np

        host[...] = np.frombuffer(self.memory[ptr], host.dtype, host.size).reshape(host.shape)

    def synchronize(self) -> None:
        pass

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def engine_blob(engine_bytes: bytes) -> dict[str, Any]:
    """What the fake builder put in a serialized engine (for test assertions)."""
    assert engine_bytes.startswith(MAGIC)
    return json.loads(engine_bytes[len(MAGIC):])


def call_names(trt: types.ModuleType) -> list[str]:
    """The recorded call names, in order."""
    return [c[0] for c in trt.calls]  # type: ignore[attr-defined]
