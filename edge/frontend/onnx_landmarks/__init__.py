"""A landmark front end on MediaPipe's models converted to ONNX (GPU-capable).

:class:`OnnxLandmarker` runs the pose detector, pose landmark and hand landmark models
(converted once by ``skelmtl convert-landmarks``, :mod:`calibration.convert_landmarks`)
through ONNX Runtime (CPU here; CUDA or TensorRT providers on a GPU), with the detection
decoding, ROI, crop, projection and tracking of MediaPipe's graphs reimplemented in
:mod:`edge.frontend.onnx_landmarks.geometry`, and its video-mode pose smoothing in
:mod:`edge.frontend.onnx_landmarks.smoothing`. Hands are placed from the body (MediaPipe holistic's
rule), not by a palm detector. It returns the same :class:`edge.frontend.landmarks.LandmarkFrame`
as the Tasks-API front end, which stays the default (docs/landmarks.md has the
comparison).

Usage: from edge.frontend.onnx_landmarks import OnnxLandmarker; OnnxLandmarker(mode="video")
"""

from edge.frontend.onnx_landmarks.landmarker import (
    MODEL_FILES,
    OnnxLandmarker,
    default_model_dir,
    missing_models,
    require_models,
)

__all__ = ["MODEL_FILES", "OnnxLandmarker", "default_model_dir", "missing_models",
           "require_models"]
