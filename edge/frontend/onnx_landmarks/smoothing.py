"""MediaPipe's pose landmark smoothing, for the ONNX front end's video mode.

The Tasks API's pose landmarker, in ``VIDEO`` / ``LIVE_STREAM`` mode with one pose, filters
its 33 image landmarks over time (``MultiplePoseLandmarksDetectorGraph`` in
``mediapipe/tasks/cc/vision/pose_landmarker/pose_landmarks_detector_graph.cc``):

1. **visibility**: a low-pass filter per landmark, ``v = 0.1 * new + 0.9 * previous``
   (``VisibilitySmoothingCalculator``, ``low_pass_filter { alpha: 0.1 }``);
2. **x, y, z**: a One Euro filter per landmark and axis (``LandmarksSmoothingCalculator``,
   ``one_euro_filter { min_cutoff: 0.05 beta: 80 derivate_cutoff: 1 }``), on pixel
   coordinates (z scaled by the image width, as x), with the speed measured in object sizes
   per second: the object size is the mean of the width and height in pixels of the pose's
   next-frame region (``OBJECT_SCALE_ROI``: ``pose_rects_next_frame``).

A frame without a pose resets both filters (the calculators reset on an empty packet).
The auxiliary landmarks that place the next region are not smoothed by the Tasks API (the
legacy ``pose_landmark_filtering.pbtxt`` did smooth them, with other values); nor are
hands: its hand landmarker graph has no smoothing node.

:func:`one_euro` is ``mediapipe/util/filtering/one_euro_filter.cc`` vectorised over all
values of a frame (they share the timestamp and object scale), including its two
timestamp rules: a timestamp not after the last one passes the values through unfiltered
and leaves the state alone (so a first frame at time 0 is never seen by the filter), and
the rate stays at ``frequency`` until two non-zero timestamps give one.

Usage: state = PoseSmoothing(); out, vis, state = smooth_pose(state, lms, vis, t_us, scale, (w, h))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class OneEuroSettings:
    """A One Euro filter's settings (``LandmarksSmoothingCalculatorOptions.OneEuroFilter``).

    Attributes:
        min_cutoff: cutoff frequency (Hz) of a still value.
        beta: how much the cutoff rises with the filtered speed (object sizes per second).
        derivate_cutoff: cutoff frequency (Hz) of the speed's own low-pass filter.
        frequency: frame rate assumed until two timestamps give one (proto default 30).
        min_allowed_object_scale: below this object size (px) values pass unfiltered
            (proto default 1e-6).
    """

    min_cutoff: float
    beta: float
    derivate_cutoff: float = 1.0
    frequency: float = 30.0
    min_allowed_object_scale: float = 1e-6


# The Tasks API's pose landmarks filter, pose_landmarks_detector_graph.cc (MediaPipe
# 0.10.x and later): "Min cutoff 0.05 results into ~0.01 alpha ... when landmark is
# static. Beta 80.0 ... ~0.94 alpha ... when landmark is moving fast."
POSE_ONE_EURO = OneEuroSettings(min_cutoff=0.05, beta=80.0, derivate_cutoff=1.0)
# The same graph's SmoothLandmarksVisibility(landmarks, low_pass_filter_alpha=0.1).
POSE_VISIBILITY_ALPHA = 0.1


@dataclass(frozen=True)
class OneEuroState:
    """A One Euro filter bank's state between frames (all arrays one shape, float64).

    Attributes:
        last_us: the last filtered timestamp in microseconds (0: none yet, as MediaPipe).
        frequency: the current frame rate (Hz).
        raw: the last unfiltered values, or None before the first.
        value: the last filtered values, or None before the first.
        speed: the last filtered speed (object sizes per second), or None.
    """

    last_us: int = 0
    frequency: float = 30.0
    raw: np.ndarray | None = None
    value: np.ndarray | None = None
    speed: np.ndarray | None = None


def _alpha(cutoff: np.ndarray | float, frequency: float) -> np.ndarray:
    """The exponential filter's weight of a new value for a cutoff (Hz) at a rate (Hz):
    ``1 / (1 + tau / te)`` with ``tau = 1 / (2 pi cutoff)``, ``te = 1 / frequency``."""
    return 1.0 / (1.0 + frequency / (2.0 * math.pi * np.asarray(cutoff, np.float64)))


def one_euro(state: OneEuroState, values: np.ndarray, t_us: int, value_scale: float,
             settings: OneEuroSettings) -> tuple[np.ndarray, OneEuroState]:
    """One frame through a bank of One Euro filters.

    Args:
        state: the bank's state (``OneEuroState(frequency=settings.frequency)`` to start).
        values: any shape, float; each element is filtered on its own.
        t_us: the frame's timestamp in microseconds.
        value_scale: 1 / object size; the speed is ``change * value_scale * frequency``.
        settings: the filter's settings.

    Returns:
        The filtered values (float64, ``values``' shape) and the new state.
    """
    x = np.asarray(values, np.float64)
    if state.last_us >= t_us:
        return x.copy(), state
    frequency = state.frequency
    if state.last_us != 0 and t_us != 0:
        frequency = 1e6 / float(t_us - state.last_us)
    raw_speed = (np.zeros_like(x) if state.raw is None
                 else (x - state.raw) * value_scale * frequency)
    if state.speed is None:
        speed = raw_speed
    else:
        a_d = _alpha(settings.derivate_cutoff, frequency)
        speed = a_d * raw_speed + (1.0 - a_d) * state.speed
    a = _alpha(settings.min_cutoff + settings.beta * np.abs(speed), frequency)
    out = x.copy() if state.value is None else a * x + (1.0 - a) * state.value
    return out, OneEuroState(t_us, frequency, x, out, speed)


def low_pass(previous: np.ndarray | None, values: np.ndarray, alpha: float) -> np.ndarray:
    """MediaPipe's ``LowPassFilter``: the first values pass, then
    ``alpha * new + (1 - alpha) * previous``."""
    x = np.asarray(values, np.float64)
    return x.copy() if previous is None else alpha * x + (1.0 - alpha) * previous


@dataclass(frozen=True)
class PoseSmoothing:
    """The pose filters' state: empty at the start and after a frame without a pose.

    Attributes:
        landmarks: the One Euro bank over ``(33, 3)`` pixel coordinates.
        visibility: the last filtered ``(33,)`` visibility, or None.
    """

    landmarks: OneEuroState = field(
        default_factory=lambda: OneEuroState(frequency=POSE_ONE_EURO.frequency))
    visibility: np.ndarray | None = None


def smooth_pose(state: PoseSmoothing, landmarks: np.ndarray, visibility: np.ndarray,
                t_us: int, object_scale: float, image_size: tuple[int, int],
                settings: OneEuroSettings = POSE_ONE_EURO,
                visibility_alpha: float = POSE_VISIBILITY_ALPHA
                ) -> tuple[np.ndarray, np.ndarray, PoseSmoothing]:
    """One frame of the Tasks API's pose smoothing.

    Args:
        state: the previous state (:class:`PoseSmoothing` to start or after a reset).
        landmarks: ``(N, 3)`` image-normalised x, y, z (z on the x scale).
        visibility: ``(N,)`` visibility.
        t_us: timestamp in microseconds.
        object_scale: the pose's size in pixels, the mean of its next-frame region's
            width and height in pixels.
        image_size: ``(width, height)``.

    Returns:
        The smoothed ``(N, 3)`` landmarks and ``(N,)`` visibility (float32) and the new
        state.
    """
    w, h = image_size
    vis = low_pass(state.visibility, visibility, visibility_alpha)
    if object_scale < settings.min_allowed_object_scale:
        return (np.asarray(landmarks, np.float32).copy(), vis.astype(np.float32),
                replace(state, visibility=vis))
    px_per_unit = np.asarray([w, h, w], np.float64)
    px = np.asarray(landmarks, np.float64) * px_per_unit
    out, bank = one_euro(state.landmarks, px, t_us, 1.0 / object_scale, settings)
    return ((out / px_per_unit).astype(np.float32), vis.astype(np.float32),
            PoseSmoothing(bank, vis))
