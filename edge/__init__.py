"""skelmtl edge runtime: the 75-joint skeleton, the one preprocessing, and the runtime.

Nothing in this package imports torch, trainer or calibration; heavy optional
dependencies (onnxruntime, mediapipe, OpenCV, TensorRT) are imported inside the
functions that need them. Its sub-packages, each opening with what lives there and what
it may import, from the bottom up: core (the data and its files), engine (TensorRT engine
files without TensorRT), backends (a model file run behind one interface), frontend
(pictures to landmarks), runtime (landmarks to events), bench (the benchmark) and
commands (run, demo, extract). docs/architecture.md draws the map.
"""

__version__ = "0.1.0"
