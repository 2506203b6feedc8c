"""skelmtl edge runtime: the 75-joint skeleton, the one preprocessing, and the runtime.

Nothing in this package imports torch; heavy optional dependencies (onnxruntime,
mediapipe, tensorrt) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
