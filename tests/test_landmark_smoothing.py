"""The Tasks API's pose smoothing reimplemented for the ONNX front end
(edge/frontend/onnx_landmarks/smoothing.py): the One Euro filter against hand-computed
values, its effect on jitter and on a step, and its resets."""

from __future__ import annotations

import numpy as np
import pytest

from edge.frontend.onnx_landmarks import smoothing as sm


def _run(values: np.ndarray, scale: float, settings: sm.OneEuroSettings = sm.POSE_ONE_EURO,
         t0_us: int = 33_333) -> np.ndarray:
    """Each value through one filter at 30 fps, first frame at ``t0_us``."""
    state, out = sm.OneEuroState(frequency=settings.frequency), []
    for i, v in enumerate(values):
        o, state = sm.one_euro(state, np.asarray([v]), t0_us + i * 33_333, 1.0 / scale,
                               settings)
        out.append(float(o[0]))
    return np.asarray(out)


def test_one_euro_matches_hand_computed_values() -> None:
    # min_cutoff 1 Hz, beta 0.5, derivative cutoff 1 Hz; frames 0.1 s apart, values 10,
    # 12, 11, value scale 0.5. By hand (alpha(c) = 1 / (1 + f / (2 pi c))):
    # frame 1: passes (10); the rate stays the default 30 Hz (only one timestamp).
    # frame 2: f = 10 Hz; speed (12 - 10) * 0.5 * 10 = 10, filtered with
    #   alpha(1) = 0.385870 -> 3.858695; cutoff 1 + 0.5 * 3.858695 = 2.929348;
    #   alpha = 0.647957; 0.647957 * 12 + 0.352043 * 10 = 11.295914.
    # frame 3: speed -5 -> 0.385870 * -5 + 0.614130 * 3.858695 = 0.440395;
    #   cutoff 1.220197; alpha 0.433964; 0.433964 * 11 + 0.566036 * 11.295914 = 11.167498.
    settings = sm.OneEuroSettings(min_cutoff=1.0, beta=0.5, derivate_cutoff=1.0)
    state = sm.OneEuroState(frequency=settings.frequency)
    got = []
    for t_us, v in ((100_000, 10.0), (200_000, 12.0), (300_000, 11.0)):
        out, state = sm.one_euro(state, np.asarray([v]), t_us, 0.5, settings)
        got.append(float(out[0]))
    np.testing.assert_allclose(got, [10.0, 11.295914, 11.167498], atol=1e-6)
    assert state.frequency == pytest.approx(10.0)
    np.testing.assert_allclose(state.speed, [0.440395], atol=1e-6)


def test_one_euro_keeps_mediapipes_timestamp_rules() -> None:
    settings = sm.POSE_ONE_EURO
    state = sm.OneEuroState(frequency=settings.frequency)
    # a frame at time 0 is not after the initial last time (0): passed through, unseen
    out, after = sm.one_euro(state, np.asarray([5.0]), 0, 0.01, settings)
    assert after is state and out[0] == 5.0
    out, state = sm.one_euro(state, np.asarray([7.0]), 40_000, 0.01, settings)
    assert out[0] == 7.0 and state.frequency == 30.0  # first value; rate still default
    # a repeated timestamp passes the new value unfiltered and keeps the state
    out, again = sm.one_euro(state, np.asarray([9.0]), 40_000, 0.01, settings)
    assert out[0] == 9.0 and again is state
    _, state = sm.one_euro(state, np.asarray([7.0]), 60_000, 0.01, settings)
    assert state.frequency == pytest.approx(50.0)  # 20 ms apart


def test_a_still_noisy_joint_jitters_four_and_a_half_times_less() -> None:
    # 0.5 px of noise on a 200 px body at 30 fps: the frame-to-frame change (what the
    # auto policy's motion measure sees) shrinks 4.6 times, the spread 2.3 times.
    x = 100.0 + 0.5 * np.random.default_rng(0).standard_normal(300)
    out = _run(x, scale=200.0)
    jitter = np.std(np.diff(x[30:])) / np.std(np.diff(out[30:]))
    spread = np.std(x[30:]) / np.std(out[30:])
    assert jitter == pytest.approx(4.61, abs=0.01)
    assert spread == pytest.approx(2.27, abs=0.01)


def test_a_step_passes_within_three_frames() -> None:
    # a joint jumps by a tenth of the body (20 px of 200): 89.7% of the step on its first
    # frame, 98.7% on the second, 99.8% on the third (beta 80 opens the filter)
    x = np.r_[np.full(30, 100.0), np.full(10, 120.0)]
    frac = (_run(x, scale=200.0)[30:] - 100.0) / 20.0
    np.testing.assert_allclose(frac[:3], [0.897, 0.987, 0.998], atol=1e-3)
    assert (frac[2:] > 0.99).all()


def test_smooth_pose_filters_pixels_scales_by_the_object_and_low_passes_visibility() -> None:
    size = (200, 100)
    lms = np.asarray([[0.5, 0.5, 0.1]], np.float32)
    state = sm.PoseSmoothing()
    out, vis, state = sm.smooth_pose(state, lms, np.asarray([0.9]), 33_333, 80.0, size)
    np.testing.assert_allclose(out, lms)
    np.testing.assert_allclose(vis, [0.9], rtol=1e-6)
    moved = lms + np.asarray([[0.01, 0.0, 0.0]], np.float32)  # 2 px in x
    out, vis, state = sm.smooth_pose(state, moved, np.asarray([0.1]), 66_667, 80.0, size)
    np.testing.assert_allclose(vis, [0.1 * 0.1 + 0.9 * 0.9], rtol=1e-6)
    # the same as one filter on the x pixel value with value scale 1 / 80
    ref = _run(np.asarray([100.0, 102.0]), scale=80.0)
    assert out[0, 0] == pytest.approx(ref[1] / 200.0, abs=1e-7)
    np.testing.assert_allclose(out[0, 1:], lms[0, 1:], atol=1e-7)  # y, z did not move
    # an object under min_allowed_object_scale passes the landmarks unfiltered
    out, _, after = sm.smooth_pose(state, moved * 2, np.asarray([0.1]), 100_000, 0.0, size)
    np.testing.assert_allclose(out, moved * 2)
    assert after.landmarks is state.landmarks
