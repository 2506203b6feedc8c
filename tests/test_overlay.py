"""The overlay draws joints where they are, in the coordinate frame each frame names."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.core.layout import L_HIP, L_SHOULDER, NUM_JOINTS, R_HIP, R_SHOULDER
from edge.frontend.landmarks import LandmarkerError
from edge.runtime.overlay import METRES_FOV_DEG, OverlayWriter, draw_skeleton, to_pixels

ROOT = Path(__file__).resolve().parents[1]

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


def test_what_a_killed_writer_left_is_removed_by_the_next(tmp_path: Path) -> None:
    """kill -9 during an overlay leaves its pid-named temporary file; the next overlay of the
    same name removes it, and keeps what is not a dead writer's (issue 15)."""
    import cv2

    out = tmp_path / "o.mp4"
    code = ("import os, signal\nimport numpy as np\nfrom edge.runtime.overlay import OverlayWriter\n"
            f"w = OverlayWriter({str(out)!r})\n"
            "w.write_image(np.zeros((48, 64, 3), np.uint8))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and re.fullmatch(rf"\.o\.mp4\.{proc.pid}-[a-z0-9_]+\.tmp\.mp4",
                                           left[0]), left
    live = tmp_path / f".o.mp4.{os.getpid()}-abc.tmp.mp4"  # a writer still running
    mine = tmp_path / ".o.mp4.notes.tmp.mp4"  # not a writer's name at all
    for p in (live, mine):
        p.write_text("keep")
    with OverlayWriter(out, fps=10) as w:
        for i in range(3):
            w.write_image(np.full((48, 64, 3), 60 * i, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, mine.name,
                                                                 "o.mp4"])
    assert live.read_text() == mine.read_text() == "keep"
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_an_aborted_overlay_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    out.write_bytes(b"the previous overlay")
    with pytest.raises(RuntimeError), OverlayWriter(out) as w:
        w.write_image(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("stop")
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"]
    assert out.read_bytes() == b"the previous overlay"
