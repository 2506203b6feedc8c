"""The overlay draws joints where they are, in the coordinate frame each frame names."""
from __future__ import annotations

import numpy as np
import pytest

from edge.landmarks import LandmarkerError
from edge.layout import L_HIP, L_SHOULDER, NUM_JOINTS, R_HIP, R_SHOULDER
from edge.overlay import METRES_FOV_DEG, draw_skeleton, to_pixels

pytest.importorskip("cv2")


def _close_up() -> tuple[np.ndarray, np.ndarray]:
    """A close-up as MediaPipe reports it: shoulders in the picture, hips below it."""
    j = np.zeros((NUM_JOINTS, 3), np.float32)
    m = np.zeros(NUM_JOINTS, bool)
    for k, xy in {L_SHOULDER: (0.7, 0.8), R_SHOULDER: (0.3, 0.8), L_HIP: (0.65, 2.4),
                  R_HIP: (0.35, 2.4)}.items():
        j[k, :2] = xy
        m[k] = True
    return j, m


def test_normalised_joints_below_the_picture_stay_below_it() -> None:
    j, m = _close_up()
    px = to_pixels(j, m, (176, 144), "image")
    assert px[L_SHOULDER] == pytest.approx((0.7 * 176, 0.8 * 144))
    assert px[R_HIP] == pytest.approx((0.35 * 176, 2.4 * 144))  # not squeezed in


def test_pixels_scale_from_the_analysed_image() -> None:
    j, m = _close_up()
    j[:, :2] *= (176, 144)
    px = to_pixels(j, m, (352, 288), "pixels", image_size=(176, 144))
    assert px[L_SHOULDER] == pytest.approx((0.7 * 352, 0.8 * 288))
    assert to_pixels(j, m, (352, 288), "pixels")[L_SHOULDER] == pytest.approx(j[L_SHOULDER, :2])


def test_metres_project_through_a_camera_at_the_origin() -> None:
    j = np.zeros((NUM_JOINTS, 3), np.float32)
    m = np.zeros(NUM_JOINTS, bool)
    j[L_SHOULDER], j[R_SHOULDER] = (0.2, -0.3, 2.5), (-0.2, -0.3, 2.5)
    m[[L_SHOULDER, R_SHOULDER]] = True
    f = 320 / np.tan(np.radians(METRES_FOV_DEG) / 2)
    px = to_pixels(j, m, (640, 480), "metres")
    assert px[L_SHOULDER] == pytest.approx((320 + 0.2 * f / 2.5, 240 - 0.3 * f / 2.5))
    flat = j.copy()
    flat[:, 2] = 0.0  # no depth: orthographic, 2.5 m across the height
    assert to_pixels(flat, m, (640, 480), "metres")[R_SHOULDER] == pytest.approx(
        (320 - 0.2 * 480 / 2.5, 240 - 0.3 * 480 / 2.5))
    with pytest.raises(LandmarkerError, match="overlay: unknown coordinate frame 'feet'"):
        to_pixels(j, m, (640, 480), "feet")


def test_drawn_where_the_joints_are() -> None:
    j, m = _close_up()
    img = draw_skeleton(np.zeros((144, 176, 3), np.uint8), j, m, "image")
    ys, xs = np.nonzero(img.any(axis=2))
    # The shoulder line at y = 0.8 * 144 = 115 is drawn; the hips (y = 346) are off the
    # picture, so nothing lies above the shoulders' line minus the dot radius.
    assert abs(ys.min() - 0.8 * 144) <= 3 and ys.max() == 143
    assert xs.min() >= 0.3 * 176 - 4 and xs.max() <= 0.7 * 176 + 4
