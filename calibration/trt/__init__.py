"""TensorRT: every version difference, split by job.

The engine builder (:mod:`calibration.engine`) never tests a version number itself: it asks
the :class:`~calibration.trt.versions.TrtProfile` of the installed TensorRT what to do,
and calls the helpers here for the API calls that differ:

* :mod:`calibration.trt.versions`: the profiles of each release and the errors;
* :mod:`calibration.trt.onnx_checks`: what each parser rejects, checked on the ONNX model;
* :mod:`calibration.trt.builder`: network flags, precision flags, calibrator, timing cache;
* :mod:`calibration.trt.inspection`: the built engine's layers and the precision check;
* :mod:`calibration.trt.calib_cache`: the legacy calibration cache's text format.

The versions we support, and what differs:

============  =========  ==========================================================
TensorRT      JetPack    differences that matter to us
============  =========  ==========================================================
8.5.x         5.1.x      networks need ``EXPLICIT_BATCH``; precision by builder flags
8.6.x         6.0 (DP)   (``INT8``, ``FP16``); Q/DQ models build with the ``INT8``
                         flag; the legacy ``IInt8EntropyCalibrator2`` reads a
                         calibration cache (implicit quantization); ONNX opset <= 17;
                         8.5 has no ``LayerNormalization``; ``Einsum`` without
                         ellipsis, diagonals or broadcasting; weights are quantized by
                         the parser from float constants (float -> Q -> DQ), and
                         MatMul has no INT8 (onnx-tensorrt 8.5 ``operators.md``:
                         "MatMul | FP32, FP16").
10.x          6.1, 6.2   explicit batch always (flag deprecated, not needed);
              (10.3);    precision flags still exist; calibrators deprecated since
              7.0        10.1; ``platform_has_fast_int8`` deprecated since 10.5;
              (10.13+)   int8 weight initializers behind ``DequantizeLinear`` are
                         documented ("Quantized Weights"); MatMul lists INT8;
                         from 10.12 NVIDIA recommends strongly typed networks for
                         Q/DQ models ("Use explicit quantization with Strong
                         Typing. Precision-control build flags are not required and
                         should not be specified").
11.x          7.2.2+     strongly typed networks only: ``BuilderFlag.FP16/INT8``,
              (11.4.1+)  ``OBEY_PRECISION_CONSTRAINTS``, calibrators,
                         ``int8_calibrator`` and ``platform_has_fast_int8/fp16`` are
                         removed; INT8 only from Q/DQ, FP16 only from an FP16-typed
                         ONNX model; the engine inspector's JSON changed
                         (``Bindings`` -> ``I/O Tensors``; ``Format/Datatype`` split).
============  =========  ==========================================================

TensorRT 8.6 ships with JetPack 6.0 (developer preview), not JetPack 5.1 (which has 8.5.2);
TensorRT 11 reaches Jetson only as 11.4.1 and later on JetPack 7.2.2 and later.

Sources: NVIDIA's TensorRT Python API reference per release and the "Migrating from
TensorRT 10.x to 11.x" guide (Python API reference, IEngineInspector JSON output,
Jetson/JetPack pages); onnx-tensorrt ``docs/operators.md`` at the 8.5 release for the
operator matrix ("MatMul | FP32, FP16", "QuantizeLinear | FP32, FP16", "DequantizeLinear |
INT8 | x_zero_point must be zero"); NVIDIA's "Explicit Quantization" page (quantized
weights behind ``IDequantizeLayer``; "use explicit quantization with Strong Typing.
Precision-control build flags are not required and should not be specified"); trtexec's
advice to add FP16 to INT8 builds (quoted in NVIDIA/TensorRT#2664); TensorRT's fused layer
names (``w + Q_quantize_scale_node + Conv + Relu``, NVIDIA/TensorRT#1293); the timing cache
API (``IBuilderConfig.create_timing_cache`` / ``set_timing_cache``, Python API reference).
The ONNX each version is handed is prepared in :mod:`calibration.trt_prepare`.

These modules import neither TensorRT nor onnx at import time: the ``trt`` module is
passed in, so the same code runs against the real bindings on a Jetson and against the
recording stand-in in ``tests/fake_tensorrt``.
"""
