"""TensorRT engine files, with no TensorRT at import: the engine file format (a metadata
header in front of the serialized plan, read without TensorRT) and the Jetson container's
engine cache (one engine per GPU, L4T, TensorRT, precision and model). Building an engine
is calibration.engine (run here as ``skelmtl build-engine`` in a child process); running
one is edge.backends.tensorrt.

May import: edge.core.
"""
