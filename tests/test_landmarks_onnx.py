"""The ONNX landmark front end: its geometry (always) and, where the converted models
exist, its landmarks against the Tasks API's stored reference on real frames."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calibration import landmarks_check as lc
from edge.core.layout import LEFT_HAND0, NUM_JOINTS
from edge.frontend.landmarks import LandmarkerError, LandmarkFrame
from edge.frontend.onnx_landmarks import geometry as g

REF = Path(__file__).resolve().parent / "fixtures" / "landmarks_ref" / "tasks_ref.npz"


# ---------------------------------------------------------------------------- anchors
def test_ssd_anchors_match_the_pose_detectors_output_count_and_grid() -> None:
    a = g.ssd_anchors(224)
    assert a.shape == (2254, 2)
    # stride 8: 28 x 28 cells, two anchors each, row by row
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[2 * 28], [0.5 / 28, 1.5 / 28])
    # the three stride-32 layers share one 7 x 7 grid, six anchors per cell
    np.testing.assert_allclose(a[-6:], np.tile([[6.5 / 7, 6.5 / 7]], (6, 1)))
    np.testing.assert_allclose(a[28 * 28 * 2 + 14 * 14 * 2], [0.5 / 7, 0.5 / 7])


def test_decode_detections_offsets_from_the_anchor_and_thresholds_the_sigmoid() -> None:
    anchors = np.asarray([[0.25, 0.5], [0.75, 0.5]], np.float32)
    raw = np.zeros((2, 12), np.float32)
    raw[1, :4] = [22.4, -11.2, 44.8, 67.2]  # x +0.1, y -0.05, w 0.2, h 0.3 of 224
    raw[1, 4:6] = [0.0, 22.4]  # keypoint 0 at the anchor, +0.1 down
    scores = np.asarray([-1.0, 2.0], np.float32)  # sigmoid 0.27 (dropped), 0.88
    dets = g.decode_detections(raw, scores, anchors, scale=224.0, min_score=0.5)
    assert len(dets) == 1
    np.testing.assert_allclose(dets[0].box, [0.85, 0.45, 0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(dets[0].keypoints[0], [0.75, 0.6], atol=1e-6)
    assert dets[0].score == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_weighted_nms_averages_overlapping_detections_by_score() -> None:
    kp = np.zeros((4, 2), np.float32)
    a = g.Detection(np.asarray([0.5, 0.5, 0.2, 0.2], np.float32), kp, 0.9)
    b = g.Detection(np.asarray([0.52, 0.5, 0.2, 0.2], np.float32), kp + 0.1, 0.6)
    far = g.Detection(np.asarray([0.1, 0.1, 0.1, 0.1], np.float32), kp, 0.8)
    out = g.weighted_nms([a, far, b], 0.3, max_detections=2)
    assert len(out) == 2
    np.testing.assert_allclose(out[0].box[0], (0.5 * 0.9 + 0.52 * 0.6) / 1.5, atol=1e-6)
    np.testing.assert_allclose(out[0].keypoints, 0.1 * 0.6 / 1.5, atol=1e-6)
    assert out[0].score == 0.9 and out[1].box[0] == pytest.approx(0.1)


# ------------------------------------------------------------------------------- ROIs
def test_hand_rect_from_pose_centres_on_the_middle_finger_and_points_it_up() -> None:
    size = (200, 100)
    px = np.asarray(size, np.float64)
    wrist = np.asarray([100, 80]) / px
    # index at (106, 50), pinky at (88, 50): middle finger (2*index + pinky)/3 = (100, 50)
    r = g.hand_rect_from_pose(wrist, np.asarray([88, 50]) / px, np.asarray([106, 50]) / px,
                              size)
    assert (r.cx * 200, r.cy * 100) == pytest.approx((100, 50))
    assert (r.w * 200, r.h * 100) == pytest.approx((60, 60))  # twice the 30 px to the wrist
    assert r.rotation == pytest.approx(0.0, abs=1e-9)
    # fingers pointing right (from the wrist): the crop turns 90 degrees clockwise
    r = g.hand_rect_from_pose(wrist, np.asarray([130, 80]) / px, np.asarray([130, 80]) / px,
                              size)
    assert r.rotation == pytest.approx(math.pi / 2)
    top = g.project_landmarks(np.asarray([[0.5, 0.0, 0.0]], np.float32), r)[0]
    assert top[0] * 200 > r.cx * 200 + 10  # the crop's top is towards the fingers


def test_transform_rect_squares_on_the_long_side_in_pixels_then_scales_and_shifts() -> None:
    size = (200, 100)
    r = g.transform_rect(g.Rect(0.5, 0.5, 0.2, 0.6), size, scale=2.0, shift_y=-0.1)
    # 40 x 60 px -> 60 x 60 px -> 120 x 120 px, shifted up by 0.1 of the 60 px height
    assert (r.w * 200, r.h * 100) == pytest.approx((120, 120))
    assert (r.cx, r.cy * 100) == pytest.approx((0.5, 50 - 6))
    # rotated by 90 degrees clockwise, "up" in the rect is +x in the image
    r = g.transform_rect(g.Rect(0.5, 0.5, 0.3, 0.6, math.pi / 2), size, shift_y=-0.1)
    assert (r.cx * 200, r.cy * 100) == pytest.approx((100 + 6, 50))


def test_alignment_rect_is_twice_the_keypoint_distance_and_upright_for_a_standing_body() -> None:
    r = g.alignment_rect(np.asarray([0.5, 0.6]), np.asarray([0.5, 0.2]), (100, 100))
    assert (r.cx, r.cy, r.w, r.h) == pytest.approx((0.5, 0.6, 0.8, 0.8))
    assert r.rotation == pytest.approx(0.0, abs=1e-9)


def test_hand_rect_from_landmarks_of_an_upright_hand_is_unrotated_around_the_palm() -> None:
    lms = np.zeros((21, 3), np.float32)
    lms[:, 0] = 0.5
    lms[:, 1] = np.linspace(0.8, 0.2, 21)
    lms[[5, 9, 13, 17], 0] = [0.45, 0.5, 0.55, 0.6]  # finger bases side by side
    lms[[5, 9, 13, 17], 1] = 0.6
    lms[0] = [0.5, 0.8, 0]
    r = g.hand_rect_from_landmarks(lms, (100, 100))
    assert r.rotation == pytest.approx(0.0, abs=1e-6)
    pts = lms[list(g._HAND_PARTIAL), :2]
    assert (r.w, r.h) == pytest.approx(tuple(pts.max(0) - pts.min(0)), abs=1e-6)


# ------------------------------------------------------------------------- projection
def test_projection_round_trips_and_matches_the_crop_matrix() -> None:
    size, s = (640, 360), 256
    rect = g.Rect(0.4, 0.55, 0.3, 0.3 * 640 / 360, 0.7)
    rng = np.random.default_rng(0)
    lms = rng.uniform(0, 1, (39, 3)).astype(np.float32)
    img = g.project_landmarks(lms, rect)
    np.testing.assert_allclose(g.unproject_landmarks(img, rect), lms, atol=1e-5)
    # the crop maps input pixel (x*s, y*s) to the same image pixel as the projection
    m = g.crop_matrix(rect, size, s)
    uv1 = np.concatenate([lms[:, :2] * s, np.ones((39, 1))], 1)
    np.testing.assert_allclose(uv1 @ m.T, img[:, :2] * np.asarray(size), atol=1e-3)


def test_letterbox_rect_projection_is_detection_letterbox_removal() -> None:
    # a 400 x 200 image letterboxed into a square: 25 % padding above and below
    r = g.letterbox_rect((400, 200))
    pts = np.asarray([[0.5, 0.25, 0], [0.1, 0.75, 0]], np.float32)
    np.testing.assert_allclose(g.project_landmarks(pts, r)[:, :2], [[0.5, 0.0], [0.1, 1.0]],
                               atol=1e-6)


def test_refine_from_heatmap_moves_a_landmark_to_its_confident_window_centre() -> None:
    hm = np.full((64, 64, 2), -10.0, np.float32)
    hm[30, 20, 0] = 10.0  # one confident cell near landmark 0
    lms = np.asarray([[21.5 / 64, 31.5 / 64, 0.0], [0.5, 0.5, 0.0]], np.float32)
    out = g.refine_from_heatmap(lms, hm)
    assert out[0, 0] == pytest.approx(20 / 64, abs=2e-3)
    assert out[0, 1] == pytest.approx(30 / 64, abs=2e-3)
    np.testing.assert_array_equal(out[1], lms[1])  # no confident cell: unchanged


# ------------------------------------------------------------------------ the checker
def _frame(joints: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> LandmarkFrame:
    return LandmarkFrame(t=0.0, joints=joints.astype(np.float32), mask=mask, image_size=size)


def test_part_errors_and_bars_in_pixels() -> None:
    ref = np.zeros((NUM_JOINTS, 3), np.float32)
    ref[:, :2] = 0.5
    ref[LEFT_HAND0 + 9, 1] = 0.4  # palm length 10 px in a 100 px high image
    got = ref.copy()
    got[:33, 0] += 0.01  # 2 px on a 200 px wide image
    got[LEFT_HAND0:LEFT_HAND0 + 21, 1] += 0.005  # 0.5 px
    mask = np.zeros(NUM_JOINTS, bool)
    mask[:54] = True
    e = lc.part_errors(_frame(got, mask, (200, 100)), _frame(ref, mask, (200, 100)))
    assert e["pose"] == pytest.approx(2.0, rel=1e-5)
    assert e["left"] == pytest.approx(0.5, rel=1e-4)
    assert math.isnan(e["right"])
    assert lc.palm_length(_frame(ref, mask, (200, 100)), "left") == pytest.approx(10.0)
    check = lc.FrameCheck("x", e, {"pose": 5.0}, {"left": 10.0}, {})
    assert lc.bar(check, "pose") == 2.5 and lc.bar(check, "left") == 1.0
    assert lc.meets_bar(check)
    assert not lc.meets_bar(lc.FrameCheck("x", e, {"pose": 3.0}, {"left": 10.0}, {}))


# ---------------------------------------------------------------------- errors, files
def test_missing_converted_models_name_the_command_that_makes_them(tmp_path: Path) -> None:
    from edge.frontend.onnx_landmarks import OnnxLandmarker

    with pytest.raises(LandmarkerError, match=r"pose_detector.onnx, pose_landmarks_detector"
                       r".onnx, hand_landmarks_detector.onnx\); create them once with "
                       r"'skelmtl convert-landmarks'"):
        OnnxLandmarker(model_dir=tmp_path)


def test_extracting_from_a_bundle_that_is_not_a_zip_names_the_file(tmp_path: Path) -> None:
    from calibration.convert_landmarks import ConvertError, extract_tflite

    bad = tmp_path / "pose.task"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConvertError, match=r"pose.task: cannot read pose_detector.tflite"):
        extract_tflite(bad, "pose_detector.tflite")
    good = tmp_path / "ok.task"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("pose_detector.tflite", b"TFL3")
    assert extract_tflite(good, "pose_detector.tflite") == b"TFL3"


# ----------------------------------------------- the converted path vs stored reference
def _converted_or_skip() -> None:
    from edge.frontend.onnx_landmarks import missing_models

    missing = missing_models()
    if missing:
        pytest.skip(f"converted landmark models absent ({missing[0].parent}); run "
                    "'skelmtl convert-landmarks' in the convert venv")


def test_converted_path_matches_the_tasks_api_reference_on_real_frames() -> None:
    """Pose within half the Tasks API's own JPEG-95 shift, hands within 10 % of the palm
    (calibration.landmarks_check), on every stored frame this machine has."""
    _converted_or_skip()
    pytest.importorskip("cv2")
    from edge.frontend.onnx_landmarks import OnnxLandmarker

    ref = np.load(REF)
    frames = lc.real_frames()
    names = sorted({k.split("/")[0] for k in ref.files} & set(frames))
    if not names:
        pytest.skip("none of the reference frames is available here")
    compared = {"pose": 0, "hands": 0}
    with OnnxLandmarker(mode="image", threads=1) as onnx:
        for name in names:
            img = frames[name]
            size = tuple(int(v) for v in ref[f"{name}/size"])
            assert size == (img.shape[1], img.shape[0]), name
            want = _frame(ref[f"{name}/joints"], ref[f"{name}/mask"], size)
            got = onnx.process(img)
            assert got.has_person == want.has_person, name
            e = lc.part_errors(got, want)
            jpeg = float(ref[f"{name}/jpeg_pose_px"])
            assert e["pose"] <= lc.POSE_BAR_OF_JPEG * jpeg, (name, e, jpeg)
            compared["pose"] += 1
            for i, part in enumerate(("left", "right")):
                palm = float(ref[f"{name}/palm_px"][i])
                if np.isfinite(e[part]):
                    assert e[part] <= lc.HAND_BAR_OF_PALM * palm, (name, part, e, palm)
                    compared["hands"] += 1
                elif np.isfinite(palm):  # the Tasks API found a hand we did not
                    pytest.fail(f"{name}: the ONNX path missed the {part} hand")
    assert compared["pose"] == len(names)


# ------------------------------------------------- the landmarker's flow, fake models
class _FakeModel:
    """A stand-in for a converted model: fixed outputs, counts its calls."""

    def __init__(self, name: str) -> None:
        self.path = Path(name)
        self.calls = 0
        size = 256 if "pose_landmarks" in name else 224
        self.input_shape = (1, size, size, 3)
        self.out: dict[str, np.ndarray]
        if name.startswith("pose_detector"):
            regs = np.zeros((1, 2254, 12), np.float32)
            scores = np.full((1, 2254, 1), -10.0, np.float32)
            k = 28 * 28 * 2 + 14 * 14 * 2 + (3 * 7 + 3) * 6  # a 7x7 cell at the centre
            scores[0, k] = 5.0
            regs[0, k, 4:8] = [0.0, 22.4, 0.0, -44.8]  # hips 0.1 below, scale point above
            self.out = {"Identity": regs, "Identity_1": scores}
        elif name.startswith("pose_landmarks"):
            lms = np.zeros((39, 5), np.float32)
            lms[:, 0], lms[:, 1] = 128.0, 128.0
            lms[:, 3:] = 10.0  # visible and present
            lms[15:21, :2] = [[100, 160], [156, 160], [95, 130], [161, 130], [105, 130],
                              [151, 130]]  # wrists, pinkies, index fingers
            lms[33] = [128, 160, 0, 10, 10]
            lms[34] = [128, 64, 0, 10, 10]
            self.out = {"Identity": lms.reshape(1, -1), "Identity_1": np.full((1, 1), 0.99),
                        "Identity_3": np.full((1, 64, 64, 39), -10.0, np.float32)}
        else:
            hand = np.zeros((21, 3), np.float32)
            hand[:, 0] = np.linspace(100, 124, 21)
            hand[:, 1] = np.linspace(150, 80, 21)
            self.out = {"Identity": hand.reshape(1, -1), "Identity_1": np.full((1, 1), 0.9),
                        "Identity_2": np.full((1, 1), 0.2)}

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        assert x.shape == self.input_shape and x.dtype == np.float32
        self.calls += 1
        return self.out

    def close(self) -> None:
        pass


@pytest.fixture()
def fake_landmarker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    pytest.importorskip("cv2")
    from edge.frontend.onnx_landmarks import landmarker as lmod

    for f in lmod.MODEL_FILES:
        (tmp_path / f).write_bytes(b"")
    monkeypatch.setattr(lmod, "open_tensor_model", lambda p, **kw: _FakeModel(Path(p).name))
    return lambda **kw: lmod.OnnxLandmarker(model_dir=tmp_path, **kw)


def test_video_mode_detects_once_then_tracks_and_places_both_hands(fake_landmarker: Any) -> None:
    lm = fake_landmarker(mode="video")
    img = np.zeros((120, 160, 3), np.uint8)
    first = lm.process(img, t=0.0, index=0)
    assert first.has_person and first.num_hands == 2 and first.image_size == (160, 120)
    assert lm._detector.calls == 1
    assert lm.hand_passes == 4  # each hand: placed from the pose, then re-cropped
    second = lm.process(img, t=1 / 30, index=1)
    assert lm._detector.calls == 1  # the pose ROI came from the previous landmarks
    assert lm.hand_passes == 2  # tracked hands: one pass each
    assert second.num_hands == 2 and second.index == 1
    # the fake hand model calls both hands "Left" (0.2): the right slot disagrees
    assert second.hands_swapped == 1
    assert lm.last_timings["detect_ms"] == 0.0 and second.pose_age == 0


def test_routing_action_runs_no_hand_model_and_masks_the_hands(fake_landmarker: Any) -> None:
    lm = fake_landmarker(mode="video", policy="action")
    img = np.zeros((120, 160, 3), np.uint8)
    frames = [lm.process(img, t=i / 30, index=i) for i in range(3)]
    assert lm._hand.calls == 0 and lm.stages.counts == {"pose": 3, "hands": 0, "frames": 3}
    assert all(f.has_person and f.num_hands == 0 and f.hands_age == -1 for f in frames)
    assert lm.last_timings["hands_ms"] == 0.0 and lm.last_plan.reason == "action: no hands"


def test_task_files_are_refused_with_the_conversion_command(fake_landmarker: Any) -> None:
    with pytest.raises(LandmarkerError, match=r"convert-landmarks --pose-model P"):
        fake_landmarker(pose_model="pose_landmarker_heavy.task")


def test_image_mode_detects_every_frame_and_pose_only_runs_no_hand_model(fake_landmarker: Any) -> None:
    lm = fake_landmarker(mode="image", hands=False)
    img = np.zeros((100, 100, 3), np.uint8)
    for _ in range(2):
        frame = lm.process(img)
    assert lm._detector.calls == 2 and lm._hand is None
    assert frame.has_person and frame.num_hands == 0
    # the fake pose puts the nose at the crop's centre: the detected hip centre
    np.testing.assert_allclose(frame.joints[0, :2], [0.5, 0.6], atol=1e-3)
    with pytest.raises(LandmarkerError, match=r"expected an \(H, W, 3\) uint8 RGB image"):
        lm.process(np.zeros((10, 10), np.uint8))


def test_check_options_parse_numbers_and_name_a_bad_pair() -> None:
    from calibration.convert_landmarks import ConvertError, parse_options

    assert parse_options(["hand_refine=0", "hand_from_pose_scale=2.2"]) == {
        "hand_refine": 0.0, "hand_from_pose_scale": 2.2}
    with pytest.raises(ConvertError, match=r"--onnx-option 'scale': expected KEY=NUMBER"):
        parse_options(["scale"])


# ------------------------------------------------------- smoothing in the landmarker
def _shift_nose(lm: Any, dx_px: float) -> None:
    """A still fake body (its ROI points give the same ROI again: hip centre at the crop's
    centre, the scale point 256 / 2.5 px above it) with the nose ``dx_px`` pixels of the
    256 px crop right of the centre."""
    out = lm._pose.out["Identity"].reshape(39, 5).copy()
    out[0, 0] = 128.0 + dx_px
    out[33, :2], out[34, :2] = [128.0, 128.0], [128.0, 128.0 - 256.0 / 2.5]
    lm._pose.out = {**lm._pose.out, "Identity": out.reshape(1, -1)}


def test_image_mode_never_smooths(fake_landmarker: Any) -> None:
    lm = fake_landmarker(mode="image", hands=False, smooth_landmarks=True)
    ref = fake_landmarker(mode="image", hands=False)
    img = np.zeros((100, 100, 3), np.uint8)
    assert not lm.smooth_landmarks
    lm.process(img, t=0.0)
    for lmk in (lm, ref):
        _shift_nose(lmk, 20.0)
    got, fresh = lm.process(img, t=1 / 30), ref.process(img, t=1 / 30)
    np.testing.assert_array_equal(got.joints, fresh.joints)
    np.testing.assert_array_equal(got.visibility, fresh.visibility)


def test_video_mode_smooths_the_pose_and_resets_when_it_is_lost(fake_landmarker: Any) -> None:
    lm = fake_landmarker(mode="video", hands=False)
    raw = fake_landmarker(mode="video", hands=False, smooth_landmarks=False)
    img = np.zeros((100, 100, 3), np.uint8)
    for lmk in (lm, raw):
        _shift_nose(lmk, 0.0)
    for i in range(3):
        f, r = lm.process(img, t=(i + 1) / 30), raw.process(img, t=(i + 1) / 30)
        np.testing.assert_allclose(f.joints, r.joints, atol=1e-6)  # still: unchanged
    for lmk in (lm, raw):
        _shift_nose(lmk, 0.5)  # a half-pixel twitch of the crop: mostly filtered out
    f, r = lm.process(img, t=4 / 30), raw.process(img, t=4 / 30)
    moved = r.joints[0, 0] - f.joints[0, 0]
    assert 0 < (f.joints[0, 0] - 0.5) < 0.2 * (r.joints[0, 0] - 0.5) and moved > 0
    np.testing.assert_allclose(f.joints[1:], r.joints[1:], atol=1e-6)
    # the pose is lost (presence 0.01, detector too): nothing reported, filters reset
    present = lm._pose.out["Identity_1"]
    lm._pose.out = {**lm._pose.out, "Identity_1": np.full((1, 1), 0.01)}
    assert not lm.process(img, t=5 / 30).has_person
    lm._pose.out = {**lm._pose.out, "Identity_1": present}
    f, r = lm.process(img, t=6 / 30), raw.process(img, t=6 / 30)
    np.testing.assert_allclose(f.joints, r.joints, atol=1e-6)  # first frame after: raw
